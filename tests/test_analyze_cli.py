"""`lumbo analyze` run as a subprocess on small raw interchange files written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sensors.samples import SampleBatch
from sensors.simulation import PatientParams, SimulatedPatient, mixed_session

ROOT = Path(__file__).resolve().parents[1]
HEADER = "time_s,sensor,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z"


def write_raw(path: Path, rec: dict[str, SampleBatch], *, mag: bool = False,
              roles: tuple[str, ...] = ("lower", "upper")) -> None:
    """The interchange CSV (docs/architecture.md): rows of both sensors in time order."""
    rows = []
    for role in roles:
        b = rec[role]
        cols = [b.acc, b.gyr] + ([b.mag] if mag else [])
        for i, t in enumerate(b.time_s):
            vals = ",".join(f"{v:.6f}" for c in cols for v in c[i])
            rows.append((float(t), f"{t:.4f},{role},{vals}"))
    rows.sort(key=lambda r: r[0])
    head = HEADER + (",mag_x,mag_y,mag_z" if mag else "")
    path.write_text(head + "\n" + "\n".join(r[1] for r in rows) + "\n")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", "analyze", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def recording() -> tuple[SimulatedPatient, dict[str, SampleBatch]]:
    patient = SimulatedPatient(mixed_session(40.0, seed=3),
                               PatientParams(seed=3, rate_hz=50.0, with_mag=True))
    return patient, patient.record()


def test_angles_and_repetitions_of_a_recording(tmp_path: Path, recording: tuple) -> None:
    patient, rec = recording
    raw, out, reps = tmp_path / "raw.csv", tmp_path / "angles.csv", tmp_path / "reps.json"
    write_raw(raw, rec)
    p = run(raw, "--out", out, "--reps", reps, "--target", "flexion:15")
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("time_s,flexion_deg,lateral_bend_deg,axial_rotation_deg")
    assert len(lines) - 1 == len(rec["lower"])  # one row per lower-sensor sample
    data = np.genfromtxt(out, delimiter=",", names=True)
    np.testing.assert_allclose(data["time_s"], rec["lower"].time_s, atol=1e-4)
    ok = ~np.isnan(data["flexion_deg"])
    assert ok.mean() > 0.99
    truth = patient.truth(data["time_s"][ok])
    after = data["time_s"][ok] > 20.0
    err = data["flexion_deg"][ok][after] - truth.flexion_deg[after]
    assert np.sqrt(np.mean(err**2)) < 0.5
    doc = json.loads(reps.read_text())
    assert doc["calibration"]["bend_s"] is not None
    got = doc["repetitions"]
    assert len(got) == len(patient.repetitions())
    for r in got:
        for key in ("direction", "start_s", "peak_s", "end_s", "peak_deg", "range_deg",
                    "duration_s", "peak_speed_deg_s", "mean_speed_deg_s", "sparc", "ldlj",
                    "n_velocity_peaks", "hold_duration_s", "repositioning_error_deg"):
            assert key in r
    assert any(r["repositioning_error_deg"] is not None for r in got)


def test_with_magnetometer_columns_and_given_windows(tmp_path: Path, recording: tuple) -> None:
    _, rec = recording
    raw, out, reps = tmp_path / "raw.csv", tmp_path / "angles.csv", tmp_path / "reps.json"
    write_raw(raw, rec, mag=True)
    p = run(raw, "--out", out, "--reps", reps, "--neutral", "1:5.5", "--bend", "5.5:13.5")
    assert p.returncode == 0, p.stderr
    cal = json.loads(reps.read_text())["calibration"]
    assert cal["neutral_s"] == [1.0, 5.5] and cal["bend_s"] == [5.5, 13.5]


def test_malformed_file_names_the_line(tmp_path: Path, recording: tuple) -> None:
    _, rec = recording
    raw = tmp_path / "raw.csv"
    write_raw(raw, rec)
    lines = raw.read_text().splitlines()
    parts = lines[41].split(",")  # line 42 of the file (the header is line 1)
    parts[4] = "abc"
    lines[41] = ",".join(parts)
    raw.write_text("\n".join(lines) + "\n")
    p = run(raw, "--out", tmp_path / "a.csv")
    assert p.returncode == 2
    assert "line 42" in p.stderr and "abc" in p.stderr
    assert not (tmp_path / "a.csv").exists()


def test_missing_sensor(tmp_path: Path, recording: tuple) -> None:
    _, rec = recording
    raw = tmp_path / "raw.csv"
    write_raw(raw, rec, roles=("lower",))
    p = run(raw, "--out", tmp_path / "a.csv")
    assert p.returncode == 3
    assert "upper" in p.stderr and "both sensors" in p.stderr


def test_too_short(tmp_path: Path, recording: tuple) -> None:
    _, rec = recording
    short = {r: SampleBatch(r, b.time_s[:200], b.acc[:200], b.gyr[:200])  # 4 s at 50 Hz
             for r, b in rec.items()}
    raw = tmp_path / "raw.csv"
    write_raw(raw, short)
    p = run(raw, "--out", tmp_path / "a.csv")
    assert p.returncode == 4
    assert "too short" in p.stderr or "only 4.0 s long" in p.stderr


def test_no_calibration_period(tmp_path: Path, recording: tuple) -> None:
    _, rec = recording
    # the recording without its first 18 s: no quiet standing and forward bend at the start
    cut = {r: SampleBatch(r, b.time_s[b.time_s > 18.0], b.acc[b.time_s > 18.0],
                          b.gyr[b.time_s > 18.0]) for r, b in rec.items()}
    raw = tmp_path / "raw.csv"
    write_raw(raw, cut)
    p = run(raw, "--out", tmp_path / "a.csv")
    assert p.returncode == 5
    assert "calibration" in p.stderr and "stand" in p.stderr.lower()


def test_bad_calibration_windows_say_what_to_redo(tmp_path: Path, recording: tuple) -> None:
    _, rec = recording
    raw = tmp_path / "raw.csv"
    write_raw(raw, rec)
    # a "bend" window over quiet standing: too small a bend
    p = run(raw, "--out", tmp_path / "a.csv", "--neutral", "0.5:2.5", "--bend", "3:5.5")
    assert p.returncode == 5
    assert "Bend forward further" in p.stderr
    p = run(raw, "--out", tmp_path / "a.csv", "--neutral", "1:5")
    assert p.returncode == 6 and "--bend" in p.stderr
