"""Import of the Xsens DOT (Movella DOT) app's CSV export: one file per sensor, two per session.

What is required, and in which units (Xsens DOT User Manual, XD0502P, §4.2 "Sensor data
outputs", tables "Inertial and magnetometer data outputs" and "Timestamp and packet counter"):

| column | unit in the file | stored as |
|---|---|---|
| `PacketCounter` | integer, +1 per data message, wraps at 2^32 | `counter` (unwrapped) |
| `SampleTimeFine` | µs ticks of the sensor's 1 MHz clock since power-on, wraps at 2^32 | `device_time_s` (unwrapped, s) and the time base |
| `Acc_X`, `Acc_Y`, `Acc_Z` | calibrated acceleration, sensor frame, m/s² | `acc`, unchanged |
| `Gyr_X`, `Gyr_Y`, `Gyr_Z` | angular velocity, sensor frame, degree/s | `gyr`, × π/180 → rad/s |

Every other column is listed and ignored: `Mag_*` (arbitrary units normalised to the field in
Xsens' calibration lab, "approximately 40 µT": not µT, so not stored as such), orientation
(`Euler_*`, `Quat_*`), `FreeAcc_*`, `dq_*`/`dv_*`, `Status`, ... (Lumbo computes its own
orientation). A file without the eight required columns (e.g. exported in an orientation-only
measurement mode) is refused with the list of what is missing.

The file layout is the one the Xsens DOT app (2021.0; firmware 1.6.0 and 2.0.0) writes: metadata
lines before the column header (`sep=,`, `DeviceTag:,<tag>`, `FirmwareVersion:,...`,
`SyncStatus:,Synced`, `OutputRate:,60Hz`, `StartTime: ,2021-08-20_20:21:13_835 GMT+8`, a
copyright line, an empty line), then `PacketCounter,SampleTimeFine,...` and one row per sample.
The manual documents the quantities and units above but not this layout: it is taken from
exported files, so the reader looks for the header line instead of counting lines, and keeps the
`Key:,value` lines it finds as metadata.

Time base. Both sensors share one clock only when they were synchronised in the app before
recording (`SyncStatus:,Synced` in both headers): then time_s = (SampleTimeFine − first
SampleTimeFine of either file) / 10^6. Without it the two clocks are unrelated, and the import is
refused unless `assume_simultaneous_start=True` (each file's first sample taken as t = 0; the
session notes say so).

Strictness: any line that cannot be read raises `DotImportError` (an `InterchangeError`) with the
file and line number; duplicate or decreasing `PacketCounter` or `SampleTimeFine` are errors;
counter jumps are kept as lost samples (`gap_before`) and reported. Rows at the very start whose
Acc and Gyr are all exactly 0 (the app writes such a row first in some exports) are skipped and
reported. Values are checked against what body-worn sensors measure in these units (|acc| ≈ 9.81
m/s² while standing, within ±16 g; |gyr| within ±2000 °/s).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO

import numpy as np

from recordings.interchange import UNIT_CHECK_SAMPLES, InterchangeError
from recordings.models import SensorInfo, SessionInfo
from recordings.textio import open_text
from sensors.samples import SampleBatch

REQUIRED_COLUMNS = ("PacketCounter", "SampleTimeFine", "Acc_X", "Acc_Y", "Acc_Z",
                    "Gyr_X", "Gyr_Y", "Gyr_Z")
FAMILY = "xsens_dot"
MAX_HEADER_LINES = 64
WRAP = 2 ** 32
MAX_ACC_M_S2 = 160.0  # ±16 g, the DOT's accelerometer range
MAX_GYR_DEG_S = 2000.0  # ±2000 °/s, the DOT's gyroscope range
BATCH_ROWS = 4096
_DEG = math.pi / 180.0


class DotImportError(InterchangeError):
    """An Xsens DOT export that cannot be imported as it is (file, 1-based line)."""


@dataclass(frozen=True)
class DotFile:
    """One sensor's export, validated, in the file's own clock (not yet on a shared time base)."""

    name: str
    meta: dict[str, str]
    counter: np.ndarray  # int64, unwrapped
    device_time_us: np.ndarray  # int64, SampleTimeFine unwrapped
    acc: np.ndarray  # (N, 3) m/s²
    gyr: np.ndarray  # (N, 3) rad/s
    lines: np.ndarray  # int64 line number of each row
    ignored_columns: tuple[str, ...] = ()
    skipped_lines: tuple[int, ...] = ()  # leading all-zero rows
    gap_rows: tuple[int, ...] = ()  # row indices that follow lost samples
    lost_samples: int = 0

    @property
    def synced(self) -> bool:
        return self.meta.get("SyncStatus", "").strip().lower() == "synced"

    @property
    def rate_hz(self) -> float | None:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*Hz\s*", self.meta.get("OutputRate", ""))
        if m:
            return float(m.group(1))
        if self.device_time_us.size > 1:
            step = float(np.median(np.diff(self.device_time_us)))
            return round(1e6 / step, 1) if step > 0 else None
        return None

    @property
    def address(self) -> str:
        """The sensor's MAC when the file name carries it (the app names files
        <tag>_<MAC without colons>_<date>_<time>.csv)."""
        m = re.search(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{12})(?![0-9A-Fa-f])", Path(self.name).name)
        if not m:
            return ""
        h = m.group(1).upper()
        return ":".join(h[i:i + 2] for i in range(0, 12, 2))

    def __len__(self) -> int:
        return int(self.counter.shape[0])


@dataclass(frozen=True)
class DotRecording:
    batches: list[SampleBatch]
    info: SessionInfo
    notes: list[str] = field(default_factory=list)


# --- one file -----------------------------------------------------------------------------

def _header(f: IO[str], src: str) -> tuple[dict[str, str], list[str], int]:
    meta: dict[str, str] = {}
    for lineno, raw in enumerate(f, start=1):
        line = raw.rstrip("\r\n").lstrip("\ufeff")
        cells = [c.strip() for c in line.split(",")]
        if "PacketCounter" in cells or "SampleTimeFine" in cells:
            return meta, cells, lineno
        if lineno > MAX_HEADER_LINES:
            break
        if len(cells) >= 2 and cells[0].endswith(":"):
            meta[cells[0][:-1].strip()] = ",".join(cells[1:]).strip()
    raise DotImportError(
        "not an Xsens DOT export: no column header line starting with 'PacketCounter' (and "
        f"naming 'SampleTimeFine') in the first {MAX_HEADER_LINES} lines. Export the recording "
        "from the Xsens DOT app as CSV, or use the raw interchange CSV (--format interchange)",
        None, src)


def _unwrap(values: np.ndarray) -> np.ndarray:
    """Undo 32-bit wrap-around: a step back by more than half the range is a wrap."""
    if values.size < 2:
        return values.astype(np.int64)
    d = np.diff(values.astype(np.int64))
    wraps = np.concatenate([[0], np.cumsum(d < -(WRAP // 2))]).astype(np.int64)
    return values.astype(np.int64) + wraps * WRAP


def read_dot_file(source: str | Path | IO[str], *, name: str | None = None,
                  check_units: bool = True) -> DotFile:
    """One DOT export, read and checked (see the module docstring); raises `DotImportError`."""
    src = name if name is not None else (str(source) if isinstance(source, (str, Path)) else
                                         "<stream>")
    if isinstance(source, (str, Path)):
        with open_text(source) as f:
            return _read(f, src, check_units)
    return _read(source, src, check_units)


def _read(f: IO[str], src: str, check_units: bool) -> DotFile:
    meta, names, header_line = _header(f, src)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DotImportError(
            f"the export lacks {', '.join(missing)} (it has {', '.join(names)}): Lumbo needs "
            "the calibrated inertial data. Record in a measurement mode that includes "
            "acceleration and angular velocity (e.g. 'Custom mode' with Acc and Gyr, or the "
            "inertial data / 'Rate quantities' mode)", header_line, src)
    dup = sorted({c for c in names if names.count(c) > 1 and c})
    if dup:
        raise DotImportError(f"column(s) {', '.join(dup)} appear more than once in the header",
                             header_line, src)
    idx = [names.index(c) for c in REQUIRED_COLUMNS]
    ncols = len(names)
    ignored = tuple(c for c in names if c and c not in REQUIRED_COLUMNS)
    counters: list[int] = []
    stf: list[int] = []
    values: list[list[float]] = []
    lines: list[int] = []
    blank: int | None = None
    lineno = header_line
    for lineno, raw in enumerate(f, start=header_line + 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            blank = blank or lineno
            continue
        if blank is not None:
            raise DotImportError("empty line inside the data", blank, src)
        cells = line.split(",")
        if len(cells) != ncols:
            hint = " (is the file truncated?)" if len(cells) < ncols else ""
            raise DotImportError(f"expected {ncols} comma-separated columns as in the header "
                                 f"(line {header_line}), got {len(cells)}{hint}", lineno, src)
        for k, col in zip(idx[:2], REQUIRED_COLUMNS[:2]):
            text = cells[k].strip()
            try:
                v = int(text)
            except ValueError:
                raise DotImportError(f"{col} {text!r} is not an integer", lineno, src) from None
            if not 0 <= v < WRAP:
                raise DotImportError(f"{col} {v} is outside 0..2^32-1", lineno, src)
            (counters if col == "PacketCounter" else stf).append(v)
        row: list[float] = []
        for k, col in zip(idx[2:], REQUIRED_COLUMNS[2:]):
            text = cells[k].strip()
            try:
                v = float(text)
            except ValueError:
                raise DotImportError(f"{col} {text!r} is not a number", lineno, src) from None
            if not math.isfinite(v):
                raise DotImportError(f"{col} {text!r} is not a finite number", lineno, src)
            row.append(v)
        values.append(row)
        lines.append(lineno)
    if not values:
        raise DotImportError("no data rows after the column header", max(lineno, header_line),
                             src)
    a = np.array(values, dtype=np.float64)
    line_arr = np.array(lines, dtype=np.int64)
    cnt = np.array(counters, dtype=np.int64)
    t_us = np.array(stf, dtype=np.int64)
    # leading rows with all Acc and Gyr exactly zero are not measurements
    zero = np.all(a == 0.0, axis=1)
    first = int(np.argmin(zero)) if not zero.all() else a.shape[0]
    if first == a.shape[0]:
        raise DotImportError("every row has Acc and Gyr exactly 0: no measurements",
                             int(line_arr[0]), src)
    skipped = tuple(int(x) for x in line_arr[:first])
    a, line_arr, cnt, t_us = a[first:], line_arr[first:], cnt[first:], t_us[first:]
    cnt_u, t_u = _unwrap(cnt), _unwrap(t_us)
    gap_rows, lost = _check_steps(cnt_u, t_u, line_arr, src)
    acc = a[:, 0:3]
    gyr_deg = a[:, 3:6]
    if check_units:
        _check_units(acc, gyr_deg, line_arr, src)
    return DotFile(src, meta, cnt_u, t_u, acc.copy(), gyr_deg * _DEG, line_arr, ignored,
                   skipped, gap_rows, lost)


def _check_steps(cnt: np.ndarray, t_us: np.ndarray, lines: np.ndarray, src: str
                 ) -> tuple[tuple[int, ...], int]:
    if cnt.size < 2:
        return (), 0
    dc, dt = np.diff(cnt), np.diff(t_us)
    bad = np.flatnonzero(dc < 1)
    if bad.size:
        i = int(bad[0]) + 1
        what = "repeats" if dc[i - 1] == 0 else "goes back from"
        raise DotImportError(
            f"PacketCounter {int(cnt[i]) % WRAP} {what} the previous row's "
            f"({int(cnt[i - 1]) % WRAP}, line {int(lines[i - 1])}): each row must be a new "
            "sample", int(lines[i]), src)
    bad = np.flatnonzero(dt < 1)
    if bad.size:
        i = int(bad[0]) + 1
        what = "repeats" if dt[i - 1] == 0 else "goes back from"
        raise DotImportError(
            f"SampleTimeFine {int(t_us[i]) % WRAP} {what} the previous row's "
            f"({int(t_us[i - 1]) % WRAP}, line {int(lines[i - 1])}): sample times must "
            "increase", int(lines[i]), src)
    step = float(np.median(dt[dc == 1])) if np.any(dc == 1) else float(np.median(dt))
    gaps = (dc > 1) | (dt > 1.5 * step * dc)
    lost = int(np.sum(dc[dc > 1] - 1))
    return tuple(int(i) + 1 for i in np.flatnonzero(gaps)), lost


def _check_units(acc: np.ndarray, gyr_deg: np.ndarray, lines: np.ndarray, src: str) -> None:
    big = np.flatnonzero(np.any(np.abs(acc) > MAX_ACC_M_S2, axis=1))
    if big.size:
        i = int(big[0])
        raise DotImportError(
            f"acceleration {np.max(np.abs(acc[i])):g} is beyond the DOT's ±16 g range in m/s² "
            "(the unit the DOT app writes): is this file in another unit?", int(lines[i]), src)
    big = np.flatnonzero(np.any(np.abs(gyr_deg) > MAX_GYR_DEG_S, axis=1))
    if big.size:
        i = int(big[0])
        raise DotImportError(
            f"angular velocity {np.max(np.abs(gyr_deg[i])):g} is beyond the DOT's ±2000 °/s "
            "range (the DOT app writes °/s): is this file in another unit?", int(lines[i]), src)
    n = min(len(lines), UNIT_CHECK_SAMPLES)
    where = f"lines {int(lines[0])}–{int(lines[n - 1])}"
    g = float(np.median(np.linalg.norm(acc[:n], axis=1)))
    if 0.5 <= g <= 2.0:
        raise DotImportError(f"acceleration looks like it is in g: median |Acc| = {g:.3g} at "
                             f"the start ({where}), expected ≈ 9.81 m/s² (the DOT app writes "
                             "m/s²)", int(lines[0]), src)
    if not 4.0 <= g <= 20.0:
        raise DotImportError(f"implausible acceleration: median |Acc| = {g:.4g} at the start "
                             f"({where}); a body-worn sensor measures ≈ 9.81 m/s² at rest",
                             int(lines[0]), src)
    w = float(np.median(np.linalg.norm(gyr_deg[:n], axis=1)))
    if w > 30.0:
        raise DotImportError(f"median |Gyr| = {w:.3g} °/s at the start ({where}): a recording "
                             "for Lumbo starts with quiet standing (≈ 0 °/s)", int(lines[0]), src)


# --- two files: one session ---------------------------------------------------------------

def _start_time(meta: dict[str, str]) -> datetime | None:
    """'2021-08-20_20:21:13_835 GMT+8' → aware datetime (None if absent or unreadable)."""
    text = meta.get("StartTime", "").strip()
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})_(\d{2}:\d{2}:\d{2})_(\d{1,3})\s*(?:GMT|UTC)?"
                     r"\s*([+-]\d{1,2})?(?::?(\d{2}))?", text)
    if not m:
        return None
    try:
        base = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    hours = int(m.group(4) or 0)
    minutes = int(m.group(5) or 0) * (1 if hours >= 0 else -1)
    tz = timezone(timedelta(hours=hours, minutes=minutes))
    return base.replace(tzinfo=tz) + timedelta(milliseconds=int(m.group(3)))


def _batches(role: str, f: DotFile, origin_us: int) -> Iterable[SampleBatch]:
    t = (f.device_time_us - origin_us).astype(np.float64) / 1e6
    dev = f.device_time_us.astype(np.float64) / 1e6
    cuts = sorted({0, len(f), *f.gap_rows, *range(0, len(f), BATCH_ROWS)})
    gaps = set(f.gap_rows)
    for i0, i1 in zip(cuts[:-1], cuts[1:]):
        if i1 > i0:
            yield SampleBatch(role, t[i0:i1].copy(), f.acc[i0:i1].copy(),  # type: ignore[arg-type]
                              f.gyr[i0:i1].copy(), None, dev[i0:i1].copy(),
                              f.counter[i0:i1].copy(), i0 in gaps)


def dot_recording(upper: DotFile, lower: DotFile, *, assume_simultaneous_start: bool = False,
                  patient_id: str | None = None, notes: str = "") -> DotRecording:
    """The two sensors' exports as one session: batches on a shared time base, and notes that
    say what was skipped, lost, ignored or assumed."""
    said: list[str] = []
    both_synced = upper.synced and lower.synced
    if both_synced:
        o_u, o_l = int(upper.device_time_us[0]), int(lower.device_time_us[0])
        # synced clocks may still each have wrapped: compare modulo 2^32
        off = (o_u - o_l) % WRAP
        off = off - WRAP if off > WRAP // 2 else off
        if abs(off) > 60_000_000:
            raise DotImportError(
                f"the two exports are marked synchronised but start {off / 1e6:.1f} s apart on "
                f"their shared clock (SampleTimeFine {o_u % WRAP} in {upper.name}, "
                f"{o_l % WRAP} in {lower.name}): are they from the same recording?", None,
                f"{upper.name}, {lower.name}")
        lower_us = lower.device_time_us + (o_u - o_l - off)  # same wrap count as upper
        lower = DotFile(lower.name, lower.meta, lower.counter, lower_us, lower.acc, lower.gyr,
                        lower.lines, lower.ignored_columns, lower.skipped_lines, lower.gap_rows,
                        lower.lost_samples)
        origin = min(int(upper.device_time_us[0]), int(lower.device_time_us[0]))
        origins = {"upper": origin, "lower": origin}
        said.append("time base: the sensors' synchronised SampleTimeFine clock")
    elif assume_simultaneous_start:
        origins = {"upper": int(upper.device_time_us[0]), "lower": int(lower.device_time_us[0])}
        said.append("time base: NOT synchronised in the app; both first samples taken as t = 0 "
                    "(--assume-simultaneous-start)")
    else:
        unsynced = [f.name for f in (upper, lower) if not f.synced]
        raise DotImportError(
            "the two sensors were not time-synchronised in the Xsens DOT app (no "
            "'SyncStatus:,Synced' line in the header of " + " and ".join(unsynced) + "), so "
            "their clocks are unrelated. Synchronise the sensors in the app before recording, "
            "or pass --assume-simultaneous-start to take both first samples as simultaneous",
            None, ", ".join(unsynced))
    batches: list[SampleBatch] = []
    for role, f in (("upper", upper), ("lower", lower)):
        batches.extend(_batches(role, f, origins[role]))
        tag = f.meta.get("DeviceTag", "")
        if f.skipped_lines:
            said.append(f"{role} ({f.name}): skipped {len(f.skipped_lines)} leading row(s) with "
                        f"Acc and Gyr all 0 (line {f.skipped_lines[0]}"
                        + (f"–{f.skipped_lines[-1]}" if len(f.skipped_lines) > 1 else "") + ")")
        if f.gap_rows:
            said.append(f"{role} ({f.name}): {f.lost_samples} sample(s) lost in "
                        f"{len(f.gap_rows)} gap(s), first before line "
                        f"{int(f.lines[f.gap_rows[0]])}")
        if f.ignored_columns:
            said.append(f"{role} ({f.name}{', tag ' + tag if tag else ''}): ignored columns "
                        + ", ".join(f.ignored_columns))
    batches.sort(key=lambda b: (float(b.time_s[0]), b.sensor))
    starts = [s for s in (_start_time(upper.meta), _start_time(lower.meta)) if s is not None]
    started_at = (min(starts).astimezone(timezone.utc).isoformat(timespec="milliseconds")
                  if starts else None)  # StartTime: the app's wall clock at the first sample
    sensors = tuple(SensorInfo(role, FAMILY, f"Xsens DOT {f.meta.get('DeviceTag', '')}".strip(),
                               f.address, f.rate_hz)
                    for role, f in (("upper", upper), ("lower", lower)))
    text = "; ".join(x for x in [notes, *said] if x)
    info = SessionInfo(source=f"import:xsens-dot:{Path(upper.name).name}+{Path(lower.name).name}",
                       sensors=sensors, patient_id=patient_id, notes=text, time_origin_s=0.0,
                       started_at=started_at)
    return DotRecording(batches, info, said)
