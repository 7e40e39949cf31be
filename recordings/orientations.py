"""Sensor orientations of a stored recording for the `.sto` export, by processing's own filters.

Each sensor goes through `processing.orientation.OrientationFilter` (VQF) and the upper sensor
is brought to the lower sensor's sample times by `processing.alignment.Aligner`, exactly as in
the live pipeline. With magnetometer data the filters run 9D, so both sensors share one
East-North-Up frame (what OpenSense assumes); without it (6D) each sensor's heading is arbitrary
and only inclinations are comparable across sensors, which `heading_shared` reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from sensors.samples import SampleBatch


@dataclass(frozen=True)
class SensorOrientations:
    time_s: np.ndarray  # (N,) lower sensor's sample times
    q_lower: np.ndarray  # (N, 4) sensor-to-earth (w, x, y, z)
    q_upper: np.ndarray  # (N, 4)
    heading_shared: bool  # 9D: both in East-North-Up


def sensor_orientations(recording: Mapping[str, SampleBatch | Sequence[SampleBatch]], *,
                        use_magnetometer: bool | None = None) -> SensorOrientations:
    """Orientations of both sensors at the lower sensor's times (needs both sensors)."""
    from processing.alignment import AlignedFrames, Aligner
    from processing.offline import chunked
    from processing.orientation import OrientationFilter, OrientationParams

    if not {"upper", "lower"} <= set(recording):
        raise ValueError("orientations need both the 'upper' and the 'lower' sensor")
    first = {r: (v if isinstance(v, SampleBatch) else v[0]) for r, v in recording.items()}
    has_mag = all(first[r].mag is not None for r in ("upper", "lower"))
    mag = has_mag if use_magnetometer is None else (use_magnetometer and has_mag)
    params = replace(OrientationParams(), use_magnetometer=mag)
    filters = {r: OrientationFilter(params) for r in ("upper", "lower")}
    aligner = Aligner()
    parts = []
    for b in chunked(recording, 10.0):
        if b.sensor not in filters:
            continue
        aligner.push(b.sensor, filters[b.sensor].update(b))
        parts.append(aligner.pop())
    frames = AlignedFrames.concat(parts)
    return SensorOrientations(np.asarray(frames.time_s), np.asarray(frames.q_lower),
                              np.asarray(frames.q_upper), mag)
