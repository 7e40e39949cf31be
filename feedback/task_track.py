"""Track: follow a slowly moving target through the range.

The target glides out to `target_deg` over `tempo_s` (a raised cosine: smooth, zero speed at both
ends, like the minimum-jerk movements people make), rests there for `hold_s`, glides back over
`tempo_s` and rests at the start for `PAUSE_S`. One repetition is one such cycle, timed from the
first sample after the start position was found: deterministic from the sample times.

Per cycle: the mean signed and mean absolute error between the patient's signed angle and the
target, and the share of time inside the band around the moving target. In tolerance = mean
absolute error within the tolerance. A cycle with a signal gap longer than `MAX_GAP_S` is
interrupted (not scored). Slow, smooth control through the range is what people with LBP find
hard (clinical.md "Speed", "Smoothness").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from feedback.library import Exercise
from feedback.quality import SmoothnessFn, movement_quality
from feedback.samples import Sample, SampleWindow
from feedback.targets import LevelTargets
from feedback.trial import (
    TaskEvent,
    TaskLive,
    TrialEnded,
    TrialInterrupted,
    TrialResult,
    TrialStarted,
)

PAUSE_S = 1.0
MAX_GAP_S = 0.2


def track_target(tau_s: float, amplitude_deg: float, tempo_s: float, hold_s: float) -> float:
    """Target at `tau_s` into a cycle (see module docstring)."""
    if tau_s < tempo_s:
        return amplitude_deg * (1.0 - math.cos(math.pi * tau_s / tempo_s)) / 2.0
    tau_s -= tempo_s
    if tau_s < hold_s:
        return amplitude_deg
    tau_s -= hold_s
    if tau_s < tempo_s:
        return amplitude_deg * (1.0 + math.cos(math.pi * tau_s / tempo_s)) / 2.0
    return 0.0


class TrackTask:
    replay = False  # the target starts moving when the start position is found

    def __init__(self, exercise: Exercise, targets: LevelTargets, anchors: Mapping[str, float],
                 window: SampleWindow, *, smoothness: SmoothnessFn | None = None,
                 **_: object) -> None:
        assert targets.target_deg is not None and targets.tolerance_deg is not None
        assert targets.tempo_s is not None
        self.exercise, self.window, self.smoothness = exercise, window, smoothness
        self.angle, self.sign = exercise.angle, exercise.direction.sign
        self.anchor = anchors[self.angle]
        self.amp, self.tol = targets.target_deg, targets.tolerance_deg
        self.tempo, self.hold = targets.tempo_s, targets.hold_s
        self.period = 2 * self.tempo + self.hold + PAUSE_S
        self.t0: float | None = None
        self.cycle = -1
        self.last_t: float | None = None
        self.live = TaskLive(target_deg=0.0)
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self.sum_err = self.sum_abs = self.in_band = self.covered = 0.0
        self.peak = -math.inf
        self.gap = False

    def signed(self, sample: Sample) -> float:
        return self.sign * (getattr(sample, self.angle) - self.anchor)

    def target_at(self, t: float) -> float:
        assert self.t0 is not None
        return track_target((t - self.t0) % self.period, self.amp, self.tempo, self.hold)

    def step(self, sample: Sample) -> list[TaskEvent]:
        t, s = sample.time_s, self.signed(sample)
        out: list[TaskEvent] = []
        if self.t0 is None:
            self.t0 = t
        cycle = int((t - self.t0) // self.period)
        if cycle != self.cycle:
            if self.cycle >= 0:
                out.append(self._finish(self.t0 + (self.cycle + 1) * self.period, t))
            self.cycle = cycle
            self._reset_cycle()
            out.append(TrialStarted(t, self.t0 + cycle * self.period))
        r = self.target_at(t)
        live = self.live
        live.target_deg, live.low_deg, live.high_deg = r, r - self.tol, r + self.tol
        live.in_trial = True
        if not math.isfinite(s):
            live.value_deg, live.zone, live.signal_ok = None, "no_signal", False
            if self.last_t is not None and t - self.last_t > MAX_GAP_S:
                self.gap = True
            return out
        if self.last_t is not None:
            dt = t - self.last_t
            if dt > MAX_GAP_S:
                self.gap = True
            else:
                err = s - r
                self.sum_err += err * dt
                self.sum_abs += abs(err) * dt
                self.in_band += dt if abs(err) <= self.tol else 0.0
                self.covered += dt
        self.peak = max(self.peak, s)
        self.last_t = t
        live.value_deg, live.signal_ok = s, True
        live.zone = "in" if abs(s - r) <= self.tol else ("below" if s < r else "above")
        return out

    def _finish(self, end_s: float, t: float) -> TaskEvent:
        start = end_s - self.period
        if self.gap or self.covered < 0.8 * self.period:
            return TrialInterrupted(t, start, "signal_gap")
        mean_err, mean_abs = self.sum_err / self.covered, self.sum_abs / self.covered
        rows = self.window.between(start, end_s)
        quality = movement_quality(rows, [self.signed(r) for r in rows], self.smoothness)
        return TrialEnded(t, TrialResult(
            pattern="track", start_time_s=start, end_time_s=end_s, target_deg=self.amp,
            tolerance_deg=self.tol, value_deg=self.peak, error_deg=mean_err,
            abs_error_deg=mean_abs, in_tolerance=mean_abs <= self.tol,
            overshoot_deg=max(0.0, self.peak - self.amp),
            peak_speed_deg_s=quality.peak_speed_deg_s, mean_speed_deg_s=quality.mean_speed_deg_s,
            sparc=quality.sparc, ldlj=quality.ldlj, share_in_band=self.in_band / self.covered,
        ))
