"""Results of a block (a set or a retention block) of one exercise, for progression and storage.

The retention criterion lives here because both the engine (to tell the patient) and progression
(to decide) use it: clinical.md "Feedback that teaches": "A sensible progression criterion: error
inside the tolerance on most repetitions of a block without feedback, with pain not worse";
"most" is taken as at least 80 %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedback.events import plain
from feedback.trial import TrialResult

RETENTION_CRITERION = 0.8
MIN_RETENTION_REPS = 3  # fewer counted repetitions cannot show "most"


@dataclass(frozen=True, slots=True)
class BlockResult:
    exercise_id: str
    level: int
    kind: str  # "set" or "retention"
    index: int  # set number, or 1 for the retention block
    feedback: str  # schedule mode ("none" for retention)
    reps_planned: int
    reps: int  # counted (scored) repetitions
    reps_in_tolerance: int
    interrupted: int
    feedback_shown: int  # repetitions whose full result the patient saw
    mean_abs_error_deg: float | None
    mean_error_deg: float | None
    results: tuple[TrialResult, ...] = field(default=(), repr=False)

    @property
    def share_in_tolerance(self) -> float | None:
        return self.reps_in_tolerance / self.reps if self.reps else None

    @property
    def criterion_met(self) -> bool:
        """>= 80 % inside the tolerance over at least MIN_RETENTION_REPS counted repetitions."""
        share = self.share_in_tolerance
        return self.reps >= MIN_RETENTION_REPS and share is not None and (
            share >= RETENTION_CRITERION - 1e-9)

    def as_dict(self, *, with_results: bool = True) -> dict[str, Any]:
        out = {k: plain(getattr(self, k)) for k in (
            "exercise_id", "level", "kind", "index", "feedback", "reps_planned", "reps",
            "reps_in_tolerance", "interrupted", "feedback_shown", "mean_abs_error_deg",
            "mean_error_deg")}
        out["share_in_tolerance"] = plain(self.share_in_tolerance)
        out["criterion_met"] = self.criterion_met
        if with_results:
            out["results"] = [r.as_dict() for r in self.results]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockResult:
        """Summary fields only (stored results are for display, not re-judged)."""
        keys = ("exercise_id", "level", "kind", "index", "feedback", "reps_planned", "reps",
                "reps_in_tolerance", "interrupted", "feedback_shown", "mean_abs_error_deg",
                "mean_error_deg")
        return cls(**{k: data[k] for k in keys})


def summarize_block(exercise_id: str, level: int, kind: str, index: int, feedback: str,
                    reps_planned: int, results: Sequence[TrialResult], interrupted: int,
                    feedback_shown: int) -> BlockResult:
    n = len(results)
    return BlockResult(
        exercise_id=exercise_id, level=level, kind=kind, index=index, feedback=feedback,
        reps_planned=reps_planned, reps=n, reps_in_tolerance=sum(r.in_tolerance for r in results),
        interrupted=interrupted, feedback_shown=feedback_shown,
        mean_abs_error_deg=sum(r.abs_error_deg for r in results) / n if n else None,
        mean_error_deg=sum(r.error_deg for r in results) / n if n else None,
        results=tuple(results),
    )
