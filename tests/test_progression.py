"""Every progression rule, with a test that fails if the rule is wrong."""

from __future__ import annotations

import json

import pytest

from feedback.library import load_library
from feedback.outcomes import SessionPain
from feedback.progression import (
    ExerciseProgress,
    ProgressionDecision,
    decide,
    therapist_lock,
    therapist_set,
)
from feedback.results import BlockResult

EX = load_library()["flexion_to_target"]  # 14 levels; level 2 changes amplitude, 3 tolerance


def block(inside: int, reps: int = 5) -> BlockResult:
    return BlockResult("flexion_to_target", 3, "retention", 1, "none", reps, reps, inside, 0, 0,
                       2.0, 0.5)


def at(level: int = 3, failures: int = 0, locked: bool = False) -> ExerciseProgress:
    return ExerciseProgress("flexion_to_target", level, locked, failures)


CALM = SessionPain(4, 4)


@pytest.mark.parametrize("inside, expected", [(4, "advance"), (5, "advance"), (3, "hold")])
def test_advance_needs_80_percent_of_the_retention_block(inside: int, expected: str) -> None:
    d, p = decide(at(), EX, block(inside), CALM)
    assert d.outcome == expected
    assert p.level == (4 if expected == "advance" else 3)


def test_advance_moves_one_level_and_names_the_one_parameter() -> None:
    d, p = decide(at(3), EX, block(5), SessionPain(5, 3))
    assert (d.rule_id, d.from_level, d.to_level, p.level) == ("advance", 3, 4, 4)
    assert d.changed_parameter == "feedback" and "feedback continuous -> terminal" in d.reason
    assert ProgressionDecision.from_dict(json.loads(json.dumps(d.as_dict()))) == d


def test_pain_worse_by_one_holds_even_when_criterion_met() -> None:
    d, p = decide(at(), EX, block(5), SessionPain(3, 4))
    assert (d.rule_id, d.outcome, p.level) == ("pain_worse", "hold", 3)


def test_pain_rise_of_two_steps_back_regardless_of_performance() -> None:
    d, p = decide(at(3), EX, block(5), SessionPain(3, 5))
    assert (d.rule_id, d.outcome, p.level) == ("pain_rise", "step_back", 2)
    assert d.changed_parameter == "tolerance_deg"
    d1, p1 = decide(at(1), EX, block(5), SessionPain(3, 6))
    assert (d1.rule_id, p1.level) == ("bottom_level", 1)


def test_hold_on_first_failure_step_back_on_repeated_failure() -> None:
    d1, p1 = decide(at(3), EX, block(2), CALM)
    assert (d1.rule_id, p1.level, p1.failures) == ("hold_on_failure", 3, 1)
    d2, p2 = decide(p1, EX, block(2), CALM)
    assert (d2.rule_id, d2.outcome, p2.level, p2.failures) == (
        "step_back_repeated_failure", "step_back", 2, 0)


def test_success_resets_the_failure_count() -> None:
    _, p = decide(at(3, failures=1), EX, block(5), SessionPain(4, 5))  # pain_worse: hold
    assert p.failures == 0


def test_missing_pain_or_retention_holds() -> None:
    d, _ = decide(at(), EX, block(5), None)
    assert d.rule_id == "missing_pain" and d.outcome == "hold"
    d, _ = decide(at(), EX, None, CALM)
    assert d.rule_id == "no_retention"
    d, _ = decide(at(), EX, block(2, reps=2), CALM)  # 100 % of 2 is not "most repetitions"
    assert d.rule_id == "no_retention"


def test_top_level_holds() -> None:
    d, p = decide(at(len(EX.levels)), EX, block(5), CALM)
    assert (d.rule_id, p.level) == ("top_level", len(EX.levels))


def test_therapist_lock_set_and_unlock() -> None:
    d, p = therapist_lock(at(5), "wait for review", "dr k")
    assert (d.rule_id, d.actor, p.locked) == ("therapist_lock", "therapist", True)
    d, p2 = decide(p, EX, block(5), CALM)
    assert (d.rule_id, p2.level) == ("locked", 5)
    d, p3 = therapist_set(p2, EX, 9, "jump ahead")
    assert (d.rule_id, p3.level, p3.failures) == ("therapist_set", 9, 0)
    with pytest.raises(ValueError):
        therapist_set(p2, EX, 99, "nope")
    d, p4 = therapist_lock(p3, "ok", lock=False)
    assert d.rule_id == "therapist_unlock" and not p4.locked
    assert ExerciseProgress.from_dict(p4.as_dict()) == p4
