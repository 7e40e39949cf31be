"""Functional tasks (sit-to-stand, reach, lift from low) with a lumbar angle limit.

One repetition is one movement of the task angle (the upper trunk leaning forward) of at least
`task.amplitude_deg` from the start position and back, found by the repetition detector. During
it the limited angle (lumbar flexion, from calibrated neutral standing) should stay below
`lumbar_limit x baseline range`: the hips and knees, not the lower back, take the movement
(clinical.md "Grading": functional tasks come after precision and dissociation). Crossing the
limit gives a concurrent cue (a tone or vibration), the cue the wearable spine-feedback studies
use most (clinical.md "Feedback that teaches"); it re-arms 2 deg below the limit.
A lean smaller than the task amplitude is not a task repetition ("too_small"), and not an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from feedback.directions import direction
from feedback.library import Exercise
from feedback.quality import SmoothnessFn, movement_quality
from feedback.repetitions import (
    RepetitionAborted,
    RepetitionBegan,
    RepetitionDetector,
    RepetitionEnded,
    RepetitionParams,
)
from feedback.samples import Sample, SampleWindow
from feedback.targets import LevelTargets
from feedback.trial import (
    TaskCue,
    TaskEvent,
    TaskLive,
    TrialEnded,
    TrialInterrupted,
    TrialResult,
    TrialStarted,
)

REARM_DEG = 2.0
NEAR_DEG = 3.0


class FunctionalTask:
    def __init__(self, exercise: Exercise, targets: LevelTargets, anchors: Mapping[str, float],
                 window: SampleWindow, *, params: RepetitionParams | None = None,
                 smoothness: SmoothnessFn | None = None) -> None:
        task = exercise.task
        assert task is not None and targets.task_spec is not None and targets.limit_deg is not None
        self.exercise, self.window, self.smoothness = exercise, window, smoothness
        self.task_angle = task.angle
        self.task_sign = direction(task.angle, task.direction).sign
        self.task_anchor = anchors[task.angle]
        self.lim_angle = task.limit_angle
        self.lim_sign = direction(task.limit_angle, task.limit_direction).sign
        self.lim_anchor = 0.0 if exercise.reference == "neutral" else anchors[task.limit_angle]
        self.limit = targets.limit_deg
        self.amplitude = task.amplitude_deg
        self.detector = RepetitionDetector(targets.task_spec, params)
        self.max_lim = -math.inf
        self.over_s = 0.0
        self.last: tuple[float, float] | None = None
        self.crossed = False
        self.live = TaskLive(limit_deg=self.limit)

    def task_value(self, sample: Sample) -> float:
        return self.task_sign * (getattr(sample, self.task_angle) - self.task_anchor)

    def limit_value(self, sample: Sample) -> float:
        return self.lim_sign * (getattr(sample, self.lim_angle) - self.lim_anchor)

    def step(self, sample: Sample) -> list[TaskEvent]:
        t, u, lim = sample.time_s, self.task_value(sample), self.limit_value(sample)
        out: list[TaskEvent] = []
        was_resting = self.detector.resting
        for ev in self.detector.step(t, u):
            if isinstance(ev, RepetitionBegan):
                out.append(TrialStarted(ev.time_s, ev.start_time_s))
            elif isinstance(ev, RepetitionAborted):
                out.append(TrialInterrupted(ev.time_s, ev.start_time_s, ev.reason))
            elif isinstance(ev, RepetitionEnded):
                out.append(self._ended(ev))
        if was_resting and not self.detector.resting:
            self.max_lim, self.over_s, self.last = -math.inf, 0.0, None
        if math.isfinite(lim):
            if not self.detector.resting:
                self.max_lim = max(self.max_lim, lim)
                if self.last is not None and self.last[1] > self.limit:
                    self.over_s += t - self.last[0]
                self.last = (t, lim)
            if lim > self.limit and not self.crossed:
                self.crossed = True
                out.append(TaskCue(t, "limit_crossed", concurrent=True))
            elif lim < self.limit - REARM_DEG:
                self.crossed = False
        live = self.live
        live.signal_ok = self.detector.signal_ok and math.isfinite(lim)
        live.value_deg = u if math.isfinite(u) else None
        live.limit_value_deg = lim if math.isfinite(lim) else None
        live.in_trial = self.detector.in_repetition
        if not live.signal_ok:
            live.zone = "no_signal"
        elif lim > self.limit:
            live.zone = "over"
        elif lim > self.limit - NEAR_DEG:
            live.zone = "near"
        else:
            live.zone = "ok"
        return out

    def _ended(self, ev: RepetitionEnded) -> TaskEvent:
        rep = ev.repetition
        if rep.peak_deg < self.amplitude:
            return TrialInterrupted(ev.time_s, rep.start_time_s, "too_small")
        rows = self.window.between(rep.start_time_s, rep.end_time_s)
        quality = movement_quality(rows, [self.task_value(r) for r in rows], self.smoothness)
        peak = self.max_lim if math.isfinite(self.max_lim) else 0.0
        err = peak - self.limit
        return TrialEnded(ev.time_s, TrialResult(
            pattern="functional", start_time_s=rep.start_time_s, end_time_s=rep.end_time_s,
            target_deg=None, tolerance_deg=None, value_deg=peak, error_deg=err,
            abs_error_deg=abs(err), in_tolerance=err <= 0.0, returned=rep.returned_to_neutral,
            peak_speed_deg_s=quality.peak_speed_deg_s, mean_speed_deg_s=quality.mean_speed_deg_s,
            sparc=quality.sparc, ldlj=quality.ldlj, limit_deg=self.limit,
            time_over_limit_s=self.over_s,
        ))
