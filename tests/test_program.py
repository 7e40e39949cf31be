"""A day's program driven by the runner over a scripted session; then progression."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback.baseline import Baseline
from feedback.library import load_library
from feedback.outcomes import OutcomeError
from feedback.program import DayProgram, ProgramError, ProgramItem, ProgramRunner
from feedback.progression import ExerciseProgress, decide
from test_feedback_streams import Script, chunks

LIB = load_library()
BASE = Baseline.from_ranges(flexion=50, lateral_bend_left=25)
PROGRAM = DayProgram((ProgramItem("flexion_to_target", 1, sets=1, rest_after_s=5),
                      ProgramItem("lateral_bend_left", 1, sets=1, rest_after_s=5)))


def session() -> Script:
    s = Script().still(2.0)
    for _ in range(8):
        s.rep(flexion_deg=20)
    s.still(6.0)
    for _ in range(6):
        s.rep(lateral_bend_deg=-10)
    s.still(6.0)
    for _ in range(5):
        s.rep(flexion_deg=21)  # retention, flexion
    s.still(6.0)
    for i in range(5):
        s.rep(lateral_bend_deg=-10 if i else -20)  # retention, lateral: 4 of 5 inside
    return s.still(1.0)


BATCH = session().batch()


def run(batches: list) -> tuple[ProgramRunner, list[dict]]:
    r = ProgramRunner(PROGRAM, LIB, BASE, smoothness=None)
    out = [e.as_dict() for e in r.record_pain("before", 4)]
    for b in batches:
        out += [e.as_dict() for e in r.update(b)]
    return r, out


REF = run([BATCH])


def test_program_runs_practice_then_delayed_retention_and_feeds_progression() -> None:
    runner, events = REF
    started = [(e["exercise_id"], e["kind"]) for e in events if e["type"] == "exercise_started"]
    assert started == [("flexion_to_target", "practice"), ("lateral_bend_left", "practice"),
                       ("flexion_to_target", "retention"), ("lateral_bend_left", "retention")]
    assert runner.done and events[-2]["type"] == "program_completed"
    assert events[-1] == {**events[-1], "type": "pain_prompt", "when": "after"}
    runner.record_pain("after", "3")
    out = runner.outcome()
    assert out.retention["flexion_to_target"].reps_in_tolerance == 5
    assert out.retention["lateral_bend_left"].reps_in_tolerance == 4
    for ex_id in ("flexion_to_target", "lateral_bend_left"):
        d, p = decide(ExerciseProgress(ex_id, 1), LIB[ex_id], out.retention[ex_id], out.pain)
        assert (d.rule_id, p.level) == ("advance", 2)
    json.dumps(events)
    json.dumps(out.as_dict())


def test_every_event_has_a_type_audience_and_speakable_cues() -> None:
    for e in REF[1]:
        assert e["type"] and e.get("audience") in ("patient", "therapist")
        cue = e.get("cue")
        if isinstance(cue, dict):
            assert cue["text"] and "°" not in cue["audio"]


def test_state_for_display_and_therapist() -> None:
    runner = ProgramRunner(PROGRAM, LIB, BASE, smoothness=None)
    runner.update(BATCH.take(slice(0, 300)))
    st_ = runner.state
    assert st_.as_dict()["stage"] == 1 and st_.as_dict()["exercise"]["exercise_id"] == (
        "flexion_to_target")
    json.dumps(st_.as_dict())
    json.dumps(st_.patient_view())


def test_pain_nonsense_is_refused() -> None:
    runner = ProgramRunner(PROGRAM, LIB, BASE, smoothness=None)
    with pytest.raises(OutcomeError):
        runner.record_pain("before", "a lot")
    with pytest.raises(ValueError):
        runner.record_pain("during", 3)


def test_program_validation_names_each_problem() -> None:
    bad = DayProgram((ProgramItem("nope", 1), ProgramItem("flexion_to_target", 99),
                      ProgramItem("extension_to_target", 1)))
    with pytest.raises(ProgramError) as info:
        ProgramRunner(bad, LIB, BASE)
    msg = str(info.value)
    assert "item 1 (nope)" in msg and "item 2" in msg and "no extension range" in msg
    with pytest.raises(ProgramError):
        DayProgram(())
    assert DayProgram.from_dict(PROGRAM.as_dict()) == PROGRAM


def test_retention_after_sets_when_asked() -> None:
    prog = DayProgram(PROGRAM.items, retention_at="after_sets")
    r = ProgramRunner(prog, LIB, BASE, smoothness=None)
    assert [s.kind for s in r.stages] == ["practice", "practice"]
    assert [b.kind for b in r.stages[0].plan] == ["set", "retention"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 700), min_size=1, max_size=5))
def test_runner_is_chunk_invariant(sizes: list[int]) -> None:
    assert run(chunks(BATCH, sizes))[1] == REF[1]
