"""The statements both the live writer and the store use, in the SQL both databases speak.

Each takes a `database.Database` (SQLite or PostgreSQL: `?` placeholders, `insert` returning the
new id) inside a transaction the caller opened; connections and dialects are in database.py and
dialect.py. Also the JSON every payload is stored as.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

from recordings.blocks import SAMPLE_BLOCK_COLUMNS
from recordings.database import Database
from recordings.models import SensorInfo, SessionInfo, utc_now_iso


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

def insert_session(conn: Database, session_id: str, info: SessionInfo, *,
                   status: str, owner: str = "") -> None:
    conn.execute(
        "INSERT INTO sessions (id, patient_id, started_at, time_origin_s, status, source, notes, "
        "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, info.patient_id, info.started_at or utc_now_iso(), info.time_origin_s,
         status, info.source, info.notes, owner))


def insert_sensor(conn: Database, session_id: str, s: SensorInfo) -> int:
    return conn.insert(
        "INSERT INTO sensors (session_id, role, family, device_name, address, nominal_rate_hz) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, s.role, s.family, s.device_name, s.address, s.nominal_rate_hz))


_SAMPLE_INSERT = (f"INSERT INTO sample_blocks (sensor_id, {', '.join(SAMPLE_BLOCK_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * (len(SAMPLE_BLOCK_COLUMNS) + 1))})")


def insert_sample_block(conn: Database, sensor_id: int, row: tuple[Any, ...]) -> None:
    conn.execute(_SAMPLE_INSERT, (sensor_id, *row))


def create_analysis(conn: Database, session_id: str, kind: str, description: str = "",
                    params: Mapping[str, Any] | None = None) -> int:
    return conn.insert(
        "INSERT INTO analyses (session_id, created_at, kind, description, params) "
        "VALUES (?, ?, ?, ?, ?)", (session_id, utc_now_iso(), kind, description, to_json(params)))


def insert_angle_block(conn: Database, analysis_id: int, row: tuple[Any, ...]) -> None:
    conn.execute("INSERT INTO angle_blocks (analysis_id, n, t_first, t_last, codec, fields, data) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (analysis_id, *row))


def insert_event(conn: Database, session_id: str, time_s: float | None, type_: str,
                 payload_json: str, analysis_id: int | None = None) -> None:
    conn.execute("INSERT INTO events (session_id, time_s, type, payload, analysis_id) "
                 "VALUES (?, ?, ?, ?, ?)", (session_id, time_s, type_, payload_json, analysis_id))


def insert_calibration(conn: Database, session_id: str, time_s: float | None,
                       payload_json: str, analysis_id: int | None = None) -> None:
    conn.execute("INSERT INTO calibrations (session_id, analysis_id, time_s, payload) "
                 "VALUES (?, ?, ?, ?)", (session_id, analysis_id, time_s, payload_json))


def insert_report(conn: Database, session_id: str, time_s: float | None, kind: str,
                  payload_json: str, reported_at: str | None = None) -> None:
    conn.execute("INSERT INTO patient_reports (session_id, time_s, reported_at, kind, payload) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (session_id, time_s, reported_at or utc_now_iso(), kind, payload_json))


def finish_session(conn: Database, session_id: str, status: str,
                   ended_at: str | None = None, *, only_if_live: bool = True) -> bool:
    """Set a session's final status (and end time); `only_if_live`: only a session still `live`
    (a writer that finishes after another instance marked it interrupted changes nothing)."""
    cur = conn.execute(
        "UPDATE sessions SET status = ?, ended_at = COALESCE(?, ended_at) WHERE id = ?"
        + (" AND status = 'live'" if only_if_live else ""),
        (status, ended_at, session_id))
    return cur.rowcount > 0


def revive_session(conn: Database, session_id: str) -> bool:
    """A writer that lost its connection (PostgreSQL restart, network) and got it back: its
    session, marked `interrupted` meanwhile by another instance, is `live` again."""
    cur = conn.execute("UPDATE sessions SET status = 'live', ended_at = NULL "
                       "WHERE id = ? AND status = 'interrupted'", (session_id,))
    return cur.rowcount > 0
