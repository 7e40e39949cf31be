"""One repetition's outcome in any pattern (a "trial"), and what the tasks tell the engine.

All angles are *signed*: `sign * (angle - reference)` for the exercise's direction (see
feedback/directions.py), so "past the target" is always a positive error whichever way the
patient moves. A trial is `in_tolerance` when it met the pattern's criterion; that is what sets
are summarised by and what progression judges on retention blocks (clinical.md: "error inside the
tolerance on most repetitions of a block without feedback").
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from feedback.events import plain

Category = Literal["short", "on_target", "past", "within", "over"]


@dataclass(frozen=True, slots=True)
class TrialResult:
    """Knowledge of results (the first block of fields) and of performance (the rest)."""

    pattern: str
    start_time_s: float
    end_time_s: float
    target_deg: float | None  # signed target (0 = the reference); None for functional tasks
    tolerance_deg: float | None
    value_deg: float  # what was achieved: peak, held or reproduced position, mean tracking error
    error_deg: float  # signed: > 0 past the target (over the limit), < 0 short of it
    abs_error_deg: float
    in_tolerance: bool
    overshoot_deg: float | None = None  # how far the movement went past the target at its peak
    time_to_target_s: float | None = None
    hold_achieved: bool | None = None
    returned: bool | None = None  # came back to the start position
    # knowledge of performance
    tempo: Literal["fast", "ok", "slow"] | None = None
    peak_speed_deg_s: float | None = None
    mean_speed_deg_s: float | None = None
    sparc: float | None = None
    ldlj: float | None = None
    lumbar_share: float | None = None
    still_max_deviation_deg: float | None = None  # dissociation
    still_limit_deg: float | None = None
    limit_deg: float | None = None  # functional: the lumbar limit
    time_over_limit_s: float | None = None
    share_in_band: float | None = None  # tracking: share of the cycle inside the band
    target_reached: bool | None = None  # dissociation: the moving segment's part

    @property
    def category(self) -> Category:
        """Plain-words category, used for the patient's self-estimate."""
        if self.pattern == "functional":
            return "over" if self.error_deg > 0 else "within"
        tol = self.tolerance_deg or 0.0
        if self.error_deg < -tol:
            return "short"
        if self.error_deg > tol:
            return "past"
        return "on_target"

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: plain(getattr(self, f.name)) for f in fields(self)}
        out["category"] = self.category
        return out


@dataclass(frozen=True, slots=True)
class TrialStarted:
    time_s: float
    start_time_s: float


@dataclass(frozen=True, slots=True)
class TrialEnded:
    time_s: float
    result: TrialResult


@dataclass(frozen=True, slots=True)
class TrialInterrupted:
    time_s: float
    start_time_s: float
    reason: str  # "signal_gap", "too_long", "no_hold", ...


@dataclass(frozen=True, slots=True)
class TaskCue:
    """A cue the task wants said now (wrong direction, limit crossed, show the target again)."""

    time_s: float
    kind: str
    concurrent: bool  # True: live feedback, only given when the schedule allows it


TaskEvent = TrialStarted | TrialEnded | TrialInterrupted | TaskCue


@dataclass(slots=True)
class TaskLive:
    """The task's part of the live state (signed degrees)."""

    value_deg: float | None = None
    target_deg: float | None = None
    low_deg: float | None = None
    high_deg: float | None = None
    zone: str = "rest"
    hold_progress: float = 0.0
    in_trial: bool = False
    guide_on: bool | None = None  # reproduce: the target is shown (presentation)
    still_deviation_deg: float | None = None
    still_limit_deg: float | None = None
    limit_value_deg: float | None = None
    limit_deg: float | None = None
    signal_ok: bool = True
