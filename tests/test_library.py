"""The exercise library files and the loader's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback.library import (
    FEEDBACK_MODES,
    POSITIONS,
    Library,
    LibraryError,
    load_library,
    parse_exercises,
)

LIB = load_library()

GOOD = """
id = "demo"
name = "Demo"
pattern = "to_target"
angle = "flexion_deg"
directions = ["forward"]
instructions = "Slowly {move} to the target and back."

[[levels]]
position = "standing"
amplitude = 0.4
tolerance_deg = 8
hold_s = 1
tempo_s = 1.5
reps_per_set = 8
sets = 2
feedback = "continuous"

[[levels]]
amplitude = 0.5
"""


def test_library_holds_every_required_exercise() -> None:
    need = {"pelvic_tilt_anterior", "pelvic_tilt_posterior", "flexion_to_target",
            "extension_to_target", "lateral_bend_left", "lateral_bend_right",
            "axial_rotation_left", "axial_rotation_right", "repositioning", "tracking",
            "dissociation_pelvis_anterior", "dissociation_trunk", "sit_to_stand",
            "reach_forward", "lift_from_low", "neutral_hold"}
    assert need <= set(LIB.ids())
    patterns = {ex.pattern for ex in LIB}
    assert patterns == {"to_target", "hold", "track", "reproduce", "dissociate", "functional"}
    positions = {lv.position for lv in LIB["pelvic_tilt_anterior"].levels}
    assert {"supported_sitting", "standing"} <= positions


def test_every_level_changes_one_thing_and_never_gets_easier() -> None:
    for ex in LIB:
        for n in range(2, len(ex.levels) + 1):
            assert ex.changed_parameter(n) is not None
        ranks = [(POSITIONS.index(lv.position), FEEDBACK_MODES.index(lv.feedback))
                 for lv in ex.levels]
        assert ranks == sorted(ranks, key=lambda r: r) or all(
            a[0] <= b[0] and a[1] <= b[1] for a, b in zip(ranks, ranks[1:]))


def test_instructions_are_speakable_and_filled_per_side() -> None:
    for ex in LIB:
        assert "{" not in ex.instructions and "°" not in ex.instructions
    assert "bend to the left" in LIB["lateral_bend_left"].instructions
    assert "bend to the right" in LIB["lateral_bend_right"].instructions
    assert LIB["lateral_bend_left"].direction.sign == -1


def test_good_text_parses_and_inherits() -> None:
    (ex,) = parse_exercises(GOOD, "demo.toml")
    assert ex.level(2).amplitude == 0.5 and ex.level(2).tolerance_deg == 8
    assert ex.changed_parameter(2) == "amplitude"
    assert ex.as_dict()["levels"][1]["amplitude"] == 0.5


@pytest.mark.parametrize("text, field, words", [
    ("", "", "empty"),
    ("id = ", "", "not valid TOML"),
    (GOOD.replace('pattern = "to_target"', 'pattern = "dance"'), "pattern", "one of"),
    (GOOD.replace('angle = "flexion_deg"', 'angle = "knee_deg"'), "angle", "one of"),
    (GOOD.replace('["forward"]', '["left"]'), "directions", "forward"),
    ("colour = 1\n" + GOOD, "colour", "unknown field"),
    (GOOD.replace("amplitude = 0.5", "amplitude = 0.5\ntolerance_deg = 6"), "levels[2]",
     "grade exactly one thing"),
    (GOOD.replace("amplitude = 0.5", "amplitude = 0.3"), "levels[2].amplitude", "easier"),
    (GOOD.replace("amplitude = 0.5", 'feedback = "continuous"'), "levels[2]", "nothing"),
    (GOOD.replace("tempo_s = 1.5\n", ""), "levels[1].tempo_s", "missing"),
    (GOOD.replace("tolerance_deg = 8", "tolerance_deg = 40"), "tolerance_deg", "[2, 15]"),
    (GOOD.replace("reps_per_set = 8", "reps_per_set = 2.5"), "reps_per_set", "whole number"),
    (GOOD.replace("to the target", "10° to the target"), "instructions", "spoken"),
    (GOOD.replace("amplitude = 0.5", "still_limit_deg = 3"), "levels[2].still_limit_deg",
     "not used"),
    (GOOD.replace('"to_target"', '"reproduce"').replace("tempo_s = 1.5\n", ""),
     "levels[1].feedback", "without live feedback"),
])
def test_invalid_files_say_file_field_and_what_is_allowed(text: str, field: str,
                                                          words: str) -> None:
    with pytest.raises(LibraryError) as info:
        parse_exercises(text, "bad.toml")
    assert str(info.value).startswith("bad.toml")
    assert info.value.field.startswith(field) or field in str(info.value)
    assert words in str(info.value)


def test_empty_directory_and_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="no exercise files"):
        load_library(tmp_path)
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD)
    with pytest.raises(LibraryError, match="also defined in a.toml"):
        load_library(tmp_path)
    (tmp_path / "b.toml").write_text("")
    with pytest.raises(LibraryError, match="b.toml: the file is empty"):
        load_library(tmp_path)


def test_unknown_exercise_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="flexion_to_target"):
        Library(list(LIB))["nope"]
    with pytest.raises(LibraryError, match="levels 1-"):
        LIB["tracking"].level(99)
