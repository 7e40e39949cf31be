"""`lumbo import --format xsens-dot`: the Xsens DOT app's CSV export, two files per session,
stored on both backends (`--db`: a data directory, or a PostgreSQL database).

The exports here are synthetic (recordings.testing.xsens_dot_export writes the simulated
patient in the app's layout: metadata lines, PacketCounter, SampleTimeFine in µs, Acc in m/s²,
Gyr in °/s)."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from recordings import RecordingStore
from recordings.commands import add_subcommands
from recordings.testing import simulated_recording, xsens_dot_export
from recordings.xsens_dot import DotImportError, dot_recording, read_dot_file

WRAP = 2 ** 32


def lumbo(*argv: object) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="lumbo")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.func(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def rec() -> dict:
    return simulated_recording(1, seed=3, with_mag=False)


@pytest.fixture
def files(tmp_path, rec) -> tuple[Path, Path]:
    # the upper sensor's clock wraps (2^32 µs) 0.5 s into the recording
    up = tmp_path / "upper_D4CA6EF17860_20210820_202113.csv"
    lo = tmp_path / "lower_D4CA6EF1626C_20210820_202113.csv"
    def start(role: str) -> int:  # one synchronised clock: the simulated times, shifted
        return WRAP - 500_000 + int(round(float(rec[role].time_s[0]) * 1e6))

    up.write_text(xsens_dot_export(rec["upper"], tag="T12", start_us=start("upper")),
                  encoding="utf-8")
    lo.write_text(xsens_dot_export(rec["lower"], tag="S2", start_us=start("lower") - 10_000,
                                   first_counter=WRAP - 10, leading_zero_row=True),
                  encoding="utf-8")
    return up, lo


def test_import_stores_both_sensors_on_the_shared_clock_in_si_units(store_url, files,
                                                                    rec) -> None:
    up, lo = files
    code, out, err = lumbo("import", "--format", "xsens-dot", "--upper", up, "--lower", lo,
                           "--db", store_url)
    assert code == 0, err
    assert "skipped 1 leading row(s) with Acc and Gyr all 0 (line 13)" in err
    assert "ignored columns Euler_X, Euler_Y, Euler_Z" in err
    store = RecordingStore(store_url)
    s = store.session(out.strip())
    assert s.status == "completed" and s.source.startswith("import:xsens-dot:")
    assert s.sensor("upper").address == "D4:CA:6E:F1:78:60"
    assert s.sensor("upper").family == "xsens_dot" and s.sensor("upper").nominal_rate_hz == 100
    got = store.read_recording(s.id)
    for role in ("upper", "lower"):
        b, truth = got[role], rec[role]
        assert len(b) == len(truth)
        assert np.allclose(b.acc, truth.acc, atol=5e-7)  # printed with 6 decimals, m/s²
        assert np.allclose(b.gyr, truth.gyr, atol=1e-8)  # °/s in the file, rad/s stored
        assert np.all(np.diff(b.counter) == 1)  # PacketCounter unwrapped across 2^32
        assert np.all(np.diff(b.time_s) > 0)
    # one clock: the upper sensor's samples 3 ms after the lower's, as simulated
    t_u = got["upper"].time_s - got["upper"].time_s[0]
    assert np.allclose(t_u, rec["upper"].time_s - rec["upper"].time_s[0], atol=1e-6)
    offset = got["upper"].time_s[0] - got["lower"].time_s[0]
    true_offset = rec["upper"].time_s[0] - rec["lower"].time_s[0]
    assert abs(offset - true_offset) < 2e-6
    assert got["upper"].device_time_s[-1] > WRAP / 1e6  # unwrapped device clock


def _set_cell(lines: list[str], i: int, col: int, value: str) -> None:
    cells = lines[i].split(",")
    cells[col] = value
    lines[i] = ",".join(cells)


def _variant(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    lines = path.read_text(encoding="utf-8").splitlines()
    edit(lines)
    out = path.with_name("bad_" + path.name)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.mark.parametrize("name,edit,where,what", [
    ("truncated", lambda ls: ls.__setitem__(-1, ls[-1][:12]), "line 2412", "truncated"),
    ("duplicate time", lambda ls: ls.__setitem__(40, ls[40].split(",", 2)[0] + ","
                                                  + ls[39].split(",")[1] + ","
                                                  + ls[40].split(",", 2)[2]),
     "line 41", "SampleTimeFine"),
    ("counter back", lambda ls: ls.__setitem__(30, "5" + ls[30][ls[30].index(","):]),
     "line 31", "PacketCounter"),
    ("not a number", lambda ls: _set_cell(ls, 20, 6, "9.8.1"), "line 21",
     "Acc_Y '9.8.1' is not a number"),
    ("extra column", lambda ls: _set_cell(ls, 20, 6, "1,2"), "line 21", "got 12"),
    ("infinite", lambda ls: _set_cell(ls, 25, 9, "inf"), "line 26", "not a finite number"),
    ("g units", lambda ls: ls[12:].__len__() and [ls.__setitem__(
        i, ",".join(ls[i].split(",")[:5] + [f"{float(v) / 9.81:.6f}" for v in
                                            ls[i].split(",")[5:8]] + ls[i].split(",")[8:]))
        for i in range(12, len(ls))], "line 13", "in g"),
    ("missing gyro", lambda ls: [ls.__setitem__(i, ",".join(ls[i].split(",")[:8]))
                                 for i in range(11, len(ls))], "line 12", "Gyr_X"),
    ("not a DOT file", lambda ls: ls.__setitem__(slice(None), ["time_s,sensor,acc_x"] * 70),
     None, "not an Xsens DOT export"),
])
def test_bad_exports_are_refused_with_the_line_and_nothing_is_stored(
        store_url, files, name, edit, where, what) -> None:
    up, lo = files
    bad = _variant(up, edit)
    code, out, err = lumbo("import", "--format", "xsens-dot", "--upper", bad, "--lower", lo,
                           "--db", store_url)
    assert code == 1 and out == ""
    assert bad.name in err and what in err and "Nothing was imported" in err, err
    if where:
        assert where in err, err
    assert RecordingStore(store_url).sessions() == []


def test_unsynchronised_sensors_need_an_explicit_assumption(store_url, tmp_path, rec) -> None:
    up, lo = tmp_path / "u.csv", tmp_path / "l.csv"
    up.write_text(xsens_dot_export(rec["upper"], synced=False, start_us=10_000_000))
    lo.write_text(xsens_dot_export(rec["lower"], synced=False, start_us=900_000_000))
    code, _, err = lumbo("import", "--format", "xsens-dot", "--upper", up, "--lower", lo,
                         "--db", store_url)
    assert code == 1 and "not time-synchronised" in err and "--assume-simultaneous-start" in err
    code, out, err = lumbo("import", "--format", "xsens-dot", "--upper", up, "--lower", lo,
                           "--db", store_url, "--assume-simultaneous-start")
    assert code == 0 and "NOT synchronised" in err
    s = RecordingStore(store_url).session(out.strip())
    assert "assume-simultaneous-start" in s.notes
    assert s.sensor("upper").t_first == s.sensor("lower").t_first == 0.0


def test_lost_samples_are_kept_as_gaps_and_reported(tmp_path, rec) -> None:
    text = xsens_dot_export(rec["lower"])
    lines = text.splitlines()
    del lines[100:105]  # five messages lost over the radio
    f = read_dot_file(io.StringIO("\n".join(lines)), name="lower.csv")
    assert f.lost_samples == 5 and len(f.gap_rows) == 1
    u = read_dot_file(io.StringIO(xsens_dot_export(rec["upper"])), name="upper.csv")
    r = dot_recording(u, f)
    assert any("5 sample(s) lost in 1 gap(s), first before line 101" in n for n in r.notes)
    lower = [b for b in r.batches if b.sensor == "lower"]
    assert [b.gap_before for b in lower] == [False, True]


def test_wrong_usage_is_explained(tmp_path, files) -> None:
    up, lo = files
    code, _, err = lumbo("import", "--format", "xsens-dot", "--upper", up, "--data-dir",
                         tmp_path)
    assert code == 1 and "--upper FILE --lower FILE" in err
    code, _, err = lumbo("import", up, "--upper", up, "--data-dir", tmp_path)
    assert code == 1 and "--format xsens-dot" in err
    with pytest.raises(DotImportError, match="no data rows"):
        read_dot_file(io.StringIO("PacketCounter,SampleTimeFine,Acc_X,Acc_Y,Acc_Z,Gyr_X,Gyr_Y,"
                                  "Gyr_Z\n"), name="empty.csv")
