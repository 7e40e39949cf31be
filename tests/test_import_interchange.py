"""Raw interchange CSV: exact round trips (hypothesis) and every validator error with its line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recordings import (
    CsvFormat,
    InterchangeError,
    RecordingStore,
    SessionInfo,
    iter_interchange,
    read_interchange,
    write_interchange,
)
from recordings.testing import simulated_recording
from sensors.samples import SampleBatch

HEADER = "time_s,sensor,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z"


def rest_lines(n: int = 250, *, mag: bool = False) -> list[str]:
    """A valid file's lines: both sensors standing still, interleaved (line k+1 = lines[k])."""
    rng = np.random.default_rng(1)
    lines = [HEADER + (",mag_x,mag_y,mag_z" if mag else "")]
    for i in range(n):
        for role, dt in (("lower", 0.0), ("upper", 0.003)):
            acc = np.array([0.1, -0.2, 9.8]) + rng.normal(0, 0.02, 3)
            gyr = rng.normal(0, 0.005, 3)
            vals = [*acc, *gyr] + ([20.0, 0.5, -40.0] if mag else [])
            lines.append(f"{i * 0.01 + dt:.3f},{role}," + ",".join(f"{v:.5f}" for v in vals))
    return lines


def read_text(lines: list[str], **kw) -> dict[str, SampleBatch]:
    text = "\n".join(lines) + "\n" if lines else ""
    return read_interchange(io.StringIO(text), name="t.csv", **kw)


def expect_error(lines: list[str], line: int, *words: str, **kw) -> InterchangeError:
    with pytest.raises(InterchangeError) as err:
        read_text(lines, **kw)
    e = err.value
    assert e.line == line, str(e)
    assert str(e).startswith(f"t.csv: line {line}: "), str(e)
    for w in words:
        assert w in str(e), str(e)
    return e


def test_valid_file_reads() -> None:
    rec = read_text(rest_lines())
    assert set(rec) == {"upper", "lower"} and len(rec["lower"]) == 250
    assert rec["lower"].mag is None and rec["lower"].counter is None
    assert rec["upper"].time_s[0] == 0.003
    rec = read_text(["# a comment", "# another"] + rest_lines(mag=True))
    assert rec["upper"].mag is not None and rec["upper"].mag[0, 2] == -40.0


# --- every error, with its line -----------------------------------------------------------------

def test_header_errors() -> None:
    expect_error(["time,sensor,ax,ay,az,gx,gy,gz"] + rest_lines()[1:], 1, "header must be")
    expect_error(["# comment"] + rest_lines()[:1] + ["x"], 3, "columns")  # after a comment
    expect_error([], 1, "no header")
    expect_error(["# only a comment"], 1, "no header")
    expect_error(["", HEADER], 1, "empty line before the header")


def test_row_errors() -> None:
    ok = rest_lines()

    def with_line(k: int, text: str) -> list[str]:
        lines = list(ok)
        lines[k - 1] = text
        return lines

    expect_error(with_line(7, "0.030,lower,1,2,3,4,5"), 7, "expected 8", "got 7")
    expect_error(with_line(7, ok[6] + ",1"), 7, "expected 8", "got 9")
    role_field = ok[8].split(",")
    role_field[1] = "middle"
    expect_error(with_line(9, ",".join(role_field)), 9, "unknown sensor 'middle'")
    bad = ok[10].split(",")
    bad[4] = "9,8".replace(",", ";")
    expect_error(with_line(11, ",".join(bad)), 11, "acc_z", "not a number")
    bad = ok[12].split(",")
    bad[6] = "nan"
    expect_error(with_line(13, ",".join(bad)), 13, "gyr_y", "not a finite number")
    bad = ok[12].split(",")
    bad[0] = "inf"
    expect_error(with_line(13, ",".join(bad)), 13, "time_s", "not a finite number")
    lines = list(ok)
    lines.insert(20, "")  # a blank line inside the data (line 21)
    expect_error(lines, 21, "empty line inside the data")
    read_text(ok + ["", ""])  # trailing blank lines are fine


def test_time_order_errors() -> None:
    ok = rest_lines()
    lines = list(ok)
    # line 6 is lower at 0.020; make line 8 (lower, 0.030) repeat it
    lines[7] = ok[5].split(",", 1)[0] + "," + ok[7].split(",", 1)[1]
    expect_error(lines, 8, "repeats", "line 6", "'lower'")
    lines = list(ok)
    lines[7] = "0.001," + ok[7].split(",", 1)[1]  # lower goes back
    expect_error(lines, 8, "goes back", "line 6")
    # the two sensors may be out of step with each other: only per-sensor order matters
    lines = list(ok)
    lines[1], lines[2] = lines[2], lines[1]
    read_text(lines)


def test_missing_sensor() -> None:
    lines = [ok for ok in rest_lines() if ",upper," not in ok]
    expect_error(lines, len(lines) + 1, "no rows for sensor 'upper'", "end of the file")


