"""Angles and repetitions CSV, OpenSim .sto orientations."""

from __future__ import annotations

import csv
import io
from dataclasses import fields

import numpy as np
import pytest

from recordings.exports import read_sto, write_angles_csv, write_events_csv, write_sto
from recordings.models import EventRecord


def test_angles_csv_columns_and_values() -> None:
    from processing.pipeline import AngleBatch

    n = 7
    rng = np.random.default_rng(2)
    angles = AngleBatch(**{f.name: (np.arange(n) % 3 == 0 if f.name == "gap_before"
                                    else rng.normal(size=n) * 30) for f in fields(AngleBatch)})
    angles.flexion_deg[2] = np.nan
    buf = io.StringIO()
    assert write_angles_csv(buf, angles) == n
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0][:5] == ["time_s", "flexion_deg", "lateral_bend_deg", "axial_rotation_deg",
                           "pelvic_tilt_deg"]
    assert rows[0] == [f.name for f in fields(AngleBatch)]
    body = rows[1:]
    assert len(body) == n
    col = {name: [r[i] for r in body] for i, name in enumerate(rows[0])}
    assert col["flexion_deg"][2] == ""  # missing stays empty, not "nan"
    np.testing.assert_allclose([float(x) for x in col["lateral_bend_deg"]],
                               angles.lateral_bend_deg, rtol=1e-8)
    assert col["gap_before"] == ["1", "0", "0", "1", "0", "0", "1"]


def test_repetitions_csv_flattens_payloads() -> None:
    events = [
        EventRecord(3.5, "repetition_started", {"rep_number": 1}),
        EventRecord(5.0, "repetition_scored", {"type": "repetition_scored", "time_s": 5.0,
                                               "rep_number": 1, "score": {"peak_deg": 30.25,
                                               "target": {"target_deg": 28.0}, "good": True,
                                               "cue_text": 'Good, "held"'}}),
        EventRecord(9.0, "repetition_interrupted", {"rep_number": 2, "reason": "too_long"}),
    ]
    buf = io.StringIO()
    assert write_events_csv(buf, events) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["type"] for r in rows] == ["repetition_scored", "repetition_interrupted"]
    assert rows[0]["score.peak_deg"] == "30.25" and rows[0]["score.target.target_deg"] == "28"
    assert rows[0]["score.good"] == "1" and rows[0]["score.cue_text"] == 'Good, "held"'
    assert rows[1]["reason"] == "too_long" and rows[1]["score.peak_deg"] == ""
    buf = io.StringIO()
    assert write_events_csv(buf, events, types=None) == 3


def _quats(n: int, seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_sto_header_and_format() -> None:
    t = np.arange(5) / 100.0
    pelvis, torso = _quats(5, 1), _quats(5, 2)
    buf = io.StringIO()
    assert write_sto(buf, t, {"pelvis_imu": pelvis, "torso_imu": torso}) == 5
    lines = buf.getvalue().split("\n")
    assert lines[:6] == ["DataRate=100.000000", "DataType=Quaternion", "version=3",
                         "OpenSimVersion=4.5", "endheader", "time\tpelvis_imu\ttorso_imu"]
    first = lines[6].split("\t")
    assert len(first) == 3 and first[0] == "0"
    assert [float(x) for x in first[1].split(",")] == pytest.approx(pelvis[0], rel=1e-8)
    assert lines[-1] == "" and len(lines) == 6 + 5 + 1
    header, tt, q = read_sto(io.StringIO(buf.getvalue()))
    assert header["DataType"] == "Quaternion" and header["version"] == "3"
    np.testing.assert_allclose(tt, t, atol=1e-12)
    np.testing.assert_allclose(q["torso_imu"], torso, rtol=1e-8)


def test_sto_rejects_bad_input() -> None:
    t = np.arange(3) / 100.0
    with pytest.raises(ValueError, match="shape"):
        write_sto(io.StringIO(), t, {"pelvis_imu": _quats(4, 0)})
    with pytest.raises(ValueError, match="unit"):
        write_sto(io.StringIO(), t, {"pelvis_imu": _quats(3, 0) * 2})
    with pytest.raises(ValueError, match="increase"):
        write_sto(io.StringIO(), t[::-1], {"pelvis_imu": _quats(3, 0)})
