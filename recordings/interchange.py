"""The raw recording interchange CSV (docs/architecture.md): strict reading, exact writing.

    time_s,sensor,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z[,mag_x,mag_y,mag_z][,device_time_s,counter]

SI units (m/s², rad/s, µT), one shared clock, each sensor's rows in time order. Lumbo's exports
add the optional `device_time_s,counter` pair (what the device itself said; researchers ask for
it) and leading `#` comment lines; plain files without them read the same.

Reading streams the file once (gzip/xz by suffix) and checks as it goes; any problem raises
`InterchangeError` naming the line, and since the batches are yielded only as they pass, a
consumer that writes them in one transaction (RecordingStore.import_recording) rolls back and
keeps nothing. Unit checks are heuristics for the usual slips: acceleration in g (|a| ≈ 1 at
rest) or mg, angular rate in °/s, field in nT.

Writing prints each float with `repr` by default, the shortest text that reads back to the same
float64, so import(export(x)) is bit-exact; `CsvFormat` trades digits for size (samples/).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from recordings.blocks import concat_batches
from recordings.textio import open_text
from sensors.samples import SENSOR_ROLES, SampleBatch

BASE_COLUMNS = ("time_s", "sensor", "acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
MAG_COLUMNS = ("mag_x", "mag_y", "mag_z")
EXTRA_COLUMNS = ("device_time_s", "counter")

UNIT_CHECK_SAMPLES = 200  # first samples per sensor (2 s at 100 Hz: quiet standing) for units
MAX_ACC_M_S2 = 160.0  # ≈ 16 g, the largest range of body-worn IMUs
MAX_GYR_RAD_S = 35.0  # ≈ 2000 °/s, idem
MAX_MAG_UT = 2000.0  # Earth's field is 25–65 µT
GYR_P99_MAX_RAD_S = 8.0  # trunk movements stay far below 460 °/s


class InterchangeError(ValueError):
    """An interchange file that cannot be read as it is; `line` is 1-based."""

    def __init__(self, message: str, line: int | None = None, source: str | None = None) -> None:
        self.message = message
        self.line = line
        self.source = source
        where = " ".join(x for x in (f"{source}:" if source else "",
                                     f"line {line}:" if line is not None else "") if x)
        super().__init__(f"{where} {message}" if where else message)


@dataclass(frozen=True)
class CsvFormat:
    """printf-style formats per column group; None: exact (shortest round-trip repr)."""

    time: str | None = None
    acc: str | None = None
    gyr: str | None = None
    mag: str | None = None
    device_time: str | None = None


# --- reading --------------------------------------------------------------------------------

@dataclass
class _SensorRows:
    rows: list[list[float]]
    lines: list[int]
    has_mag: bool | None = None
    has_extras: bool | None = None
    first_line: int = 0
    last_time: float = -math.inf
    last_line: int = 0
    count: int = 0
    units_checked: bool = False
    gyr_norms: list[np.ndarray] | None = None
    gyr_lines: list[np.ndarray] | None = None


def _parse_header(line: str, lineno: int, src: str | None) -> tuple[bool, bool]:
    names = [c.strip() for c in line.split(",")]
    for has_mag in (False, True):
        for extras in (False, True):
            expected = BASE_COLUMNS + (MAG_COLUMNS if has_mag else ()) + (
                EXTRA_COLUMNS if extras else ())
            if tuple(names) == expected:
                return has_mag, extras
    raise InterchangeError(
        f"header must be '{','.join(BASE_COLUMNS)}' optionally followed by "
        f"',{','.join(MAG_COLUMNS)}' and/or ',{','.join(EXTRA_COLUMNS)}'; got '{line[:200]}'",
        lineno, src)


def iter_interchange(source: str | Path | IO[str], *, chunk_rows: int = 4096,
                     check_units: bool = True, roles: tuple[str, ...] = SENSOR_ROLES,
                     name: str | None = None) -> Iterator[SampleBatch]:
    """Validated batches (≤ `chunk_rows` samples, per sensor in time order) as the file is read.

    Raises `InterchangeError` at the first problem, or at the end for a sensor with no rows.
    """
    if chunk_rows < UNIT_CHECK_SAMPLES:
        raise ValueError(f"chunk_rows must be at least {UNIT_CHECK_SAMPLES}")
    src = name if name is not None else (str(source) if isinstance(source, (str, Path)) else None)
    if isinstance(source, (str, Path)):
        with open_text(source) as f:
            yield from _read(f, chunk_rows, check_units, roles, src)
    else:
        yield from _read(source, chunk_rows, check_units, roles, src)


def read_interchange(source: str | Path | IO[str], *, check_units: bool = True,
                     roles: tuple[str, ...] = SENSOR_ROLES, name: str | None = None
                     ) -> dict[str, SampleBatch]:
    """The whole file, one batch per sensor role (validated; nothing returned on error)."""
    parts: dict[str, list[SampleBatch]] = {}
    for b in iter_interchange(source, check_units=check_units, roles=roles, name=name):
        parts.setdefault(b.sensor, []).append(b)
    return {role: concat_batches(parts[role]) for role in roles if role in parts}


def _read(f: IO[str], chunk_rows: int, check_units: bool, roles: tuple[str, ...],
          src: str | None) -> Iterator[SampleBatch]:
    header: tuple[bool, bool] | None = None
    ncols = 0
    sensors = {r: _SensorRows([], []) for r in roles}
    blank_line: int | None = None
    lineno = 0
    for lineno, raw in enumerate(f, start=1):
        line = raw.rstrip("\r\n")
        if header is None:
            if line.startswith("#"):
                continue
            if not line.strip():
                raise InterchangeError("empty line before the header", lineno, src)
            header = _parse_header(line, lineno, src)
            ncols = len(BASE_COLUMNS) + 3 * header[0] + 2 * header[1]
            continue
        if not line.strip():
            blank_line = blank_line or lineno
            continue
        if blank_line is not None:
            raise InterchangeError("empty line inside the data", blank_line, src)
        fields = line.split(",")
        if len(fields) != ncols:
            raise InterchangeError(f"expected {ncols} comma-separated columns as in the header, "
                                   f"got {len(fields)}", lineno, src)
        role = fields[1].strip()
        s = sensors.get(role)
        if s is None:
            raise InterchangeError(f"unknown sensor {role!r}; expected one of "
                                   + ", ".join(repr(r) for r in roles), lineno, src)
        row = _parse_row(fields, header, s, lineno, src, check_units)
        t = row[0]
        if t <= s.last_time:
            what = "repeats" if t == s.last_time else "goes back before"
            raise InterchangeError(
                f"time_s {fields[0].strip()} of sensor {role!r} {what} its previous sample "
                f"(line {s.last_line}, time_s {s.last_time!r}): each sensor's times must "
                "increase", lineno, src)
        if s.count == 0:
            s.first_line = lineno
        s.last_time, s.last_line = t, lineno
        s.count += 1
        s.rows.append(row)
        s.lines.append(lineno)
        if len(s.rows) >= chunk_rows:
            yield _emit(role, s, check_units, src)
    if header is None:
        raise InterchangeError("no header: expected '" + ",".join(BASE_COLUMNS) + "' "
                               "(the file is empty or has only comments)", max(lineno, 1), src)
    end = lineno + 1 if lineno else 1
    for role in roles:
        s = sensors[role]
        if s.count == 0:
            raise InterchangeError(f"no rows for sensor {role!r} by the end of the file: a "
                                   "recording needs " + " and ".join(repr(r) for r in roles),
                                   end, src)
    for role in roles:
        s = sensors[role]
        if s.rows:
            yield _emit(role, s, check_units, src)
        if check_units:
            _check_gyro_spread(role, s, src)


def _parse_row(fields: list[str], header: tuple[bool, bool], s: _SensorRows, lineno: int,
               src: str | None, check_units: bool) -> list[float]:
    has_mag_col, has_extras_col = header
    names = BASE_COLUMNS + (MAG_COLUMNS if has_mag_col else ()) + (
        EXTRA_COLUMNS if has_extras_col else ())
    optional: list[tuple[str, slice]] = []
    if has_mag_col:
        optional.append(("mag", slice(8, 11)))
    if has_extras_col:
        k = 8 + 3 * has_mag_col
        optional.append(("extras", slice(k, k + 2)))
    present = {"mag": False, "extras": False}
    for group, sl in optional:
        vals = [v.strip() for v in fields[sl]]
        empty = [v == "" for v in vals]
        if any(empty) and not all(empty):
            raise InterchangeError(f"{group} columns are partly empty: give all of "
                                   f"{', '.join(names[sl])} or none", lineno, src)
        present[group] = not empty[0]
        known = s.has_mag if group == "mag" else s.has_extras
        if known is not None and known != present[group]:
            raise InterchangeError(
                f"{group} values {'missing' if known else 'present'} here but "
                f"{'present' if known else 'missing'} in this sensor's earlier rows "
                f"(line {s.first_line}): a sensor has them on every row or on none", lineno, src)
        if group == "mag":
            s.has_mag = present[group]
        else:
            s.has_extras = present[group]
    out: list[float] = []
    for i, (name, text) in enumerate(zip(names, fields)):
        if i == 1:
            continue
        if i >= 8 and not text.strip():
            out.append(math.nan)
            continue
        if name == "counter":
            try:
                out.append(float(int(text)))
            except ValueError:
                raise InterchangeError(f"counter {text.strip()!r} is not an integer",
                                       lineno, src) from None
            continue
        try:
            v = float(text)
        except ValueError:
            raise InterchangeError(f"{name} {text.strip()!r} is not a number", lineno, src) \
                from None
        if not math.isfinite(v):
            raise InterchangeError(f"{name} {text.strip()!r} is not a finite number", lineno, src)
        if check_units:
            _check_range(name, v, lineno, src)
        out.append(v)
    return out


def _check_range(name: str, v: float, lineno: int, src: str | None) -> None:
    """Values no body-worn sensor produces in the right units: the line is the evidence."""
    if name.startswith("acc") and abs(v) > MAX_ACC_M_S2:
        raise InterchangeError(
            f"{name} {v:g} is beyond any body-worn sensor's range (±16 g = ±157 m/s²): is it "
            "in mg? Acceleration must be in m/s².", lineno, src)
    if name.startswith("gyr") and abs(v) > MAX_GYR_RAD_S:
        raise InterchangeError(
            f"{name} {v:g} is beyond any body-worn sensor's range (±2000 °/s = ±35 rad/s): "
            "is it in °/s? Angular rate must be in rad/s.", lineno, src)
    if name.startswith("mag") and abs(v) > MAX_MAG_UT:
        raise InterchangeError(f"{name} {v:g} is far above the Earth's field (25–65 µT): is "
                               "it in nT or mG? Magnetic field must be in µT.", lineno, src)


def _emit(role: str, s: _SensorRows, check_units: bool, src: str | None) -> SampleBatch:
    a = np.array(s.rows, dtype=np.float64)
    lines = np.array(s.lines, dtype=np.int64)
    s.rows, s.lines = [], []
    mag = a[:, 7:10] if s.has_mag else None
    k = a.shape[1] - 2  # parsed values: time, acc, gyr[, mag][, device_time, counter]
    dev = a[:, k] if s.has_extras else None
    cnt = a[:, k + 1].astype(np.int64) if s.has_extras else None
    gyr = a[:, 4:7]
    if check_units:
        if not s.units_checked:
            _check_rest_units(role, a[:UNIT_CHECK_SAMPLES, 1:4], gyr[:UNIT_CHECK_SAMPLES],
                              int(lines[0]), int(lines[min(len(lines), UNIT_CHECK_SAMPLES) - 1]),
                              src)
            s.units_checked = True
        norms = np.linalg.norm(gyr, axis=1)
        s.gyr_norms = (s.gyr_norms or []) + [norms]
        s.gyr_lines = (s.gyr_lines or []) + [lines]
    return SampleBatch(role, a[:, 0].copy(), a[:, 1:4].copy(), gyr.copy(),  # type: ignore[arg-type]
                       None if mag is None else mag.copy(),
                       None if dev is None else dev.copy(), cnt)


def _check_rest_units(role: str, acc: np.ndarray, gyr: np.ndarray, line0: int, line1: int,
                      src: str | None) -> None:
    """The first samples of a recording are quiet standing: |acc| ≈ 9.81 m/s², |gyr| ≈ 0."""
    where = f"sensor {role!r}, lines {line0}–{line1}"
    a = float(np.median(np.linalg.norm(acc, axis=1)))
    if 0.5 <= a <= 2.0:
        raise InterchangeError(f"acceleration looks like it is in g: median |acc| = {a:.3g} at "
                               f"the start ({where}), expected ≈ 9.81 m/s² at rest. Multiply by "
                               "9.80665.", line0, src)
    if 500.0 <= a <= 2000.0:
        raise InterchangeError(f"acceleration looks like it is in mg: median |acc| = {a:.4g} "
                               f"({where}), expected ≈ 9.81 m/s². Multiply by 0.00980665.",
                               line0, src)
    if not 4.0 <= a <= 20.0:
        raise InterchangeError(f"implausible acceleration: median |acc| = {a:.4g} m/s² at the "
                               f"start ({where}); a body-worn sensor measures ≈ 9.81 m/s² "
                               "(gravity) most of the time", line0, src)
    g = float(np.median(np.linalg.norm(gyr, axis=1)))
    if g > 0.5:
        raise InterchangeError(f"angular rate looks like it is in °/s: median |gyr| = {g:.3g} at "
                               f"the start ({where}), expected ≈ 0 rad/s while standing. "
                               "Multiply by π/180.", line0, src)


def _check_gyro_spread(role: str, s: _SensorRows, src: str | None) -> None:
    if not s.gyr_norms:
        return
    norms = np.concatenate(s.gyr_norms)
    p99 = float(np.percentile(norms, 99))
    if p99 > GYR_P99_MAX_RAD_S:
        lines = np.concatenate(s.gyr_lines or [])
        worst = int(lines[int(np.argmax(norms))])
        raise InterchangeError(
            f"angular rate looks like it is in °/s: 99th percentile of |gyr| = {p99:.3g} "
            f"(sensor {role!r}, largest on line {worst}); trunk movements stay below "
            f"{GYR_P99_MAX_RAD_S:g} rad/s. Multiply by π/180.", worst, src)


# --- writing --------------------------------------------------------------------------------

def _fmt_col(values: np.ndarray, fmt: str | None) -> list[str]:
    if fmt is None:
        return [repr(v) for v in values.tolist()]
    return [fmt % v for v in values.tolist()]


def _batch_rows(b: SampleBatch, fmt: CsvFormat, mag: bool, extras: bool) -> list[str]:
    cols = [_fmt_col(b.time_s, fmt.time), [b.sensor] * len(b)]
    cols += [_fmt_col(b.acc[:, i], fmt.acc) for i in range(3)]
    cols += [_fmt_col(b.gyr[:, i], fmt.gyr) for i in range(3)]
    if mag:
        cols += ([_fmt_col(b.mag[:, i], fmt.mag) for i in range(3)] if b.mag is not None
                 else [[""] * len(b)] * 3)
    if extras:
        if b.device_time_s is not None and b.counter is not None:
            cols += [_fmt_col(b.device_time_s, fmt.device_time),
                     [str(int(c)) for c in b.counter.tolist()]]
        else:
            cols += [[""] * len(b)] * 2
    return [",".join(r) for r in zip(*cols)]


def _rows_of(stream: Iterator[SampleBatch], k: int, fmt: CsvFormat, mag: bool, extras: bool,
             first: SampleBatch) -> Iterator[tuple[float, int, str]]:
    sig = (first.mag is not None, first.device_time_s is not None and first.counter is not None)
    for b in _chain(first, stream):
        if (b.mag is not None, b.device_time_s is not None and b.counter is not None) != sig:
            raise ValueError(f"sensor {b.sensor!r}: magnetometer or device time present in some "
                             "batches and not in others; the CSV needs them on all or none")
        yield from zip(b.time_s.tolist(), [k] * len(b), _batch_rows(b, fmt, mag, extras))


def _chain(first: SampleBatch, rest: Iterator[SampleBatch]) -> Iterator[SampleBatch]:
    yield first
    yield from rest


def write_interchange(dest: str | Path | IO[str],
                      recording: Mapping[str, SampleBatch | Iterable[SampleBatch]], *,
                      fmt: CsvFormat = CsvFormat(), extras: bool | None = None,
                      comments: Iterable[str] = ()) -> int:
    """Write both sensors' samples merged in time order; returns the number of rows.

    `recording`: per role one batch or an iterable of batches (e.g. streamed from the store).
    `extras`: write `device_time_s,counter` (None: when the first batches have them).
    """
    streams: list[tuple[SampleBatch, Iterator[SampleBatch]]] = []
    for role, value in recording.items():
        it = iter([value] if isinstance(value, SampleBatch) else value)
        first = next((b for b in it if len(b)), None)
        if first is not None:
            if first.sensor != role:
                raise ValueError(f"batch of sensor {first.sensor!r} given as {role!r}")
            streams.append((first, it))
    mag = any(f.mag is not None for f, _ in streams)
    if extras is None:
        extras = bool(streams) and all(f.device_time_s is not None and f.counter is not None
                                       for f, _ in streams)
    header = BASE_COLUMNS + (MAG_COLUMNS if mag else ()) + (EXTRA_COLUMNS if extras else ())
    merged = heapq.merge(*(_rows_of(it, k, fmt, mag, extras, first)
                           for k, (first, it) in enumerate(streams)))
    own = isinstance(dest, (str, Path))
    f = open_text(dest, "w") if own else dest
    n = 0
    try:
        for c in comments:
            f.write(f"# {c}\n")
        f.write(",".join(header) + "\n")
        buf: list[str] = []
        for _, _, row in merged:
            buf.append(row)
            if len(buf) >= 4096:
                f.write("\n".join(buf) + "\n")
                n += len(buf)
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")
            n += len(buf)
    finally:
        if own:
            f.close()
    return n
