"""Events of the practice engine and the program runner (one JSON message each, `as_dict()`).

`audience` says who sees it: "patient" events are feedback, prompts and cues (each with text and
audio); "therapist" events are records (every repetition's full result, even in blocks without
feedback, where the patient must not see it: clinical.md, retention blocks without feedback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from feedback.cues import Cue
from feedback.events import FeedbackEvent
from feedback.results import BlockResult
from feedback.trial import TrialResult


@dataclass(frozen=True, slots=True)
class PracticeEvent(FeedbackEvent):
    exercise_id: str
    audience: ClassVar[str] = "patient"

    def as_dict(self) -> dict[str, Any]:
        out = super(PracticeEvent, self).as_dict()
        out["audience"] = self.audience
        return out


@dataclass(frozen=True, slots=True)
class BlockStarted(PracticeEvent):
    """A set or the retention block starts: find the start position first."""

    level: int
    kind: str  # "set" / "retention"
    index: int
    reps: int
    feedback: str
    concurrent: bool
    instructions: str
    cue: Cue
    type: ClassVar[str] = "block_started"


@dataclass(frozen=True, slots=True)
class StartPositionFound(PracticeEvent):
    anchors_deg: dict[str, float]
    cue: Cue
    type: ClassVar[str] = "start_position_found"


@dataclass(frozen=True, slots=True)
class RepetitionBegun(PracticeEvent):
    kind: str
    index: int
    rep_number: int
    start_time_s: float
    type: ClassVar[str] = "repetition_started"


@dataclass(frozen=True, slots=True)
class RepetitionRecorded(PracticeEvent):
    """Every counted repetition, for storage and the therapist page."""

    level: int
    kind: str
    index: int
    rep_number: int
    result: TrialResult
    type: ClassVar[str] = "repetition_recorded"
    audience: ClassVar[str] = "therapist"


@dataclass(frozen=True, slots=True)
class RepetitionFeedback(PracticeEvent):
    """Knowledge of results (and of performance) the patient gets for one repetition."""

    rep_number: int
    praise_only: bool
    result: TrialResult | None  # None for praise-only (bandwidth inside the tolerance)
    cue: Cue
    performance: Cue | None
    type: ClassVar[str] = "repetition_feedback"


@dataclass(frozen=True, slots=True)
class FeedbackAvailable(PracticeEvent):
    """Self-controlled feedback: the patient may ask for this repetition's result."""

    rep_number: int
    cue: Cue
    type: ClassVar[str] = "feedback_available"


@dataclass(frozen=True, slots=True)
class SummaryFeedback(PracticeEvent):
    first_rep: int
    last_rep: int
    reps_in_tolerance: int
    mean_abs_error_deg: float
    cue: Cue
    type: ClassVar[str] = "summary_feedback"


@dataclass(frozen=True, slots=True)
class SelfEstimatePrompt(PracticeEvent):
    """Asked before a result is shown: answer with `submit_self_estimate`."""

    rep_number: int
    options: tuple[str, ...]
    cue: Cue
    type: ClassVar[str] = "self_estimate_prompt"


@dataclass(frozen=True, slots=True)
class SelfEstimateResult(PracticeEvent):
    rep_number: int
    estimate: str  # category the patient chose (or derived from their degrees)
    estimate_deg: float | None
    actual: str
    actual_error_deg: float
    matched: bool
    difference_deg: float | None  # estimate_deg - actual error, when degrees were given
    cue: Cue
    type: ClassVar[str] = "self_estimate_result"


@dataclass(frozen=True, slots=True)
class SelfEstimateExpired(PracticeEvent):
    rep_number: int
    type: ClassVar[str] = "self_estimate_expired"


@dataclass(frozen=True, slots=True)
class RepetitionInterrupted(PracticeEvent):
    """Not counted and not an error (signal gap, stayed out too long, too small a movement)."""

    rep_number: int
    start_time_s: float
    reason: str
    cue: Cue
    type: ClassVar[str] = "repetition_interrupted"


@dataclass(frozen=True, slots=True)
class MovementCue(PracticeEvent):
    kind: str  # wrong_direction, limit_crossed, present_again, reproduce_now, idle
    cue: Cue
    type: ClassVar[str] = "movement_cue"


@dataclass(frozen=True, slots=True)
class BlockCompleted(PracticeEvent):
    result: BlockResult
    cue: Cue
    type: ClassVar[str] = "block_completed"


@dataclass(frozen=True, slots=True)
class RestStarted(PracticeEvent):
    duration_s: float
    cue: Cue
    type: ClassVar[str] = "rest_started"


@dataclass(frozen=True, slots=True)
class ExerciseCompleted(PracticeEvent):
    level: int
    blocks: tuple[BlockResult, ...]
    type: ClassVar[str] = "exercise_completed"

    def _payload(self) -> dict[str, Any]:
        return {"exercise_id": self.exercise_id, "level": self.level,
                "blocks": [b.as_dict(with_results=False) for b in self.blocks]}
