"""`lumbo import / export / sessions` (recordings.commands) on the shipped sample sessions."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from recordings import RecordingStore, SessionInfo, read_interchange
from recordings.commands import add_subcommands
from recordings.exports import read_sto
from recordings.make_samples import SAMPLES, SAMPLES_DIR, render

FLEXION = SAMPLES_DIR / "flexion_reps.csv.xz"
MIXED = SAMPLES_DIR / "mixed.csv.xz"


def lumbo(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lumbo")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, str, str]:
    data = tmp_path_factory.mktemp("data")
    out = io.StringIO()
    import contextlib

    ids = []
    for sample in (FLEXION, MIXED):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert lumbo("import", sample, "--data-dir", data, "--patient", "P1") == 0
        ids.append(out.getvalue().strip())
    return data, ids[0], ids[1]


def test_samples_are_small_synthetic_and_reproducible() -> None:
    for s in SAMPLES:
        path = SAMPLES_DIR / s.filename
        assert path.stat().st_size <= 310_000
    # regenerating gives the shipped content (the smaller one, to keep the suite fast)
    import lzma

    assert lzma.decompress(render(SAMPLES[0])) == lzma.decompress(FLEXION.read_bytes())
    assert "synthetic" in (SAMPLES_DIR / "README.md").read_text().lower()


def test_import_prints_the_session_id_and_stores_it(imported, capsys) -> None:
    data, flex, mixed = imported
    store = RecordingStore(data)
    rec = store.session(flex)
    assert rec.status == "completed" and rec.patient_id == "P1"
    assert rec.source == "import:flexion_reps.csv.xz"
    assert {s.role: s.samples for s in rec.sensors} == {"lower": 13900, "upper": 13900}
    assert rec.duration_s == pytest.approx(138.993, abs=1e-6)
    assert store.session(mixed).sensor("upper").samples == 12000  # type: ignore[union-attr]


def test_sessions_lists_them(imported, capsys) -> None:
    data, flex, mixed = imported
    assert lumbo("sessions", "--data-dir", data) == 0
    out = capsys.readouterr().out
    assert flex in out and mixed in out and "completed" in out and "2:19" in out
    assert lumbo("sessions", "--data-dir", data, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {s["id"] for s in listed} == {flex, mixed}
    assert lumbo("sessions", "--data-dir", data.parent / "nothing-here") == 0
    assert "No sessions" in capsys.readouterr().out


def test_raw_export_reimports_identically(imported, tmp_path) -> None:
    data, flex, _ = imported
    out = tmp_path / "raw.csv"
    assert lumbo("export", flex[:-2], "--format", "raw-csv", "--out", out,
                 "--data-dir", data) == 0
    text = out.read_text()
    assert text.startswith("# lumbo raw interchange; session " + flex)
    assert "\ntime_s,sensor,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n" in text  # as imported
    again, original = read_interchange(out), read_interchange(FLEXION)
    for role in ("upper", "lower"):
        assert again[role].time_s.tobytes() == original[role].time_s.tobytes()
        assert again[role].acc.tobytes() == original[role].acc.tobytes()
        assert again[role].counter is None  # the sample has none; import invents nothing


def test_angles_export_analyses_when_nothing_is_stored(imported, tmp_path, capsys) -> None:
    data, flex, _ = imported
    out = tmp_path / "angles.csv"
    assert lumbo("export", flex, "--format", "angles-csv", "--out", out, "--data-dir", data) == 0
    assert "no stored angles" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) > 13000
    peak = max(float(r["flexion_deg"]) for r in rows if r["flexion_deg"])
    assert 15.0 < peak < 60.0


def test_sto_export(imported, tmp_path) -> None:
    data, _, mixed = imported
    out = tmp_path / "orientations.sto"
    assert lumbo("export", mixed, "--format", "sto", "--out", out, "--data-dir", data) == 0
    header, t, q = read_sto(out)
    assert header["DataRate"] == "100.000000" and set(q) == {"pelvis_imu", "torso_imu"}
    assert len(t) > 11900
    np.testing.assert_allclose(np.linalg.norm(q["torso_imu"], axis=1), 1.0, atol=1e-6)


def test_repetitions_export_of_a_recorded_practice(tmp_path) -> None:
    """A live-style session: pipeline + feedback engine, events through the writer."""
    from feedback.engine import FlexionPracticeEngine
    from processing.pipeline import LumbarPipeline

    data = tmp_path / "data"
    store = RecordingStore(data)
    w = store.begin_session(SessionInfo(source="practice"))
    pipe, engine = LumbarPipeline(), None
    for b in read_interchange_batches(FLEXION):
        w.append_batch(b)
        angles = pipe.update(b)
        w.append_angles(angles)
        if engine is None and pipe.comfortable_flexion_deg is not None:
            engine = FlexionPracticeEngine.from_level(6, pipe.comfortable_flexion_deg)
            w.append_calibration(float(b.time_s[-1]), pipe.calibration)
        if engine is not None and len(angles):
            for ev in engine.update(angles.time_s, angles.flexion_deg):
                w.append_event(ev.time_s, ev.type, ev.as_dict())
    assert w.close()
    out = tmp_path / "reps.csv"
    assert lumbo("export", w.session_id, "--format", "repetitions-csv", "--out", out,
                 "--data-dir", data) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) >= 10 and {"time_s", "type", "rep_number"} <= set(rows[0])
    assert any(k.startswith("score.") for k in rows[0])
    angles_out = tmp_path / "angles.csv"
    assert lumbo("export", w.session_id, "--format", "angles-csv", "--out", angles_out,
                 "--data-dir", data) == 0  # the stored live angles this time
    assert store.calibrations(w.session_id)


def read_interchange_batches(path: Path):
    """The sample as 100 ms live-like batches (both sensors per tick)."""
    from recordings.testing import simulated_stream

    return simulated_stream(read_interchange(path), 10)


def test_bad_input_gives_clear_messages_and_exit_codes(imported, tmp_path, capsys) -> None:
    data, flex, _ = imported
    before = len(RecordingStore(data).sessions())
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,sensor,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0.0,lower,0,0,9.8,0,0\n")
    assert lumbo("import", bad, "--data-dir", data) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "expected 8" in err and "Nothing was imported" in err
    assert len(RecordingStore(data).sessions()) == before
    assert lumbo("import", tmp_path / "missing.csv", "--data-dir", data) == 1
    assert "no such file" in capsys.readouterr().err
    assert lumbo("export", "nope", "--format", "raw-csv", "--out", tmp_path / "x.csv",
                 "--data-dir", data) == 1
    assert "No session 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(SystemExit) as exit_:
        lumbo("export", flex, "--format", "xlsx", "--out", "x", "--data-dir", data)
    assert exit_.value.code == 2
