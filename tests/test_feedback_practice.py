"""The generalised practice engine on scripted angle streams (min-jerk movements)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback.baseline import Baseline
from feedback.library import load_library
from feedback.practice import Block, PracticeEngine
from test_feedback_streams import Script, chunks

LIB = load_library()
BASE = Baseline.from_ranges(
    flexion=50, extension=20, lateral_bend_left=25, lateral_bend_right=30,
    axial_rotation_left=12, axial_rotation_right=12, pelvic_tilt_anterior=12,
    pelvic_tilt_posterior=12)


def types(events: list) -> list[str]:
    return [e.as_dict()["type"] for e in events]


def of(events: list, kind: str) -> list[dict]:
    return [d for d in (e.as_dict() for e in events) if d["type"] == kind]


def engine(ex_id: str, level: int = 1, plan: list[Block] | None = None) -> PracticeEngine:
    return PracticeEngine(LIB[ex_id], level, BASE, plan=plan, smoothness=None)


ONE_SET = [Block("set", 1, 3, "terminal")]


def flexion_reps(peaks: list[float], **extra: float) -> Script:
    s = Script().still(2.0)
    for p in peaks:
        s.rep(flexion_deg=p, **extra)
    return s.still(1.0)


# -- to target -------------------------------------------------------------------------------
def test_session_plan_runs_sets_rest_and_retention_without_feedback() -> None:
    eng = engine("flexion_to_target")  # level 1: 2 sets x 8, continuous; retention 5
    s = Script().still(2.0)
    for _ in range(8):
        s.rep(flexion_deg=20)
    s.still(31.0)  # rest 30 s
    for _ in range(8):
        s.rep(flexion_deg=21)
    s.still(31.0)
    for _ in range(5):
        s.rep(flexion_deg=35)  # retention: all past the band (20 +- 8)
    events = eng.update(s.still(1.0).batch())
    blocks = of(events, "block_completed")
    assert [(b["result"]["kind"], b["result"]["reps"]) for b in blocks] == [
        ("set", 8), ("set", 8), ("retention", 5)]
    assert blocks[0]["result"]["criterion_met"] and not blocks[2]["result"]["criterion_met"]
    assert len(of(events, "rest_started")) == 2 and eng.done
    assert types(events)[-1] == "exercise_completed"
    # no result reaches the patient during the retention block, but every rep is recorded
    retention_start = of(events, "block_started")[2]["time_s"]
    late = [d for d in (e.as_dict() for e in events) if d["time_s"] >= retention_start]
    assert not [d for d in late if d["type"] in (
        "repetition_feedback", "self_estimate_prompt", "summary_feedback")]
    assert len([d for d in late if d["type"] == "repetition_recorded"]) == 5
    assert blocks[2]["result"]["feedback_shown"] == 0


def test_result_error_overshoot_and_in_tolerance() -> None:
    # level 1 target = 0.4 * 50 = 20 +- 8; 35 misses by 15
    eng = engine("flexion_to_target", plan=ONE_SET)
    events = eng.update(flexion_reps([20, 26, 35]).batch())
    results = [d["result"] for d in of(events, "repetition_recorded")]
    assert [round(r["error_deg"]) for r in results] == [0, 6, 15]
    assert [r["in_tolerance"] for r in results] == [True, True, False]
    assert results[2]["overshoot_deg"] == pytest.approx(15, abs=0.01)
    assert all(r["time_to_target_s"] > 0 for r in results[:2])
    assert results[0]["hold_achieved"] and results[0]["returned"]


def test_self_estimate_prompt_then_estimate_versus_actual() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    s = flexion_reps([35])
    events = eng.update(s.batch())
    assert types(events)[-1] == "self_estimate_prompt"
    assert not of(events, "repetition_feedback")  # nothing shown before the estimate
    assert eng.state.awaiting_self_estimate
    out = eng.submit_self_estimate(3.0)  # "3 degrees past": category on_target (tol 8)
    res = of(out, "self_estimate_result")[0]
    assert res["estimate"] == "on_target" and res["actual"] == "past" and not res["matched"]
    assert res["difference_deg"] == pytest.approx(3.0 - 15.0, abs=0.01)
    fb = of(out, "repetition_feedback")[0]
    assert "15°" in fb["cue"]["text"] and "15 degrees" in fb["cue"]["audio"]
    with pytest.raises(ValueError):
        eng.submit_self_estimate("on_target")  # nothing pending any more


def test_invalid_self_estimate_is_refused() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    eng.update(flexion_reps([20]).batch())
    for bad in ("maybe", math.nan, True, 500):
        with pytest.raises(ValueError):
            eng.submit_self_estimate(bad)  # type: ignore[arg-type]
    assert of(eng.submit_self_estimate("on_target"), "self_estimate_result")[0]["matched"]


def test_good_repetitions_get_positive_feedback() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    eng.update(flexion_reps([20]).batch())
    fb = of(eng.skip_self_estimate(), "repetition_feedback")[0]
    assert fb["cue"]["text"].startswith(("Spot on", "Good"))
    assert "°" not in fb["cue"]["audio"] and "—" not in fb["cue"]["audio"]


def test_lumbar_share_from_pelvic_tilt_versus_flexion() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    events = eng.update(flexion_reps([20], pelvic_tilt_deg=30).batch())
    assert of(events, "repetition_recorded")[0]["result"]["lumbar_share"] == pytest.approx(0.4)


def test_left_side_uses_the_negative_angle_and_its_own_range() -> None:
    eng = engine("lateral_bend_left", plan=ONE_SET)  # 0.4 * 25 = 10 deg to the left
    assert eng.targets.target_deg == pytest.approx(10.0)
    s = Script().still(2.0).rep(lateral_bend_deg=-10).rep(lateral_bend_deg=+10).still(1)
    events = eng.update(s.batch())
    recorded = of(events, "repetition_recorded")
    assert len(recorded) == 1 and recorded[0]["result"]["error_deg"] == pytest.approx(0, abs=0.01)
    cues = of(events, "movement_cue")
    assert [c["kind"] for c in cues] == ["wrong_direction"]
    assert "left" in cues[0]["cue"]["text"]
    assert engine("lateral_bend_right").targets.target_deg == pytest.approx(12.0)


def test_no_movement_at_all_gives_no_repetitions_and_one_idle_prompt() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    events = eng.update(Script().still(60.0).batch())
    assert types(events) == ["block_started", "start_position_found", "movement_cue"]
    assert of(events, "movement_cue")[0]["kind"] == "idle"
    assert eng.state.rep_count == 0 and not eng.done


def test_sensor_gap_mid_repetition_is_interrupted_not_scored() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    s = Script().still(2.0).rep(flexion_deg=20).rep(flexion_deg=20).still(2.0)
    s.gap(6.0, 6.6)  # inside the second repetition (starts at 5.5 s)
    events = eng.update(s.rep(flexion_deg=20).still(1.0).batch())
    assert len(of(events, "repetition_interrupted")) == 1
    assert of(events, "repetition_interrupted")[0]["reason"] == "signal_gap"
    assert len(of(events, "repetition_recorded")) == 2
    assert eng.state.as_dict()["signal_ok"] is True


def test_all_nan_stream_never_finds_a_start() -> None:
    eng = engine("flexion_to_target", plan=ONE_SET)
    s = Script().still(5.0).gap(0.0, 10.0)
    assert types(eng.update(s.batch())) == ["block_started"]
    assert eng.state.phase == "finding_start"


def test_bandwidth_praises_inside_and_details_outside() -> None:
    eng = engine("flexion_to_target", plan=[Block("set", 1, 2, "bandwidth")])
    events = eng.update(flexion_reps([20, 35]).batch())
    fb = of(events, "repetition_feedback")
    assert fb[0]["praise_only"] and fb[0]["result"] is None
    assert of(events, "self_estimate_prompt")[0]["rep_number"] == 2


def test_self_controlled_feedback_only_on_request() -> None:
    eng = engine("flexion_to_target", plan=[Block("set", 1, 3, "self_controlled")])
    events = eng.update(flexion_reps([20]).batch())
    assert not of(events, "repetition_feedback") and of(events, "feedback_available")
    out = eng.request_feedback()
    assert types(out) == ["self_estimate_prompt"]
    assert eng.request_feedback() == []


def test_summary_every_three() -> None:
    eng = engine("flexion_to_target", plan=[Block("set", 1, 6, "summary")])
    events = eng.update(flexion_reps([20, 20, 35, 20, 20, 20]).batch())
    sums = of(events, "summary_feedback")
    assert [(s["first_rep"], s["last_rep"], s["reps_in_tolerance"]) for s in sums] == [
        (1, 3, 2), (4, 6, 3)]
    assert not of(events, "repetition_feedback")


def test_patient_view_hides_position_without_concurrent_feedback() -> None:
    cont = engine("flexion_to_target", plan=[Block("set", 1, 3, "continuous")])
    term = engine("flexion_to_target", plan=[Block("set", 1, 3, "terminal")])
    b = Script().still(2.0).move(1.0, flexion_deg=15).batch()
    cont.update(b)
    term.update(b)
    assert cont.state.patient_view()["zone"] == "in"
    pv = term.state.patient_view()
    assert pv["zone"] is None and pv["value_deg"] is None and pv["target_deg"] is None
    assert term.state.as_dict()["zone"] == "in"  # the therapist sees it
    json.dumps(cont.state.as_dict())


def test_small_range_level_that_cannot_work_fails_clearly() -> None:
    tiny = Baseline.from_ranges(axial_rotation_left=5)
    with pytest.raises(ValueError, match="axial_rotation_left level 1.*baseline range 5.0"):
        PracticeEngine(LIB["axial_rotation_left"], 1, tiny)


# -- other patterns -------------------------------------------------------------------------
def test_hold_neutral_from_slumped_sitting() -> None:
    eng = engine("neutral_hold", plan=[Block("set", 1, 2, "terminal")])  # 0 +- 5, hold 5 s
    s = Script().move(0.1, flexion_deg=20).still(2.0)  # slumped, still: start position
    s.move(1.5, flexion_deg=2).still(6.0).move(1.5, flexion_deg=20).still(1.0)
    s.move(1.5, flexion_deg=-8).still(4.0).move(1.5, flexion_deg=20).still(12.0)
    events = eng.update(s.batch())
    res = [d["result"] for d in of(events, "repetition_recorded")]
    assert res[0]["in_tolerance"] and res[0]["value_deg"] == pytest.approx(2.0, abs=0.3)
    assert not res[1]["in_tolerance"]  # -8 is outside +-5: never entered, never held
    assert res[1]["hold_achieved"] is False or res[1]["abs_error_deg"] > 5


def test_tracking_error_per_cycle() -> None:
    eng = engine("tracking", plan=[Block("set", 1, 2, "continuous")])
    # level 1: 0.4 * 50 = 20 deg, tempo 3 s, hold 1 s: cycle 8 s. Follow exactly, then stay still.
    from feedback.task_track import track_target
    from processing.pipeline import AngleBatch

    still = Script().still(3.0).batch()
    i = 0
    while eng._task is None:
        eng.update(still.take(slice(i, i + 1)))
        i += 1
    t0 = eng._task.t0
    t = t0 + (1 + np.arange(int(17 * 50))) / 50
    flex = np.array([track_target(x, 20.0, 3.0, 1.0) for x in (t - t0) % 8.0])
    flex[t > t0 + 8.0] = 0.0  # second cycle: no movement at all
    z = np.zeros(len(t))
    batch = AngleBatch(t, flex, z, z, z, flex, z, z, z, z, np.zeros(len(t), bool))
    events = eng.update(batch)
    res = [d["result"] for d in of(events, "repetition_recorded")]
    assert len(res) == 2
    assert res[0]["abs_error_deg"] < 0.5 and res[0]["in_tolerance"]
    assert res[1]["abs_error_deg"] > 6 and not res[1]["in_tolerance"]
    assert res[1]["error_deg"] < 0  # behind the target


def test_repositioning_reproduces_without_guide_and_measures_held_position() -> None:
    eng = engine("repositioning", plan=[Block("set", 1, 1, "terminal")])  # 0.4*50 = 20 +- 6
    s = Script().still(2.0)
    s.rep(flexion_deg=20, hold_s=2.5)  # presentation with the guide
    assert True
    s.move(1.5, flexion_deg=29).still(2.0).move(1.5, flexion_deg=0).still(1.5)  # reproduce 29
    events = eng.update(s.batch())
    assert [c["kind"] for c in of(events, "movement_cue")] == ["reproduce_now"]
    res = of(events, "repetition_recorded")[0]["result"]
    assert res["value_deg"] == pytest.approx(29, abs=0.5) and not res["in_tolerance"]
    assert res["error_deg"] == pytest.approx(9, abs=0.5)


def test_repositioning_presentation_must_be_held() -> None:
    eng = engine("repositioning", plan=[Block("set", 1, 1, "terminal")])
    s = Script().still(2.0).rep(flexion_deg=20, hold_s=0.2)
    events = eng.update(s.batch())
    assert [c["kind"] for c in of(events, "movement_cue")] == ["present_again"]
    assert eng.state.as_dict()["guide_on"] is True


def test_dissociation_still_segment_moving_fails_the_repetition() -> None:
    eng = engine("dissociation_pelvis_anterior", plan=[Block("set", 1, 2, "terminal")])
    # target 0.6 * 12 = 7.2 deg anterior tilt; chest (upper inclination) must stay within 6 deg
    s = Script().still(2.0)
    s.rep(pelvic_tilt_deg=7, flexion_deg=-7)  # chest still: tilt and lumbar extension cancel
    s.rep(pelvic_tilt_deg=7, flexion_deg=3)  # chest moves 10 deg forward
    events = eng.update(s.still(1.0).batch())
    res = [d["result"] for d in of(events, "repetition_recorded")]
    assert res[0]["in_tolerance"] and res[0]["still_max_deviation_deg"] < 0.5
    assert not res[1]["in_tolerance"] and res[1]["target_reached"]
    assert res[1]["still_max_deviation_deg"] == pytest.approx(10, abs=0.5)
    eng2 = engine("dissociation_pelvis_anterior", plan=[Block("set", 1, 2, "terminal")])
    eng2.update(s.batch())
    fb = of(eng2.skip_self_estimate(), "repetition_feedback")[0]
    assert "chest moved 10°" in fb["cue"]["text"]


def test_functional_limit_cue_only_with_concurrent_feedback() -> None:
    # lumbar limit 0.7 * 50 = 35 deg; lean 40 deg (pelvis 25, lumbar 15) then with lumbar 38
    def run(mode: str) -> list:
        eng = engine("sit_to_stand", plan=[Block("set", 1, 2, mode)])
        s = Script().still(2.0)
        s.rep(pelvic_tilt_deg=25, flexion_deg=15).rep(pelvic_tilt_deg=5, flexion_deg=38)
        return eng.update(s.still(1.0).batch())

    cont, term = run("continuous"), run("terminal")
    res = [d["result"] for d in of(cont, "repetition_recorded")]
    assert [r["in_tolerance"] for r in res] == [True, False]
    assert res[1]["error_deg"] == pytest.approx(3.0, abs=0.1) and res[1]["time_over_limit_s"] > 0
    assert [c["kind"] for c in of(cont, "movement_cue")] == ["limit_crossed"]
    assert of(term, "movement_cue") == []


def test_functional_small_lean_is_not_a_task_repetition() -> None:
    eng = engine("sit_to_stand", plan=[Block("set", 1, 2, "terminal")])  # task lean >= 20
    events = eng.update(Script().still(2.0).rep(pelvic_tilt_deg=12).still(1).batch())
    assert [d["reason"] for d in of(events, "repetition_interrupted")] == ["too_small"]


# -- chunk invariance ---------------------------------------------------------------------------
_STREAM = (Script().still(2.0).rep(flexion_deg=20).rep(flexion_deg=35).gap(9.0, 9.5)
           .rep(flexion_deg=-12).rep(flexion_deg=22, pelvic_tilt_deg=10).still(40)
           .rep(flexion_deg=18).still(1.0).batch())


def _run(batches: list) -> tuple[list, dict]:
    eng = engine("flexion_to_target", plan=[Block("set", 1, 2, "faded"),
                                            Block("retention", 1, 2, "none", 5.0)])
    out = []
    for b in batches:
        out += [e.as_dict() for e in eng.update(b)]
    return out, eng.state.as_dict()


_REFERENCE = _run([_STREAM])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 400), min_size=1, max_size=8))
def test_chunk_invariance(sizes: list[int]) -> None:
    assert _run(chunks(_STREAM, sizes)) == _REFERENCE


def test_reference_stream_exercises_the_rules() -> None:
    kinds = [d["type"] for d in _REFERENCE[0]]
    assert "repetition_interrupted" in kinds and "movement_cue" in kinds
    assert "block_completed" in kinds and "rest_started" in kinds
    json.dumps(_REFERENCE)


def test_no_self_estimate_after_live_feedback() -> None:
    eng = engine("flexion_to_target", plan=[Block("set", 1, 3, "continuous")])
    events = eng.update(flexion_reps([20]).batch())
    assert not of(events, "self_estimate_prompt") and of(events, "repetition_feedback")


def test_reproduction_hides_the_target_too() -> None:
    eng = engine("repositioning", plan=[Block("set", 1, 1, "terminal")])
    eng.update(Script().still(2.0).rep(flexion_deg=20, hold_s=2.5).move(1.0, flexion_deg=10)
               .batch())
    pv = eng.state.patient_view()
    assert eng.state.as_dict()["guide_on"] is False
    assert pv["target_deg"] is None and pv["value_deg"] is None


def test_gaps_interrupt_hold_and_tracking_cycles() -> None:
    hold = engine("neutral_hold", plan=[Block("set", 1, 2, "terminal")])
    s = Script().move(0.1, flexion_deg=20).still(2.0).move(1.5, flexion_deg=1).still(6.0)
    ev = hold.update(s.gap(4.5, 5.0).batch())
    assert [d["reason"] for d in of(ev, "repetition_interrupted")] == ["signal_gap"]
    track = engine("tracking", plan=[Block("set", 1, 2, "continuous")])
    ev = track.update(Script().still(12.0).gap(5.0, 5.5).still(8.0).batch())
    assert [d["reason"] for d in of(ev, "repetition_interrupted")] == ["signal_gap"]
    assert len(of(ev, "repetition_recorded")) == 1  # the cycle without a gap is scored


_PATTERN_STREAMS = {
    "repositioning": Script().still(2.0).rep(flexion_deg=20, hold_s=2.5).rep(flexion_deg=25)
    .rep(flexion_deg=20, hold_s=2.5).gap(17.0, 17.4).rep(flexion_deg=19).batch(),
    "dissociation_trunk": Script().still(2.0).rep(flexion_deg=15).rep(flexion_deg=15,
                                                                      pelvic_tilt_deg=8)
    .rep(flexion_deg=-15).batch(),
    "sit_to_stand": Script().still(2.0).rep(pelvic_tilt_deg=25, flexion_deg=15)
    .rep(pelvic_tilt_deg=5, flexion_deg=38).rep(pelvic_tilt_deg=10).batch(),
    "neutral_hold": Script().move(0.1, flexion_deg=20).still(2.0).move(1.5, flexion_deg=2)
    .still(6.0).move(1.5, flexion_deg=20).still(1.0).move(1.5, flexion_deg=3).still(6.0).batch(),
    "tracking": Script().still(2.0).move(3.0, flexion_deg=20).still(1.0).move(3.0, flexion_deg=0)
    .still(12.0).batch(),
}


@pytest.mark.parametrize("ex_id", sorted(_PATTERN_STREAMS))
@pytest.mark.parametrize("sizes", [[1], [7, 129, 2], [333]])
def test_every_pattern_is_chunk_invariant(ex_id: str, sizes: list[int]) -> None:
    batch = _PATTERN_STREAMS[ex_id]

    def go(parts: list) -> tuple[list, dict]:
        eng = engine(ex_id, plan=[Block("set", 1, 3, "faded")])
        out = [e.as_dict() for p in parts for e in eng.update(p)]
        return out, eng.state.as_dict()

    ref = go([batch])
    assert [d for d in ref[0] if d["type"] == "repetition_recorded"]
    assert go(chunks(batch, sizes)) == ref


def test_smoothness_from_processing_when_present_or_injected() -> None:
    pytest.importorskip("processing.smoothness")
    eng = PracticeEngine(LIB["flexion_to_target"], 1, BASE, plan=ONE_SET)  # default smoothness
    r = of(eng.update(flexion_reps([20]).batch()), "repetition_recorded")[0]["result"]
    assert r["sparc"] is not None and -10 < r["sparc"] < 0 and r["ldlj"] is not None
    calls = []

    def fake(t: np.ndarray, v: np.ndarray) -> tuple[float, float]:
        calls.append(len(t))
        return -1.5, -6.0

    eng2 = PracticeEngine(LIB["flexion_to_target"], 1, BASE, plan=ONE_SET, smoothness=fake)
    r2 = of(eng2.update(flexion_reps([20]).batch()), "repetition_recorded")[0]["result"]
    assert (r2["sparc"], r2["ldlj"]) == (-1.5, -6.0) and calls
