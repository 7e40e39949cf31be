"""Tasks built on the repetition detector: to-target-and-back, dissociation, repositioning.

- to_target: move to the band and back (clinical.md "Grading": "move to a target and back").
  In tolerance = the peak lies in the band and the hold was achieved.
- dissociate: the same, while a second segment stays still (clinical.md: "hold neutral while the
  limbs or trunk move elsewhere"). The still segment's reference follows it at rest (time
  constant 0.5 s) while the moving segment is within 1 deg of rest, and is frozen during a
  movement; in tolerance also needs its largest
  deviation during the movement to stay within `still_limit_deg`.
- reproduce: show the target with the guide on (the patient must reach and hold it), come back,
  then reproduce it without the guide; the error is that of the position where the patient held
  still (clinical.md "Repositioning error": about 3 deg healthy versus 7 deg with LBP).

All of them move the signed angle `sign * (angle - anchor)`, so the detector (written for
forward bending) serves every direction. A movement the wrong way (beyond the start threshold
in the other direction) gets a "wrong direction" cue once per excursion and is never counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from feedback.library import Exercise
from feedback.quality import (
    SmoothnessFn,
    held_position,
    judge_tempo,
    lumbar_share,
    movement_quality,
    rise_time_s,
)
from feedback.repetitions import (
    Repetition,
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

STILL_REF_TAU_S = 0.5
STILL_REF_REST_DEG = 1.0  # the still segment's reference follows it only while the moving one rests
HELD_STILL_RANGE_DEG = 2.0
HELD_MIN_S = 0.5


class ReachTask:
    """to_target and dissociate (see module docstring)."""

    def __init__(self, exercise: Exercise, targets: LevelTargets, anchors: Mapping[str, float],
                 window: SampleWindow, *, params: RepetitionParams | None = None,
                 smoothness: SmoothnessFn | None = None) -> None:
        assert targets.spec is not None
        self.exercise, self.targets, self.spec = exercise, targets, targets.spec
        self.angle, self.sign = exercise.angle, exercise.direction.sign
        self.anchor = anchors[self.angle]
        self.window, self.smoothness = window, smoothness
        self.detector = RepetitionDetector(self.spec, params)
        self.still_angle = exercise.still_angle
        self.still_ref = anchors.get(self.still_angle, math.nan) if self.still_angle else math.nan
        self._still_last_t: float | None = None
        self._still_max_dev = 0.0
        self._was_resting = True
        self._wrong_flagged = False
        self.live = TaskLive(target_deg=self.spec.target_deg, low_deg=self.spec.low_deg,
                             high_deg=self.spec.high_deg,
                             still_limit_deg=targets.still_limit_deg)

    # -- streaming ---------------------------------------------------------------------------
    def signed(self, sample: Sample) -> float:
        return self.sign * (getattr(sample, self.angle) - self.anchor)

    def step(self, sample: Sample) -> list[TaskEvent]:
        s = self.signed(sample)
        out: list[TaskEvent] = []
        for ev in self.detector.step(sample.time_s, s):
            if isinstance(ev, RepetitionBegan):
                out += self._began(ev)
            elif isinstance(ev, RepetitionAborted):
                out += self._aborted(ev)
            elif isinstance(ev, RepetitionEnded):
                out += self._ended(ev.time_s, ev.repetition)
        self._track_still(sample, s)
        self._check_direction(sample.time_s, s, out)
        self._update_live(s)
        return out

    def _began(self, ev: RepetitionBegan) -> list[TaskEvent]:
        return [TrialStarted(ev.time_s, ev.start_time_s)]

    def _aborted(self, ev: RepetitionAborted) -> list[TaskEvent]:
        return [TrialInterrupted(ev.time_s, ev.start_time_s, ev.reason)]

    def _ended(self, t: float, rep: Repetition) -> list[TaskEvent]:
        return [TrialEnded(t, self._result(rep))]

    def _track_still(self, sample: Sample, s: float) -> None:
        resting = self.detector.resting
        if resting and not self._was_resting:
            self._still_max_dev = 0.0
        if not resting and self._was_resting:
            self._still_max_dev = 0.0  # a new movement: the reference freezes here
        self._was_resting = resting
        if self.still_angle is None:
            return
        v = getattr(sample, self.still_angle)
        if not math.isfinite(v):
            return
        at_rest = math.isfinite(s) and abs(s - self.detector.baseline_deg) <= STILL_REF_REST_DEG
        if resting and at_rest:
            if not math.isfinite(self.still_ref):
                self.still_ref = v
            elif self._still_last_t is not None:
                alpha = 1.0 - math.exp(-(sample.time_s - self._still_last_t) / STILL_REF_TAU_S)
                self.still_ref += alpha * (v - self.still_ref)
        elif not resting:
            self._still_max_dev = max(self._still_max_dev, abs(v - self.still_ref))
        self._still_last_t = sample.time_s
        self.live.still_deviation_deg = v - self.still_ref

    def _check_direction(self, t: float, s: float, out: list[TaskEvent]) -> None:
        if not math.isfinite(s):
            return
        threshold = self.spec.start_threshold_deg
        if s < -threshold and not self._wrong_flagged and self.detector.resting:
            self._wrong_flagged = True
            out.append(TaskCue(t, "wrong_direction", concurrent=False))
        elif s > -0.5 * threshold:
            self._wrong_flagged = False

    def _update_live(self, s: float) -> None:
        live, spec, det = self.live, self.spec, self.detector
        live.signal_ok = det.signal_ok
        live.value_deg = det.latest_deg if det.signal_ok else None
        live.in_trial = det.in_repetition
        live.hold_progress = det.hold_progress()
        if not det.signal_ok or not math.isfinite(s):
            live.zone = "no_signal"
        elif s < -spec.start_threshold_deg:
            live.zone = "wrong_direction"
        elif s > spec.high_deg:
            live.zone = "over"
        elif s >= spec.low_deg:
            live.zone = "in"
        elif det.in_repetition or s - det.baseline_deg > spec.start_threshold_deg:
            live.zone = "towards"
        else:
            live.zone = "rest"

    # -- scoring -----------------------------------------------------------------------------
    def _result(self, rep: Repetition, *, value_deg: float | None = None,
                held: bool | None = None) -> TrialResult:
        spec = rep.target
        rows = self.window.between(rep.start_time_s, rep.end_time_s)
        signed = [self.signed(r) for r in rows]
        quality = movement_quality(rows, signed, self.smoothness)
        out_rows = self.window.between(rep.start_time_s - 5.0, rep.peak_time_s)
        rise = rise_time_s([r.time_s for r in out_rows], [self.signed(r) for r in out_rows],
                           rep.peak_deg, rep.peak_time_s)
        peak_err = rep.peak_deg - spec.target_deg
        entered = rep.first_in_band_time_s is not None
        hold_ok = entered and rep.longest_hold_s >= spec.hold_s - 1e-9
        reached = spec.contains(rep.peak_deg)
        value = rep.peak_deg if value_deg is None else value_deg
        err = value - spec.target_deg
        still_dev = self._still_max_dev if self.still_angle else None
        still_ok = still_dev is None or still_dev <= (self.targets.still_limit_deg or math.inf)
        if value_deg is None:
            in_tol = reached and hold_ok and still_ok
        else:
            in_tol = abs(err) <= spec.tolerance_deg and bool(held)
        ttt = rep.first_in_band_time_s - rep.start_time_s if entered else None
        return TrialResult(
            pattern=self.exercise.pattern, start_time_s=rep.start_time_s,
            end_time_s=rep.end_time_s, target_deg=spec.target_deg,
            tolerance_deg=spec.tolerance_deg, value_deg=value, error_deg=err,
            abs_error_deg=abs(err), in_tolerance=in_tol, overshoot_deg=max(0.0, peak_err),
            time_to_target_s=ttt, hold_achieved=hold_ok if held is None else held,
            returned=rep.returned_to_neutral,
            tempo=judge_tempo(rise, self.targets.tempo_s),  # type: ignore[arg-type]
            peak_speed_deg_s=quality.peak_speed_deg_s, mean_speed_deg_s=quality.mean_speed_deg_s,
            sparc=quality.sparc, ldlj=quality.ldlj, lumbar_share=self._lumbar_share(rep),
            still_max_deviation_deg=still_dev, still_limit_deg=self.targets.still_limit_deg,
            target_reached=reached if self.still_angle else None,
        )

    def _lumbar_share(self, rep: Repetition) -> float | None:
        if self.angle not in ("flexion_deg", "pelvic_tilt_deg"):
            return None
        rows = self.window.between(rep.start_time_s - 0.5, rep.peak_time_s)
        if not rows:
            return None
        start = max((r for r in rows if r.time_s <= rep.start_time_s), key=lambda r: r.time_s,
                    default=rows[0])
        return lumbar_share(start, rows[-1])


class ReproduceTask(ReachTask):
    """reproduce (see module docstring): present with the guide, then reproduce without it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.presenting = True
        self._trial_start: float | None = None
        self.live.guide_on = True

    def _began(self, ev: RepetitionBegan) -> list[TaskEvent]:
        if self.presenting and self._trial_start is None:
            self._trial_start = ev.start_time_s
            return [TrialStarted(ev.time_s, ev.start_time_s)]
        return []

    def _aborted(self, ev: RepetitionAborted) -> list[TaskEvent]:
        start = self._trial_start if self._trial_start is not None else ev.start_time_s
        self._reset_trial()
        return [TrialInterrupted(ev.time_s, start, ev.reason)]

    def _reset_trial(self) -> None:
        self.presenting, self._trial_start, self.live.guide_on = True, None, True

    def _ended(self, t: float, rep: Repetition) -> list[TaskEvent]:
        spec = rep.target
        if self.presenting:
            held = rep.first_in_band_time_s is not None and rep.longest_hold_s >= spec.hold_s
            if not held:
                return [TaskCue(t, "present_again", concurrent=False)]
            self.presenting, self.live.guide_on = False, False
            return [TaskCue(t, "reproduce_now", concurrent=False)]
        rows = self.window.between(rep.start_time_s, rep.end_time_s)
        found = held_position([r.time_s for r in rows], [self.signed(r) for r in rows],
                              still_range_deg=HELD_STILL_RANGE_DEG, min_still_s=HELD_MIN_S,
                              above_deg=spec.start_threshold_deg)
        value, held = (rep.peak_deg, False) if found is None else (found[0], True)
        result = self._result(rep, value_deg=value, held=held)
        start = self._trial_start if self._trial_start is not None else rep.start_time_s
        self._reset_trial()
        return [TrialEnded(t, replace(result, start_time_s=start))]
