"""Baseline protocol, the Baseline record, and comparison against the MDC."""

from __future__ import annotations

import json

import pytest

from feedback.baseline import (
    Baseline,
    BaselineError,
    BaselineParams,
    BaselineProtocol,
    compare_baselines,
)
from feedback.library import load_library
from feedback.practice import PracticeEngine
from feedback.progression import review_baseline
from test_feedback_streams import Script, chunks


def protocol_stream() -> Script:
    s = Script().still(2.0)
    for p in (40, 50, 46):
        s.rep(out_s=2.0, back_s=2.0, flexion_deg=p, pelvic_tilt_deg=p)
    s.still(2.0)
    for p in (-20, -22, -18):
        s.rep(lateral_bend_deg=p)
    s.still(2.0)
    # repositioning, target 0.5 * 46 = 23: presentation, then reproductions at 26 and 21
    for reproduced in (26, 21):
        s.rep(flexion_deg=23, hold_s=2.5)
        s.move(1.5, flexion_deg=reproduced).still(2.0).move(1.5, flexion_deg=0).still(1.5)
    return s


PARAMS = BaselineParams(directions=("flexion", "lateral_bend_left"), repositioning_trials=2)


def run(batches: list) -> tuple[BaselineProtocol, list[dict]]:
    proto = BaselineProtocol(PARAMS, smoothness=None, taken_on="2024-05-01")
    out = []
    for b in batches:
        out += [e.as_dict() for e in proto.update(b)]
    return proto, out


def test_protocol_measures_median_range_speed_share_and_repositioning() -> None:
    proto, events = run([protocol_stream().batch()])
    assert proto.done and events[-1]["type"] == "baseline_completed"
    b = proto.baseline
    assert b is not None
    assert b.range_deg("flexion") == pytest.approx(46, abs=0.1)
    assert b.directions["flexion"].peaks_deg == pytest.approx((40, 50, 46), abs=0.1)
    assert b.range_deg("lateral_bend_left") == pytest.approx(20, abs=0.1)
    assert b.directions["flexion"].lumbar_share == pytest.approx(0.5, abs=0.01)
    # min-jerk over 2 s to 46: peak speed 1.875 * 46 / 2
    assert b.directions["flexion"].peak_speed_deg_s == pytest.approx(1.875 * 46 / 2, rel=0.03)
    assert b.repositioning is not None
    assert b.repositioning.target_deg == pytest.approx(23, abs=0.1)
    assert b.repositioning.errors_deg == pytest.approx((3, -2), abs=0.3)
    assert b.repositioning.mean_abs_error_deg == pytest.approx(2.5, abs=0.3)
    json.dumps(events)
    steps = [e["step"] for e in events if e["type"] == "baseline_step_started"]
    assert steps == ["flexion", "lateral_bend_left", "repositioning"]


def test_protocol_is_chunk_invariant() -> None:
    batch = protocol_stream().batch()
    ref = run([batch])[1]
    assert run(chunks(batch, [7, 130, 1, 55]))[1] == ref


def test_protocol_ignores_wrong_direction_and_gaps() -> None:
    s = Script().still(2.0).rep(flexion_deg=-15).rep(flexion_deg=40).gap(9.0, 9.4)
    s.rep(flexion_deg=40).rep(flexion_deg=44).rep(flexion_deg=42).still(1)
    proto = BaselineProtocol(BaselineParams(directions=("flexion",), repositioning_trials=0),
                             smoothness=None)
    events = [e.as_dict() for e in proto.update(s.batch())]
    assert [e["reason"] for e in events if e["type"] == "baseline_movement_interrupted"] == [
        "signal_gap"]
    assert proto.baseline is not None and proto.baseline.range_deg("flexion") == pytest.approx(42)
    assert proto.state["step"] is None


def test_no_movement_stays_on_the_first_step() -> None:
    proto = BaselineProtocol(PARAMS, smoothness=None)
    proto.update(Script().still(30).batch())
    assert proto.state["step"] == "flexion" and proto.state["count"] == 0 and not proto.done


def test_round_trip_and_version() -> None:
    proto, _ = run([protocol_stream().batch()])
    b = proto.baseline
    assert b is not None
    again = Baseline.from_dict(json.loads(json.dumps(b.as_dict())))
    assert again.range_deg("flexion") == pytest.approx(b.range_deg("flexion"), abs=1e-3)
    assert again.repositioning is not None and again.taken_on == "2024-05-01"
    with pytest.raises(BaselineError, match="version 2"):
        Baseline.from_dict({**b.as_dict(), "version": 2})
    with pytest.raises(BaselineError, match="malformed"):
        Baseline.from_dict({"version": 1, "directions": {"flexion": {}}})
    with pytest.raises(KeyError, match="extension"):
        b.range_deg("extension")


def test_targets_derive_from_the_baseline() -> None:
    lib = load_library()
    eng = PracticeEngine(lib["flexion_to_target"], 1, Baseline.from_ranges(flexion=46))
    assert eng.targets.target_deg == pytest.approx(0.4 * 46)


def test_changes_below_mdc_are_within_measurement_noise() -> None:
    old = Baseline.from_ranges(flexion=40, axial_rotation_left=10, extension=15)
    new = Baseline.from_ranges(flexion=49, axial_rotation_left=22, extension=25)
    ch = {c.measure: c for c in compare_baselines(old, new)}
    assert ch["flexion_range"].label == "no measurable change (within measurement noise)"
    assert not ch["axial_rotation_left_range"].measurable  # 12 < 15 (rotation MDC)
    assert ch["extension_range"].label == "increased"  # 10 >= 10
    rec = review_baseline(old, new)
    assert rec.rule_id == "baseline_mdc" and "flexion" not in rec.patient_message
    assert "extension" in rec.patient_message
    steady = review_baseline(old, Baseline.from_ranges(flexion=44, axial_rotation_left=11,
                                                       extension=16))
    assert "no change beyond measurement noise" in steady.patient_message


def test_from_ranges_validates() -> None:
    with pytest.raises(BaselineError, match="unknown range"):
        Baseline.from_ranges(knee=10)
    with pytest.raises(BaselineError, match=r"\(0, 120\]"):
        Baseline.from_ranges(flexion=-3)