def test_unit_errors() -> None:
    ok = rest_lines()

    def scaled(role: str, cols: slice, factor: float) -> list[str]:
        out = [ok[0]]
        for line in ok[1:]:
            parts = line.split(",")
            if parts[1] == role:
                vals = [float(x) for x in parts[2:]]
                vals[cols] = [v * factor for v in vals[cols]]
                parts = parts[:2] + [f"{v:.6g}" for v in vals]
            out.append(",".join(parts))
        return out

    first_upper = 3  # line of the first upper row
    expect_error(scaled("upper", slice(0, 3), 1 / 9.80665), first_upper, "in g", "9.81")
    expect_error(scaled("lower", slice(0, 3), 1000 / 9.80665), 2, "mg")  # a row beyond ±16 g
    expect_error(scaled("lower", slice(0, 3), 3.0), 2, "implausible acceleration")
    # angular rate in °/s: a quiet start reads ~0.3 °/s -> the median check names the start
    expect_error(scaled("lower", slice(3, 6), 57.3 * 20), 2, "°/s", "median")
    # one value beyond ±2000 °/s is evidence on its own line
    lines = list(ok)
    parts = lines[100].split(",")
    parts[5] = "120.0"
    lines[100] = ",".join(parts)
    expect_error(lines, 101, "gyr_x", "°/s")
    # fast rotation all through the file (after a quiet start): the 99th percentile gives it away
    lines = list(ok)
    for k in range(300, len(lines)):
        parts = lines[k].split(",")
        if parts[1] != "lower":
            continue
        parts[6] = "25.0" if k == 349 else "20.0"
        lines[k] = ",".join(parts)
    e = expect_error(lines, 350, "99th percentile")
    assert "largest on line 350" in str(e)
    # magnetic field in nT
    lines = rest_lines(mag=True)
    lines[30] = lines[30].replace("-40.0", "-40000.0")
    expect_error(lines, 31, "mag_z", "nT")
    # all of it can be switched off for unusual data
    read_text(scaled("upper", slice(0, 3), 1 / 9.80665), check_units=False)


def test_optional_column_errors() -> None:
    lines = rest_lines(mag=True)
    lines[40] = lines[40].rsplit(",", 3)[0] + ",,,"  # mag missing on one row only
    expect_error(lines, 41, "mag values missing here", "present")
    lines = rest_lines(mag=True)
    lines[40] = lines[40].rsplit(",", 3)[0] + ",1,,"
    expect_error(lines, 41, "partly empty")
    lines = [HEADER + ",device_time_s,counter"] + [
        line + f",{k * 0.01:.2f},{k}" for k, line in enumerate(rest_lines()[1:])]
    assert read_text(lines)["lower"].counter.dtype == np.int64
    lines[20] = lines[20].rsplit(",", 1)[0] + ",19.5"
    expect_error(lines, 21, "counter '19.5' is not an integer")


def test_nothing_is_imported_from_a_bad_file(store_url) -> None:
    lines = rest_lines(400)
    lines[700] = lines[700].replace("lower", "LOWER").replace("upper", "UPPER")
    store = RecordingStore(store_url)
    with pytest.raises(InterchangeError) as err:
        store.import_recording(iter_interchange(io.StringIO("\n".join(lines)), chunk_rows=200),
                               SessionInfo(source="bad"))
    assert err.value.line == 701
    assert store.sessions() == []  # batches before line 701 had been yielded: all rolled back


# --- round trips ------------------------------------------------------------------------------

finite = st.floats(-100.0, 100.0, allow_nan=False, allow_subnormal=True)


@st.composite
def recordings(draw) -> dict[str, SampleBatch]:
    with_mag = draw(st.booleans())
    with_extras = draw(st.booleans())
    out = {}
    for role in ("upper", "lower"):
        times = sorted(draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1,
                                     max_size=12, unique=True)))
        n = len(times)

        def arr(shape):
            return np.array(draw(st.lists(finite, min_size=int(np.prod(shape)),
                                          max_size=int(np.prod(shape))))).reshape(shape)

        out[role] = SampleBatch(
            role, np.array(times), arr((n, 3)), arr((n, 3)) * 0.3,
            arr((n, 3)) if with_mag else None,
            arr((n,)) if with_extras else None,
            np.array(draw(st.lists(st.integers(-2**53, 2**53), min_size=n, max_size=n)),
                     dtype=np.int64) if with_extras else None)
    return out


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(recordings())
def test_round_trip_is_exact(rec: dict[str, SampleBatch]) -> None:
    buf = io.StringIO()
    n = write_interchange(buf, rec)
    assert n == sum(len(b) for b in rec.values())
    got = read_interchange(io.StringIO(buf.getvalue()), check_units=False)
    for role, a in rec.items():
        b = got[role]
        for name in ("time_s", "acc", "gyr", "mag", "device_time_s", "counter"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or x.tobytes() == y.tobytes(), (role, name)


def test_round_trip_at_printed_precision_and_streamed_batches(tmp_path) -> None:
    rec = simulated_recording(1, seed=8)
    path = tmp_path / "rec.csv.gz"
    fmt = CsvFormat(time="%.9g", acc="%.9g", gyr="%.9g", mag="%.9g", device_time="%.9g")
    halves = {r: [b.__class__(r, b.time_s[:500], b.acc[:500], b.gyr[:500], b.mag[:500],
                              b.device_time_s[:500], b.counter[:500]),
                  b.__class__(r, b.time_s[500:], b.acc[500:], b.gyr[500:], b.mag[500:],
                              b.device_time_s[500:], b.counter[500:])]
              for r, b in rec.items()}
    write_interchange(path, halves, fmt=fmt)
    got = read_interchange(path)
    for role, a in rec.items():
        for name in ("time_s", "acc", "gyr", "mag", "device_time_s"):
            np.testing.assert_allclose(getattr(got[role], name), getattr(a, name), rtol=1e-8,
                                       atol=1e-12)
        assert np.array_equal(got[role].counter, a.counter)
    text = path.read_bytes()
    assert text[:2] == b"\x1f\x8b"  # gzip by suffix
