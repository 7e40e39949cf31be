"""Derived-data exports: angles and repetitions as tidy CSV, orientations as OpenSim `.sto`.

Angles CSV: one row per frame, `time_s` first, then the analysis' columns in their order
(`flexion_deg, lateral_bend_deg, axial_rotation_deg, pelvic_tilt_deg, ...`; units in the names,
booleans as 0/1, missing values empty). Repetitions CSV: one row per scored or interrupted
repetition (live feedback engine) or detected repetition (offline analysis), the event payload
flattened with dotted names (`score.peak_flexion_deg`).

OpenSim/OpenSense orientations (`.sto`, the format of OpenSense's `*_orientations.sto`):

    DataRate=100.000000
    DataType=Quaternion
    version=3
    OpenSimVersion=4.5
    endheader
    time<TAB>pelvis_imu<TAB>torso_imu
    0<TAB>w,x,y,z<TAB>w,x,y,z

Quaternions are sensor-to-earth, scalar first (docs/contracts.md), earth z up; OpenSense's IMU
placer rotates them into OpenSim's y-up ground with its `sensor_to_opensim_rotations`
(−90° about x for z-up data).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from recordings.blocks import angle_columns
from recordings.models import EventRecord
from recordings.textio import open_text

REPETITION_EVENT_TYPES = ("repetition_scored", "repetition_interrupted", "repetition")
STO_COLUMNS = {"lower": "pelvis_imu", "upper": "torso_imu"}


def _cell(v: Any, fmt: str) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else fmt % float(v)
    text = str(v)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _open(dest: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if isinstance(dest, (str, Path)):
        return open_text(dest, "w"), True
    return dest, False


def write_angles_csv(dest: str | Path | IO[str], angles: Any, *, fmt: str = "%.9g") -> int:
    """Angles (an `AngleBatch` or mapping of columns) as CSV; returns the number of rows."""
    cols = angle_columns(angles)
    names = ["time_s"] + [k for k in cols if k != "time_s"]
    f, own = _open(dest)
    try:
        f.write(",".join(names) + "\n")
        data = [cols[k].tolist() for k in names]
        for row in zip(*data):
            f.write(",".join(_cell(v, fmt) for v in row) + "\n")
    finally:
        if own:
            f.close()
    return int(cols["time_s"].shape[0])


def _flatten(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in payload.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ";".join(str(x) for x in v)
        else:
            out[key] = v
    return out


def write_events_csv(dest: str | Path | IO[str], events: Iterable[EventRecord], *,
                     types: Sequence[str] | None = REPETITION_EVENT_TYPES,
                     fmt: str = "%.9g") -> int:
    """Events (default: repetitions) as CSV with flattened payloads; returns the row count."""
    rows: list[dict[str, Any]] = []
    for ev in events:
        if types is not None and ev.type not in types:
            continue
        flat = {"time_s": ev.time_s, "type": ev.type}
        flat.update({k: v for k, v in _flatten(ev.payload).items()
                     if k not in ("time_s", "type")})
        rows.append(flat)
    names: list[str] = ["time_s", "type"]
    for r in rows:
        names += [k for k in r if k not in names]
    f, own = _open(dest)
    try:
        f.write(",".join(names) + "\n")
        for r in rows:
            f.write(",".join(_cell(r.get(k), fmt) for k in names) + "\n")
    finally:
        if own:
            f.close()
    return len(rows)


def write_sto(dest: str | Path | IO[str], time_s: np.ndarray,
              quaternions: Mapping[str, np.ndarray], *, data_rate_hz: float | None = None,
              opensim_version: str = "4.5", fmt: str = "%.9g") -> int:
    """OpenSim orientation file; `quaternions` maps column names (`pelvis_imu`, `torso_imu`)
    to (N, 4) unit quaternions (w, x, y, z). Returns the number of rows."""
    t = np.asarray(time_s, dtype=float)
    if t.ndim != 1:
        raise ValueError("time_s must be one-dimensional")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        raise ValueError("time_s must increase")
    qs: dict[str, np.ndarray] = {}
    for name, q in quaternions.items():
        if "\t" in name or "," in name or not name:
            raise ValueError(f"invalid column name {name!r}")
        q = np.asarray(q, dtype=float)
        if q.shape != (t.size, 4):
            raise ValueError(f"{name}: quaternions must have shape ({t.size}, 4), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{name}: quaternions must be finite")
        norms = np.linalg.norm(q, axis=1)
        if norms.size and np.max(np.abs(norms - 1.0)) > 1e-3:
            raise ValueError(f"{name}: quaternions must be unit quaternions")
        qs[name] = q
    if data_rate_hz is None:
        data_rate_hz = 1.0 / float(np.median(np.diff(t))) if t.size > 1 else 0.0
    f, own = _open(dest)
    try:
        f.write(f"DataRate={data_rate_hz:.6f}\nDataType=Quaternion\nversion=3\n"
                f"OpenSimVersion={opensim_version}\nendheader\n")
        f.write("\t".join(["time", *qs]) + "\n")
        cells = {name: [",".join(fmt % x for x in row) for row in q.tolist()]
                 for name, q in qs.items()}
        for i, ti in enumerate(t.tolist()):
            f.write("\t".join([fmt % ti, *(cells[n][i] for n in qs)]) + "\n")
    finally:
        if own:
            f.close()
    return int(t.size)


def read_sto(source: str | Path | IO[str]) -> tuple[dict[str, str], np.ndarray,
                                                   dict[str, np.ndarray]]:
    """(header key=values, time, {column: (N, 4) quaternions}) of an orientation `.sto`."""
    f, own = (open_text(source), True) if isinstance(source, (str, Path)) else (source, False)
    try:
        header: dict[str, str] = {}
        for line in f:
            line = line.rstrip("\r\n")
            if line == "endheader":
                break
            key, _, value = line.partition("=")
            header[key] = value
        else:
            raise ValueError("no 'endheader' line")
        names = f.readline().rstrip("\r\n").split("\t")
        if not names or names[0] != "time":
            raise ValueError("the column line must start with 'time'")
        times: list[float] = []
        quats: dict[str, list[list[float]]] = {n: [] for n in names[1:]}
        for line in f:
            if not line.strip():
                continue
            cells = line.rstrip("\r\n").split("\t")
            times.append(float(cells[0]))
            for n, c in zip(names[1:], cells[1:]):
                quats[n].append([float(x) for x in c.split(",")])
        return header, np.array(times), {n: np.array(v).reshape(-1, 4) for n, v in quats.items()}
    finally:
        if own:
            f.close()
