"""Hold: find a position (often neutral) and hold it inside the band for `hold_s`.

clinical.md "Grading": "find and hold neutral" comes first. One repetition: starting away from
the band (slumped, arched, or anywhere for the very first one), enter the band and stay in it
for `hold_s` without a break. The result is the mean position over the successful hold; a
repetition that does not reach its hold within `hold_s + seek_s` ends unsuccessful. Before the
next repetition the patient must leave the band by a clear margin (`away_margin_deg` beyond the
band), so that one long hold is not counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from feedback.library import Exercise
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

SEEK_S = 10.0
AWAY_MARGIN_DEG = 3.0
MAX_GAP_S = 0.2  # as RepetitionParams.max_gap_s


class HoldTask:
    def __init__(self, exercise: Exercise, targets: LevelTargets, anchors: Mapping[str, float],
                 window: SampleWindow, **_: object) -> None:
        assert targets.target_deg is not None and targets.tolerance_deg is not None
        self.exercise, self.window = exercise, window
        self.angle, self.sign = exercise.angle, exercise.direction.sign
        self.anchor = anchors[self.angle]
        self.target, self.tol = targets.target_deg, targets.tolerance_deg
        self.hold_s = targets.hold_s
        self.state = "ready"  # ready -> trial -> away -> ready ...
        self.trial_start: float | None = None
        self.run_start: float | None = None
        self.run_sum = 0.0
        self.run_n = 0
        self.last_valid_t: float | None = None
        self.live = TaskLive(target_deg=self.target, low_deg=self.target - self.tol,
                             high_deg=self.target + self.tol)

    def signed(self, sample: Sample) -> float:
        return self.sign * (getattr(sample, self.angle) - self.anchor)

    def step(self, sample: Sample) -> list[TaskEvent]:
        t, s = sample.time_s, self.signed(sample)
        out: list[TaskEvent] = []
        if self.last_valid_t is not None and t - self.last_valid_t > MAX_GAP_S:
            if self.state == "trial" and self.trial_start is not None:
                out.append(TrialInterrupted(t, self.trial_start, "signal_gap"))
                self.state = "ready"
            self.run_start, self.trial_start = None, None
            self.last_valid_t = None
        ok = math.isfinite(s)
        self.live.signal_ok = ok
        if not ok:
            self.live.value_deg, self.live.zone = None, "no_signal"
            return out
        self.last_valid_t = t
        inside = abs(s - self.target) <= self.tol
        if self.state == "away":
            if abs(s - self.target) > self.tol + AWAY_MARGIN_DEG:
                self.state = "ready"
        if self.state == "ready" and inside:
            self.state, self.trial_start = "trial", t
            out.append(TrialStarted(t, t))
        if self.state == "trial":
            out += self._step_trial(t, s, inside)
        self._update_live(t, s, inside)
        return out

    def _step_trial(self, t: float, s: float, inside: bool) -> list[TaskEvent]:
        assert self.trial_start is not None
        if not inside:
            self.run_start = None
        else:
            if self.run_start is None:
                self.run_start, self.run_sum, self.run_n = t, 0.0, 0
            self.run_sum += s
            self.run_n += 1
            if t - self.run_start >= self.hold_s - 1e-9:
                return [self._finish(t, self.run_sum / self.run_n, True)]
        if t - self.trial_start > self.hold_s + SEEK_S:
            rows = self.window.between(self.trial_start, t)
            vals = [v for v in (self.signed(r) for r in rows) if math.isfinite(v)]
            return [self._finish(t, sum(vals) / len(vals) if vals else s, False)]
        return []

    def _finish(self, t: float, value: float, held: bool) -> TrialEnded:
        assert self.trial_start is not None
        err = value - self.target
        result = TrialResult(
            pattern="hold", start_time_s=self.trial_start, end_time_s=t, target_deg=self.target,
            tolerance_deg=self.tol, value_deg=value, error_deg=err, abs_error_deg=abs(err),
            in_tolerance=held and abs(err) <= self.tol, hold_achieved=held,
            time_to_target_s=None,
        )
        self.state, self.trial_start, self.run_start = "away", None, None
        return TrialEnded(t, result)

    def _update_live(self, t: float, s: float, inside: bool) -> None:
        live = self.live
        live.value_deg = s
        live.in_trial = self.state == "trial"
        live.zone = "in" if inside else ("below" if s < self.target else "above")
        if self.state == "trial" and self.run_start is not None and self.hold_s > 0:
            live.hold_progress = min(1.0, (t - self.run_start) / self.hold_s)
        else:
            live.hold_progress = 0.0
