"""SQLite connections and the few statements both the live writer and the store use.

Connections run in autocommit mode (isolation_level=None) with explicit BEGIN/COMMIT, so a group
commit is exactly one transaction. WAL lets readers (the service's pages, `lumbo export`) read
while a session is being written; `synchronous=NORMAL` in WAL means a commit does not wait for
fsync (see SessionWriter for what that guarantees).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from recordings.blocks import SAMPLE_BLOCK_COLUMNS
from recordings.errors import StorageError
from recordings.models import SensorInfo, SessionInfo, utc_now_iso

BUSY_TIMEOUT_S = 10.0


def connect(path: Path, *, read_only: bool = False, synchronous: str = "NORMAL",
            busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection with Lumbo's pragmas; raises sqlite3 errors for the caller to classify."""
    if read_only:
        return _connect_read_only(path, busy_timeout_s)
    else:
        conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        if not read_only:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            if mode != "wal":
                raise StorageError(f"{path}: SQLite refused WAL mode (got {mode!r}); is the data "
                                   "directory on a network file system?", path)
            if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
                raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_read_only(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Read-only; in a read-only directory, where WAL's shared-memory file cannot be created,
    fall back to `immutable=1` (safe there: nobody can be writing that directory either)."""
    last: sqlite3.Error | None = None
    for extra in ("", "&immutable=1"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro{extra}", uri=True,
                               timeout=busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            last = exc
    assert last is not None
    raise last


# --- JSON that never fails --------------------------------------------------------------------

def _plain(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if hasattr(obj, "as_dict"):
        return _plain(obj.as_dict())
    if hasattr(obj, "to_dict"):
        return _plain(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(asdict(obj))
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def to_json(payload: Any) -> str:
    """JSON text of a payload: numpy values, dataclasses (`as_dict`/`to_dict`) and NaN (→ null)
    are converted; anything else unknown becomes its str() rather than an exception."""
    return json.dumps(_plain(payload if payload is not None else {}), separators=(",", ":"))


# --- statements -----------------------------------------------------------------------------

def insert_session(conn: sqlite3.Connection, session_id: str, info: SessionInfo, *,
                   status: str, owner: str = "") -> None:
    conn.execute(
        "INSERT INTO sessions (id, patient_id, started_at, time_origin_s, status, source, notes, "
        "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, info.patient_id, info.started_at or utc_now_iso(), info.time_origin_s,
         status, info.source, info.notes, owner))


def insert_sensor(conn: sqlite3.Connection, session_id: str, s: SensorInfo) -> int:
    cur = conn.execute(
        "INSERT INTO sensors (session_id, role, family, device_name, address, nominal_rate_hz) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, s.role, s.family, s.device_name, s.address, s.nominal_rate_hz))
    return int(cur.lastrowid)  # type: ignore[arg-type]


_SAMPLE_INSERT = (f"INSERT INTO sample_blocks (sensor_id, {', '.join(SAMPLE_BLOCK_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * (len(SAMPLE_BLOCK_COLUMNS) + 1))})")


def insert_sample_block(conn: sqlite3.Connection, sensor_id: int, row: tuple[Any, ...]) -> None:
    conn.execute(_SAMPLE_INSERT, (sensor_id, *row))


def create_analysis(conn: sqlite3.Connection, session_id: str, kind: str, description: str = "",
                    params: Mapping[str, Any] | None = None) -> int:
    cur = conn.execute(
        "INSERT INTO analyses (session_id, created_at, kind, description, params) "
        "VALUES (?, ?, ?, ?, ?)", (session_id, utc_now_iso(), kind, description, to_json(params)))
    return int(cur.lastrowid)  # type: ignore[arg-type]


def insert_angle_block(conn: sqlite3.Connection, analysis_id: int, row: tuple[Any, ...]) -> None:
    conn.execute("INSERT INTO angle_blocks (analysis_id, n, t_first, t_last, codec, fields, data) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (analysis_id, *row))


def insert_event(conn: sqlite3.Connection, session_id: str, time_s: float | None, type_: str,
                 payload_json: str, analysis_id: int | None = None) -> None:
    conn.execute("INSERT INTO events (session_id, time_s, type, payload, analysis_id) "
                 "VALUES (?, ?, ?, ?, ?)", (session_id, time_s, type_, payload_json, analysis_id))


def insert_calibration(conn: sqlite3.Connection, session_id: str, time_s: float | None,
                       payload_json: str, analysis_id: int | None = None) -> None:
    conn.execute("INSERT INTO calibrations (session_id, analysis_id, time_s, payload) "
                 "VALUES (?, ?, ?, ?)", (session_id, analysis_id, time_s, payload_json))


def insert_report(conn: sqlite3.Connection, session_id: str, time_s: float | None, kind: str,
                  payload_json: str, reported_at: str | None = None) -> None:
    conn.execute("INSERT INTO patient_reports (session_id, time_s, reported_at, kind, payload) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (session_id, time_s, reported_at or utc_now_iso(), kind, payload_json))


def finish_session(conn: sqlite3.Connection, session_id: str, status: str,
                   ended_at: str | None = None, *, only_if_live: bool = True) -> bool:
    cur = conn.execute(
        "UPDATE sessions SET status = ?, ended_at = COALESCE(?, ended_at) WHERE id = ?"
        + (" AND status = 'live'" if only_if_live else ""),
        (status, ended_at, session_id))
    return cur.rowcount > 0
