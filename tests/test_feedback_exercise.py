"""Exercise definitions, the graded ladder and target validation (feedback/exercise.py)."""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import replace

import pytest

from feedback.exercise import (
    FLEXION_EXERCISE,
    FLEXION_LEVELS,
    ExerciseDefinition,
    ExerciseError,
    ExerciseLevel,
    TargetSpec,
    start_threshold_deg,
    target_for,
)

GRADED = ("amplitude_share", "tolerance_deg", "hold_s", "reps_per_set")


def test_ladder_grades_one_thing_at_a_time_from_40_to_80_percent() -> None:
    assert [lvl.level for lvl in FLEXION_LEVELS] == list(range(1, len(FLEXION_LEVELS) + 1))
    first, last = FLEXION_LEVELS[0], FLEXION_LEVELS[-1]
    assert (first.amplitude_share, first.tolerance_deg) == (0.4, 8.0)
    assert (last.amplitude_share, last.tolerance_deg) == (0.8, 3.0)
    assert last.hold_s > first.hold_s
    for lower, upper in zip(FLEXION_LEVELS, FLEXION_LEVELS[1:]):
        changed = [n for n in GRADED if getattr(lower, n) != getattr(upper, n)]
        assert len(changed) == 1, (lower.level, changed)
        assert upper.amplitude_share >= lower.amplitude_share
        assert upper.tolerance_deg <= lower.tolerance_deg
        assert upper.hold_s >= lower.hold_s


def test_target_for_is_a_share_of_the_patients_own_range() -> None:
    t = target_for(1, 50.0)
    assert (t.target_deg, t.tolerance_deg, t.hold_s) == pytest.approx((20.0, 8.0, 1.0))
    assert (t.low_deg, t.high_deg) == pytest.approx((12.0, 28.0))
    assert t.min_time_to_target_s == FLEXION_LEVELS[0].min_time_to_target_s
    assert target_for(9, 45.0).target_deg == pytest.approx(36.0)
    assert target_for(FLEXION_LEVELS[2], 60.0).target_deg == pytest.approx(30.0)


def test_therapist_can_set_an_explicit_target() -> None:
    t = target_for(2, target_deg=25.0)
    assert (t.target_deg, t.tolerance_deg) == (25.0, 8.0)
    assert target_for(2, 80.0, target_deg=25.0).target_deg == 25.0  # explicit wins
    assert TargetSpec(18.0, 3.0, 2.0).high_deg == 21.0


@pytest.mark.parametrize("bad", [5.0, 9.99, 100.5, 150.0, -40.0, math.nan, math.inf, "45", True])
def test_implausible_comfortable_range_is_refused(bad: object) -> None:
    with pytest.raises(ExerciseError, match="comfortable_flexion_deg"):
        target_for(1, bad)  # type: ignore[arg-type]


def test_missing_range_without_explicit_target_is_refused() -> None:
    with pytest.raises(ExerciseError, match="comfortable_flexion_deg is needed"):
        target_for(1)


def test_band_reaching_into_the_rest_zone_is_refused_with_advice() -> None:
    # Level 1 (40 % +-8 deg): a 32 deg range gives 12.8 +-8, down to 4.8 deg < 5 deg start.
    with pytest.raises(ExerciseError, match=r"level 1 \(40% of 32.0°\).*rest zone"):
        target_for(1, 32.0)
    assert target_for(1, 33.0).low_deg == pytest.approx(5.2)
    with pytest.raises(ExerciseError, match="explicit target.*rest zone"):
        target_for(1, target_deg=12.0)


@pytest.mark.parametrize("bad", [0, 12, -1, 1.5, True, "2"])
def test_unknown_level_is_refused(bad: object) -> None:
    with pytest.raises(ExerciseError, match="level must be a whole number 1-11"):
        target_for(bad, 50.0)  # type: ignore[arg-type]


