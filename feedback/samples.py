"""One angle sample at a time, and a bounded window of recent samples.

The engines decide per sample (a set ends at the sample its last repetition ends on), so that the
same stream gives the same events however it is cut into batches (architecture.md: streaming
objects with explicit state). `samples_of` turns an `AngleBatch` into rows; `SampleWindow` keeps
the last seconds so a finished repetition can be measured (speed, smoothness, lumbar share).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

NAN = math.nan


class Sample(NamedTuple):
    """One row of an AngleBatch; NaN where missing."""

    time_s: float
    flexion_deg: float = NAN
    lateral_bend_deg: float = NAN
    axial_rotation_deg: float = NAN
    pelvic_tilt_deg: float = NAN
    upper_inclination_deg: float = NAN
    lumbar_angular_speed_deg_s: float = NAN


_FIELDS = Sample._fields[1:]


def samples_of(angles: Any) -> Iterator[Sample]:
    """Rows of an AngleBatch (or any object with the same array attributes); absent fields NaN."""
    n = len(angles.time_s)
    cols = [np.asarray(angles.time_s, dtype=float).tolist()]
    for name in _FIELDS:
        arr = getattr(angles, name, None)
        cols.append([NAN] * n if arr is None else np.asarray(arr, dtype=float).tolist())
    for row in zip(*cols):
        yield Sample(*row)


class SampleWindow:
    """The samples of the last `horizon_s` seconds (bounded memory)."""

    def __init__(self, horizon_s: float = 45.0) -> None:
        self.horizon_s = horizon_s
        self._rows: deque[Sample] = deque()

    def append(self, sample: Sample) -> None:
        self._rows.append(sample)
        limit = sample.time_s - self.horizon_s
        while self._rows and self._rows[0].time_s < limit:
            self._rows.popleft()

    def between(self, t0: float, t1: float) -> list[Sample]:
        return [r for r in self._rows if t0 <= r.time_s <= t1]

    def at_or_before(self, t: float, angle: str) -> float:
        """The latest finite value of `angle` at or before time t (NaN if none)."""
        for r in reversed(self._rows):
            if r.time_s <= t:
                v = getattr(r, angle)
                if math.isfinite(v):
                    return v
        return NAN

    def clear(self) -> None:
        self._rows.clear()
