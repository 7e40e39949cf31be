"""Practice engine for "bend forward to the target and back": angles in, feedback events out.

Glues the repetition detector and the scoring into sets, and keeps the live state the display
shows between repetitions (zone, count, hold progress). Pure: time comes with the samples, so the
same stream gives the same events however it is cut into batches, live or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from feedback.events import FeedbackEvent
from feedback.exercise import (
    FLEXION_EXERCISE,
    ExerciseError,
    ExerciseLevel,
    TargetSpec,
    target_for,
)
from feedback.repetitions import (
    AbortReason,
    RepetitionAborted,
    RepetitionBegan,
    RepetitionDetector,
    RepetitionEnded,
    RepetitionParams,
)
from feedback.scoring import RepetitionScore, SetSummary, score_repetition, summarize_set

Zone = Literal["rest", "below", "in", "over"]

_INTERRUPTED_MESSAGES: dict[str, str] = {
    "signal_gap": "Lost the sensor signal, so that one doesn't count. Stand upright to carry on",
    "too_long": "That one doesn't count. Come back upright, then bend again when ready",
}


@dataclass(frozen=True, slots=True)
class RepetitionStarted(FeedbackEvent):
    set_index: int
    rep_number: int  # 1-based within the set, if this repetition completes
    start_time_s: float
    target: TargetSpec
    type: ClassVar[str] = "repetition_started"

    def _payload(self) -> dict[str, Any]:
        return {"set_index": self.set_index, "rep_number": self.rep_number,
                "start_time_s": round(self.start_time_s, 3), "target": self.target.as_dict()}


@dataclass(frozen=True, slots=True)
class RepetitionScored(FeedbackEvent):
    set_index: int
    rep_number: int
    score: RepetitionScore
    type: ClassVar[str] = "repetition_scored"

    def _payload(self) -> dict[str, Any]:
        return {"set_index": self.set_index, "rep_number": self.rep_number,
                "score": self.score.as_dict()}


@dataclass(frozen=True, slots=True)
class RepetitionInterrupted(FeedbackEvent):
    """A repetition that could not be judged: not counted, and not an error."""

    set_index: int
    rep_number: int
    start_time_s: float
    reason: AbortReason
    message: str
    type: ClassVar[str] = "repetition_interrupted"

    def _payload(self) -> dict[str, Any]:
        return {"set_index": self.set_index, "rep_number": self.rep_number,
                "start_time_s": round(self.start_time_s, 3), "reason": self.reason,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class SetCompleted(FeedbackEvent):
    summary: SetSummary
    type: ClassVar[str] = "set_completed"

    def _payload(self) -> dict[str, Any]:
        return {"summary": self.summary.as_dict()}


@dataclass(frozen=True, slots=True)
class LiveFeedback:
    """What the display shows now (concurrent feedback); built from the latest sample.

    zone: "rest" near neutral and not in a repetition; "below" under the band while bending (or
    holding short of it); "in" inside the band; "over" above it. Extension is "rest": it is no
    progress towards a flexion target. During a signal gap (no valid sample for longer than
    `RepetitionParams.max_gap_s`) flexion_deg is None, zone "rest" and signal_ok False.
    """

    time_s: float | None
    flexion_deg: float | None  # latest valid sample
    zone: Zone
    rep_count: int  # scored repetitions in the current set
    reps_per_set: int
    set_index: int
    hold_progress: float  # 0..1 in the repetition in progress
    in_repetition: bool
    signal_ok: bool
    target: TargetSpec

    def as_dict(self) -> dict[str, Any]:
        return {
            "time_s": None if self.time_s is None else round(self.time_s, 3),
            "flexion_deg": None if self.flexion_deg is None else round(self.flexion_deg, 2),
            "zone": self.zone,
            "rep_count": self.rep_count,
            "reps_per_set": self.reps_per_set,
            "set_index": self.set_index,
            "hold_progress": round(self.hold_progress, 3),
            "in_repetition": self.in_repetition,
            "signal_ok": self.signal_ok,
            "target": self.target.as_dict(),
        }


class FlexionPracticeEngine:
    """Sets of "bend forward to the target and back", scored repetition by repetition."""

    def __init__(
        self,
        target: TargetSpec,
        reps_per_set: int,
        *,
        params: RepetitionParams | None = None,
        first_set_index: int = 1,
    ) -> None:
        if not isinstance(target, TargetSpec):
            raise TypeError(f"target must be a TargetSpec, got {type(target).__name__}")
        if isinstance(reps_per_set, bool) or not isinstance(reps_per_set, int) or reps_per_set < 1:
            raise ExerciseError(f"reps_per_set must be a whole number >= 1, got {reps_per_set!r}")
        self._target = target
        self._reps_per_set = reps_per_set
        self._detector = RepetitionDetector(target, params)
        self._set_index = first_set_index
        self._scores: list[RepetitionScore] = []
        self._interrupted = 0
        self._completed: list[SetSummary] = []
        self._time_s: float | None = None

    @classmethod
    def from_level(
        cls,
        level: int | ExerciseLevel,
        comfortable_flexion_deg: float | None = None,
        *,
        target_deg: float | None = None,
        params: RepetitionParams | None = None,
    ) -> FlexionPracticeEngine:
        """An engine for a level of the default ladder (target, tolerance, hold, reps, tempo)."""
        lvl = level if isinstance(level, ExerciseLevel) else FLEXION_EXERCISE.level(level)
        target = target_for(lvl, comfortable_flexion_deg, target_deg=target_deg)
        return cls(target, lvl.reps_per_set, params=params)

    # -- inputs ----------------------------------------------------------------------------------
    def update(self, time_s: np.ndarray, flexion_deg: np.ndarray) -> list[FeedbackEvent]:
        """Feed the next samples (any batch size, NaN = missing); return events in time order."""
        detected = self._detector.update(time_s, flexion_deg)
        if len(time_s):
            self._time_s = float(np.asarray(time_s, dtype=float)[-1])
        events: list[FeedbackEvent] = []
        for ev in detected:
            rep_number = len(self._scores) + 1
            if isinstance(ev, RepetitionBegan):
                events.append(RepetitionStarted(ev.time_s, self._set_index, rep_number,
                                                ev.start_time_s, ev.target))
            elif isinstance(ev, RepetitionAborted):
                self._interrupted += 1
                events.append(RepetitionInterrupted(ev.time_s, self._set_index, rep_number,
                                                    ev.start_time_s, ev.reason,
                                                    _INTERRUPTED_MESSAGES[ev.reason]))
            elif isinstance(ev, RepetitionEnded):
                score = score_repetition(ev.repetition)
                self._scores.append(score)
                events.append(RepetitionScored(ev.time_s, self._set_index, rep_number, score))
                if len(self._scores) >= self._reps_per_set:
                    summary = self._summarize(completed=True)
                    events.append(SetCompleted(ev.time_s, summary))
                    self._completed.append(summary)
                    self._set_index += 1
                    self._scores = []
                    self._interrupted = 0
        return events

    def set_target(self, target: TargetSpec) -> None:
        """New target: the live zone uses it at once, scoring from the next repetition on."""
        if not isinstance(target, TargetSpec):
            raise TypeError(f"target must be a TargetSpec, got {type(target).__name__}")
        self._target = target
        self._detector.set_target(target)

    # -- outputs ---------------------------------------------------------------------------------
    @property
    def target(self) -> TargetSpec:
        return self._target

    @property
    def state(self) -> LiveFeedback:
        det = self._detector
        flexion_deg = det.latest_deg
        return LiveFeedback(
            time_s=self._time_s,
            flexion_deg=flexion_deg,
            zone=self._zone(flexion_deg),
            rep_count=len(self._scores),
            reps_per_set=self._reps_per_set,
            set_index=self._set_index,
            hold_progress=det.hold_progress(),
            in_repetition=det.in_repetition,
            signal_ok=det.signal_ok,
            target=self._target,
        )

    def summary(self) -> SetSummary:
        """The set in progress (possibly empty right after a set completed; see completed_sets)."""
        return self._summarize(completed=False)

    @property
    def completed_sets(self) -> tuple[SetSummary, ...]:
        return tuple(self._completed)

    def _summarize(self, completed: bool) -> SetSummary:
        return summarize_set(self._scores, set_index=self._set_index,
                             reps_per_set=self._reps_per_set, interrupted=self._interrupted,
                             completed=completed)

    def _zone(self, flexion_deg: float | None) -> Zone:
        if flexion_deg is None:
            return "rest"
        t = self._target
        if flexion_deg > t.high_deg:
            return "over"
        if flexion_deg >= t.low_deg:
            return "in"
        det = self._detector
        if det.in_repetition or flexion_deg - det.baseline_deg > t.start_threshold_deg:
            return "below"
        return "rest"