def test_start_threshold_is_max_of_5_deg_and_quarter_of_target() -> None:
    assert start_threshold_deg(12.0) == 5.0
    assert start_threshold_deg(20.0) == 5.0
    assert start_threshold_deg(40.0) == 10.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(target_deg=0.0), "target_deg"),
        (dict(target_deg=120.0), "target_deg"),
        (dict(target_deg=math.nan), "target_deg"),
        (dict(tolerance_deg=1.0), "tolerance_deg"),
        (dict(tolerance_deg=20.0), "tolerance_deg"),
        (dict(hold_s=-1.0), "hold_s"),
        (dict(min_time_to_target_s=3.0, max_time_to_target_s=2.0), "min_time_to_target_s"),
        (dict(max_time_to_target_s=-1.0), "max_time_to_target_s"),
    ],
)
def test_target_spec_validation(kwargs: dict, field: str) -> None:
    args = dict(target_deg=30.0, tolerance_deg=4.0, hold_s=1.0) | kwargs
    with pytest.raises(ExerciseError, match=field):
        TargetSpec(**args)


@pytest.mark.parametrize(
    ("field", "value"),
    [("amplitude_share", 0.0), ("amplitude_share", 1.2), ("tolerance_deg", 1.0),
     ("hold_s", -0.5), ("reps_per_set", 0), ("reps_per_set", 2.5),
     ("min_time_to_target_s", 9.0), ("level", 0)],
)
def test_level_validation(field: str, value: object) -> None:
    row = FLEXION_LEVELS[0].as_dict() | {field: value}
    with pytest.raises(ExerciseError, match=field):
        ExerciseLevel.from_dict(row)


def _definition(levels: list[dict]) -> dict:
    return {"id": "x", "name": "X", "movement": "flexion", "levels": levels}


def test_ladder_changing_two_things_at_once_is_refused() -> None:
    rows = [FLEXION_LEVELS[0].as_dict(), FLEXION_LEVELS[2].as_dict() | {"level": 2}]
    with pytest.raises(ExerciseError, match="one thing at a time"):
        ExerciseDefinition.from_dict(_definition(rows))


def test_ladder_getting_easier_is_refused() -> None:
    rows = [FLEXION_LEVELS[1].as_dict() | {"level": 1}, FLEXION_LEVELS[0].as_dict() | {"level": 2}]
    with pytest.raises(ExerciseError, match="easier"):
        ExerciseDefinition.from_dict(_definition(rows))


def test_ladder_with_identical_or_misnumbered_levels_is_refused() -> None:
    row = FLEXION_LEVELS[0].as_dict()
    with pytest.raises(ExerciseError, match="changes nothing"):
        ExerciseDefinition.from_dict(_definition([row, row | {"level": 2}]))
    with pytest.raises(ExerciseError, match="numbered"):
        ExerciseDefinition.from_dict(_definition([row | {"level": 2}]))


def test_tempo_may_change_either_way_but_alone() -> None:
    row = FLEXION_LEVELS[0].as_dict()
    faster = row | {"level": 2, "min_time_to_target_s": 0.2, "max_time_to_target_s": 3.0}
    assert len(ExerciseDefinition.from_dict(_definition([row, faster])).levels) == 2


def test_typos_and_missing_fields_in_a_file_are_reported() -> None:
    row = FLEXION_LEVELS[0].as_dict()
    with pytest.raises(ExerciseError, match=r"levels\[0\]: unknown field\(s\) \['tolerance'\]"):
        ExerciseDefinition.from_dict(_definition([row | {"tolerance": 3}]))
    del row["hold_s"]
    with pytest.raises(ExerciseError, match=r"missing field\(s\) \['hold_s'\]"):
        ExerciseDefinition.from_dict(_definition([row]))
    with pytest.raises(ExerciseError, match="only 'flexion'"):
        ExerciseDefinition.from_dict(_definition([row | {"hold_s": 1.0}]) | {"movement": "twist"})


def test_definition_maps_one_to_one_onto_json_and_toml() -> None:
    data = FLEXION_EXERCISE.as_dict()
    assert ExerciseDefinition.from_dict(json.loads(json.dumps(data))) == FLEXION_EXERCISE
    lines = [f'{k} = "{data[k]}"' for k in ("id", "name", "movement")]
    for row in data["levels"]:
        lines.append("[[levels]]")
        lines += [f"{k} = {v!r}" for k, v in row.items()]
    assert ExerciseDefinition.from_dict(tomllib.loads("\n".join(lines))) == FLEXION_EXERCISE
    spec = target_for(4, 50.0)
    assert TargetSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec
    assert replace(spec, hold_s=2.0).hold_s == 2.0
