"""What a level of an exercise means for one patient, in degrees.

Amplitude is a share of the patient's own comfortable range in the exercise's direction, measured
at baseline (clinical.md "Grading"); the functional tasks' lumbar limit likewise. Everything the
engines need is resolved here once, so a level that cannot work for this patient (a band that
would reach into the rest zone of a small range) fails before the session, with a message that
says which exercise, which level and which baseline range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from feedback.directions import direction
from feedback.exercise import ExerciseError, TargetSpec
from feedback.library import Exercise, Level


class HasRanges(Protocol):
    def range_deg(self, key: str) -> float: ...


TASK_DETECTION_TOLERANCE_DEG = 2.0


@dataclass(frozen=True, slots=True)
class LevelTargets:
    exercise_id: str
    level: int
    range_deg: float | None  # baseline range the amplitude is a share of
    target_deg: float | None  # signed; 0 = the reference (neutral hold)
    tolerance_deg: float | None
    hold_s: float
    tempo_s: float | None
    still_limit_deg: float | None
    limit_deg: float | None  # functional: lumbar limit from neutral, degrees
    spec: TargetSpec | None  # detector target (to_target, dissociate, reproduce)
    task_spec: TargetSpec | None  # functional: detects one task movement

    def as_dict(self) -> dict[str, object]:
        return {
            "exercise_id": self.exercise_id, "level": self.level, "range_deg": self.range_deg,
            "target_deg": self.target_deg, "tolerance_deg": self.tolerance_deg,
            "hold_s": self.hold_s, "tempo_s": self.tempo_s,
            "still_limit_deg": self.still_limit_deg, "limit_deg": self.limit_deg,
        }


def resolve(exercise: Exercise, level: int | Level, baseline: HasRanges) -> LevelTargets:
    """Degrees for `level` of `exercise` given the patient's baseline; ExerciseError if unusable."""
    lv = level if isinstance(level, Level) else exercise.level(level)
    where = f"{exercise.id} level {lv.number}"
    range_deg = target = limit = None
    spec = task_spec = None
    try:
        if exercise.pattern == "functional":
            assert exercise.task is not None
            lim_dir = direction(exercise.task.limit_angle, exercise.task.limit_direction)
            assert lim_dir.range_key is not None and lv.lumbar_limit is not None
            range_deg = _range(baseline, lim_dir.range_key, where)
            limit = lv.lumbar_limit * range_deg
            task_spec = TargetSpec(target_deg=exercise.task.amplitude_deg,
                                   tolerance_deg=TASK_DETECTION_TOLERANCE_DEG,
                                   start_threshold_min_deg=exercise.start_threshold_min_deg)
        else:
            key = exercise.direction.range_key
            assert key is not None and lv.amplitude is not None
            range_deg = _range(baseline, key, where)
            target = lv.amplitude * range_deg
            if exercise.pattern in ("to_target", "dissociate", "reproduce"):
                # tempo is judged on the rise time (feedback/quality.py), not by the detector
                spec = TargetSpec(
                    target_deg=target, tolerance_deg=lv.tolerance_deg or 0.0,
                    hold_s=lv.hold_s or 0.0,
                    start_threshold_min_deg=exercise.start_threshold_min_deg,
                )
    except ExerciseError as exc:
        if range_deg is None:  # the baseline itself is missing the range
            raise
        raise ExerciseError(
            f"{where}: {exc} (baseline range {range_deg:.1f}°); choose another level or "
            "exercise, or repeat the baseline") from None
    return LevelTargets(
        exercise_id=exercise.id, level=lv.number, range_deg=range_deg, target_deg=target,
        tolerance_deg=lv.tolerance_deg, hold_s=lv.hold_s or 0.0, tempo_s=lv.tempo_s,
        still_limit_deg=lv.still_limit_deg, limit_deg=limit, spec=spec, task_spec=task_spec,
    )


def _range(baseline: HasRanges, key: str, where: str) -> float:
    try:
        value = float(baseline.range_deg(key))
    except KeyError:
        raise ExerciseError(f"{where}: the baseline has no {key} range; measure it first") from None
    if not value > 0:
        raise ExerciseError(f"{where}: the baseline {key} range is {value!r}; it must be > 0")
    return value
