"""Knowledge of performance for one movement: speed, smoothness, lumbar share, held position.

- Speed: peak and mean angular speed of the exercised angle (clinical.md "Speed": velocity
  differs between people with and without LBP more than range does).
- Smoothness: SPARC (closer to 0 is smoother) and log dimensionless jerk, computed on the
  gyroscope-based lumbar angular speed, not on a differentiated angle (clinical.md
  "Smoothness", Melendez-Calderon et al. 2021). The functions live in processing/smoothness.py
  (another team's module); when it is absent, or a call fails, smoothness is None and the rest of
  the feedback goes on. Callers can pass their own `SmoothnessFn` (tests do).
- Lumbar share: the lumbar spine's part of a sagittal movement, |d flexion| / (|d flexion| +
  |d pelvic tilt|) from the start of the movement to its peak (clinical.md "Lumbo-pelvic rhythm":
  about 46 % with LBP versus 51 % without; its minimal detectable change is 8-15 %).
- Held position (repositioning): the mean of the longest still stretch, i.e. where the patient
  chose to stop, not the peak they may have swung through.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from feedback.samples import Sample

SmoothnessFn = Callable[[np.ndarray, np.ndarray], tuple[float | None, float | None]]
"""(time_s, angular_speed_deg_s) -> (sparc, ldlj); None where it cannot be computed."""

MIN_TRUNK_MOVEMENT_DEG = 5.0  # below this the lumbar share is noise (sensor RMSE ~1-2 deg)
# A smooth (minimum-jerk, Flash & Hogan 1985) movement spends 56 % of its duration between 10 %
# and 90 % of its amplitude; the rise time is measured, the expected one is this x tempo_s.
RISE_SHARE_MIN_JERK = 0.56
TEMPO_FAST_FACTOR = 0.5  # rise under half the expected: rushing a precision task
TEMPO_SLOW_FACTOR = 2.0  # over twice the expected: hesitant (LBP moves slower, clinical.md)


@dataclass(frozen=True, slots=True)
class MovementQuality:
    peak_speed_deg_s: float | None
    mean_speed_deg_s: float | None
    sparc: float | None
    ldlj: float | None


def _first(value: object) -> float | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def default_smoothness() -> SmoothnessFn | None:
    """Smoothness from processing.smoothness when that module exists (sparc / ldlj taking the
    speed profile and the sample rate), else None."""
    try:
        from processing import smoothness as sm  # type: ignore[attr-defined]
    except ImportError:
        return None
    sparc_fn = getattr(sm, "sparc", None)
    ldlj_fn = getattr(sm, "ldlj", None) or getattr(sm, "log_dimensionless_jerk", None)
    if sparc_fn is None and ldlj_fn is None:
        return None

    def smoothness(time_s: np.ndarray, speed: np.ndarray) -> tuple[float | None, float | None]:
        if len(time_s) < 8:
            return None, None
        rate_hz = 1.0 / float(np.median(np.diff(time_s)))
        out: list[float | None] = []
        for fn in (sparc_fn, ldlj_fn):
            try:
                out.append(None if fn is None else _first(fn(speed, rate_hz)))
            except Exception:  # noqa: BLE001 - another module's numerical edge cases
                out.append(None)
        return out[0], out[1]

    return smoothness


def movement_quality(rows: Sequence[Sample], signed: Sequence[float],
                     smoothness: SmoothnessFn | None) -> MovementQuality:
    """Speed of the signed exercised angle over `rows`, and smoothness of the lumbar speed."""
    t = np.array([r.time_s for r in rows], dtype=float)
    x = np.asarray(signed, dtype=float)
    ok = np.isfinite(x)
    t, x = t[ok], x[ok]
    if len(t) < 3 or t[-1] - t[0] <= 0:
        return MovementQuality(None, None, None, None)
    v = np.abs(np.diff(x) / np.diff(t))
    peak = float(v.max())
    mean = float(np.sum(v * np.diff(t)) / (t[-1] - t[0]))
    sparc = ldlj = None
    if smoothness is not None:
        speed = np.array([r.lumbar_angular_speed_deg_s for r in rows], dtype=float)[ok]
        if np.all(np.isfinite(speed)):
            sparc, ldlj = smoothness(t, speed)
    return MovementQuality(peak, mean, sparc, ldlj)


def lumbar_share(start: Sample, peak: Sample) -> float | None:
    """|d flexion| / (|d flexion| + |d pelvic tilt|) from `start` to `peak`; None when the trunk
    moved less than MIN_TRUNK_MOVEMENT_DEG or an angle is missing."""
    d_flex = abs(peak.flexion_deg - start.flexion_deg)
    d_tilt = abs(peak.pelvic_tilt_deg - start.pelvic_tilt_deg)
    total = d_flex + d_tilt
    if not math.isfinite(total) or total < MIN_TRUNK_MOVEMENT_DEG:
        return None
    return d_flex / total


def held_position(times: Sequence[float], values: Sequence[float], *, still_range_deg: float = 2.0,
                  min_still_s: float = 0.5, above_deg: float = 0.0) -> tuple[float, float] | None:
    """(mean, duration_s) of the longest stretch whose range stays within `still_range_deg`
    and whose values all exceed `above_deg`; None if no stretch lasts `min_still_s`.

    Two pointers over the samples: O(n) with monotonic deques for the running min and max.
    """
    from collections import deque

    best: tuple[float, float] | None = None
    lo_q: deque[int] = deque()
    hi_q: deque[int] = deque()
    start = 0
    t = list(times)
    x = list(values)
    for i, xi in enumerate(x):
        if not math.isfinite(xi) or xi <= above_deg:
            lo_q.clear()
            hi_q.clear()
            start = i + 1
            continue
        while lo_q and x[lo_q[-1]] >= xi:
            lo_q.pop()
        lo_q.append(i)
        while hi_q and x[hi_q[-1]] <= xi:
            hi_q.pop()
        hi_q.append(i)
        while x[hi_q[0]] - x[lo_q[0]] > still_range_deg:
            start += 1
            while lo_q[0] < start:
                lo_q.popleft()
            while hi_q[0] < start:
                hi_q.popleft()
        duration = t[i] - t[start]
        if duration >= min_still_s and (best is None or duration > best[1]):
            best = (float(np.mean(x[start:i + 1])), duration)
    return best


def rise_time_s(times: Sequence[float], values: Sequence[float], peak_deg: float,
                peak_time_s: float) -> float | None:
    """Time from 10 % to 90 % of `peak_deg` on the way out (before `peak_time_s`): a movement
    duration that does not depend on where a threshold or a band happens to lie."""
    if not peak_deg > 0:
        return None
    lo, hi = 0.1 * peak_deg, 0.9 * peak_deg
    pairs = [(t, v) for t, v in zip(times, values) if t <= peak_time_s and math.isfinite(v)]
    i10 = next((i for i in range(len(pairs) - 1, -1, -1) if pairs[i][1] <= lo), None)
    if i10 is None:
        return None
    t90 = next((t for t, v in pairs[i10:] if v >= hi), None)
    return None if t90 is None else t90 - pairs[i10][0]


def judge_tempo(rise_s: float | None, tempo_s: float | None) -> str | None:
    """"fast", "ok" or "slow" against the level's tempo_s (seconds for the movement out)."""
    if rise_s is None or tempo_s is None:
        return None
    expected = RISE_SHARE_MIN_JERK * tempo_s
    if rise_s < TEMPO_FAST_FACTOR * expected:
        return "fast"
    if rise_s > TEMPO_SLOW_FACTOR * expected:
        return "slow"
    return "ok"
