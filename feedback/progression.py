"""Progression across sessions: advance, hold or step back, one level (one parameter) at a time.

Rules (clinical.md "Grading" and "Feedback that teaches"): progress each person on how they
actually perform, judged on a retention block without feedback ("error inside the tolerance on
most repetitions", taken as >= 80 %, feedback/results.py) with pain not worse, and never into a
pain flare. Levels change one parameter each (feedback/library.py), so moving one level is
moving one parameter. Every decision is a `ProgressionDecision`: rule id, inputs, outcome and a
reason in words, for storage and the therapist page. Rules, first match wins:

| rule id                    | condition                                       | decision      |
|----------------------------|-------------------------------------------------|---------------|
| locked                     | the therapist locked the exercise               | hold          |
| missing_pain               | no pain rating before and after                 | hold          |
| pain_rise                  | pain after - before >= 2 (NRS)                  | step back     |
| no_retention               | no retention block, or < 3 counted repetitions  | hold          |
| advance                    | retention >= 80 % in tolerance, pain not worse  | advance       |
| top_level                  | as advance, at the top level                    | hold          |
| pain_worse                 | retention >= 80 % but pain after > before       | hold          |
| hold_on_failure            | retention < 80 %, failures in a row < 2         | hold          |
| step_back_repeated_failure | retention < 80 % for the 2nd time in a row      | step back     |
| (bottom_level)             | a step back at level 1                          | hold at 1     |
| therapist_set / _lock / _unlock | the therapist sets a level, locks, unlocks | as asked      |

Range changes between baselines below the minimal detectable change are reported as "no
measurable change" and never as progress (clinical.md "Measurement noise"), see
`review_baseline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from feedback.baseline import Baseline, compare_baselines
from feedback.events import plain
from feedback.library import Exercise
from feedback.outcomes import SessionPain
from feedback.results import MIN_RETENTION_REPS, RETENTION_CRITERION, BlockResult

PAIN_RISE_STEP_BACK = 2  # NRS points, before vs after
FAILURES_BEFORE_STEP_BACK = 2


@dataclass(frozen=True, slots=True)
class ExerciseProgress:
    """Where a patient stands on one exercise."""

    exercise_id: str
    level: int = 1
    locked: bool = False
    failures: int = 0  # failed retention blocks in a row at this level

    def as_dict(self) -> dict[str, Any]:
        return {"exercise_id": self.exercise_id, "level": self.level, "locked": self.locked,
                "failures": self.failures}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExerciseProgress:
        return cls(str(data["exercise_id"]), int(data["level"]), bool(data["locked"]),
                   int(data["failures"]))


@dataclass(frozen=True, slots=True)
class ProgressionDecision:
    rule_id: str
    exercise_id: str
    outcome: str  # advance, hold, step_back, set, lock, unlock, report
    from_level: int | None
    to_level: int | None
    reason: str  # for the therapist
    patient_message: str  # for the patient: encouraging, never overclaiming
    inputs: dict[str, Any] = field(default_factory=dict)
    changed_parameter: str | None = None
    actor: str = "rules"  # or "therapist"

    def as_dict(self) -> dict[str, Any]:
        return {k: plain(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProgressionDecision:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _level_change(exercise: Exercise, lower: int) -> str:
    """Words for what level `lower + 1` changes relative to `lower`."""
    upper = lower + 1
    name = exercise.changed_parameter(upper)
    if name is None:
        return "nothing"
    a, b = getattr(exercise.level(lower), name), getattr(exercise.level(upper), name)
    return f"{name} {a} -> {b}"


def decide(progress: ExerciseProgress, exercise: Exercise, retention: BlockResult | None,
           pain: SessionPain | None) -> tuple[ProgressionDecision, ExerciseProgress]:
    """Apply the rule table (module docstring) to one exercise after one session."""
    lv, top = progress.level, len(exercise.levels)
    inputs: dict[str, Any] = {
        "level": lv, "levels": top, "locked": progress.locked, "failures": progress.failures,
        "retention": None if retention is None else retention.as_dict(with_results=False),
        "pain": None if pain is None else pain.as_dict(),
        "criterion": RETENTION_CRITERION,
    }

    def make(rule: str, outcome: str, to: int, reason: str, message: str,
             failures: int) -> tuple[ProgressionDecision, ExerciseProgress]:
        changed = None
        if to > lv:
            changed = exercise.changed_parameter(to)
        elif to < lv:
            changed = exercise.changed_parameter(lv)
        return (ProgressionDecision(rule, exercise.id, outcome, lv, to, reason, message, inputs,
                                    changed),
                replace(progress, level=to, failures=failures))

    if progress.locked:
        return make("locked", "hold", lv, "Level locked by the therapist.",
                    "Keep practising this level.", progress.failures)
    if pain is None:
        return make("missing_pain", "hold", lv, "No pain rating before and after the session; "
                    "progression needs it (never progress into a pain flare).",
                    "Please rate your pain before and after practice.", progress.failures)
    if pain.change >= PAIN_RISE_STEP_BACK:
        to = max(1, lv - 1)
        if to == lv:
            return make("bottom_level", "hold", lv, f"Pain rose {pain.change} points "
                        f"({pain.before} -> {pain.after}); already at level 1.",
                        "Let's keep it gentle. Tell your therapist about the pain.", 0)
        return make("pain_rise", "step_back", to, f"Pain rose {pain.change} points "
                    f"({pain.before} -> {pain.after}), at least {PAIN_RISE_STEP_BACK}: back one "
                    f"level ({_level_change(exercise, to)} undone).",
                    "We'll make it a little easier next time. Tell your therapist how you feel.",
                    0)
    if retention is None or retention.reps < MIN_RETENTION_REPS:
        n = 0 if retention is None else retention.reps
        return make("no_retention", "hold", lv, f"Retention block without feedback missing or "
                    f"too short ({n} counted repetitions, {MIN_RETENTION_REPS} needed).",
                    "Keep practising this level.", progress.failures)
    share = retention.share_in_tolerance or 0.0
    got = f"{retention.reps_in_tolerance} of {retention.reps} ({share:.0%})"
    if retention.criterion_met:
        if pain.change > 0:
            return make("pain_worse", "hold", lv, f"Retention criterion met ({got}), but pain "
                        f"was worse after ({pain.before} -> {pain.after}).",
                        "Good control. We'll stay at this level for now.", 0)
        if lv >= top:
            return make("top_level", "hold", lv, f"Retention criterion met ({got}) at the top "
                        "level; the therapist may add load or choose the next exercise.",
                        "Excellent: you have mastered every level of this exercise.", 0)
        return make("advance", "advance", lv + 1, f"Retention criterion met ({got}) with pain "
                    f"not worse ({pain.before} -> {pain.after}): next level "
                    f"({_level_change(exercise, lv)}).",
                    "Well done: you've earned the next step.", 0)
    failures = progress.failures + 1
    if failures >= FAILURES_BEFORE_STEP_BACK and lv > 1:
        return make("step_back_repeated_failure", "step_back", lv - 1,
                    f"Retention below {RETENTION_CRITERION:.0%} ({got}) for the {failures}th "
                    f"time in a row: back one level ({_level_change(exercise, lv - 1)} undone).",
                    "Let's consolidate with a slightly easier version.", 0)
    return make("hold_on_failure", "hold", lv, f"Retention below {RETENTION_CRITERION:.0%} "
                f"({got}); {failures} in a row.", "Keep practising: this takes time.", failures)


# -- the therapist -----------------------------------------------------------------------------
def therapist_set(progress: ExerciseProgress, exercise: Exercise, level: int, reason: str,
                  therapist: str | None = None) -> tuple[ProgressionDecision, ExerciseProgress]:
    exercise.level(level)  # validates
    return (ProgressionDecision("therapist_set", exercise.id, "set", progress.level, level,
                                f"Set by the therapist: {reason}", "Your therapist has set "
                                "your level.", {"therapist": therapist, "requested": level},
                                actor="therapist"),
            replace(progress, level=level, failures=0))


def therapist_lock(progress: ExerciseProgress, reason: str, therapist: str | None = None,
                   lock: bool = True) -> tuple[ProgressionDecision, ExerciseProgress]:
    rule, outcome = ("therapist_lock", "lock") if lock else ("therapist_unlock", "unlock")
    return (ProgressionDecision(rule, progress.exercise_id, outcome, progress.level,
                                progress.level, f"{outcome.capitalize()}ed by the therapist: "
                                f"{reason}", "", {"therapist": therapist}, actor="therapist"),
            replace(progress, locked=lock))


def review_baseline(old: Baseline, new: Baseline) -> ProgressionDecision:
    """A record of what changed between two baselines; sub-MDC changes are "no measurable
    change" and the patient message claims only measurable improvements."""
    changes = compare_baselines(old, new)
    lines = [f"{c.measure}: {c.old:.1f} -> {c.new:.1f} ({c.label})" for c in changes
             if c.mdc is not None]
    gained = [c.measure.replace("_range", "").replace("_", " ") for c in changes
              if c.measurable and c.measure.endswith("_range") and c.change > 0]
    message = ("Your range has measurably improved: " + ", ".join(gained) + "." if gained else
               "Your measurements are steady: no change beyond measurement noise yet. "
               "Control and confidence often improve before range does.")
    return ProgressionDecision("baseline_mdc", "baseline", "report", None, None,
                               "; ".join(lines) or "nothing to compare", message,
                               {"changes": [c.as_dict() for c in changes]})
