"""The central service's side of edge mode: sessions uploaded by edges, each chunk stored once.

An edge (`lumbo edge`, api/edge_uploader.py) records a session locally and uploads it here as
streams of chunks (recordings/chunks.py). This module stores them in the same tables as any
session, under the edge's session id and the patient its device token is bound to:

- `open_session`: the session row and its sensors (idempotent: the edge repeats it after every
  restart or reconnection); `state` `uploading` in `ingest_sessions`.
- `apply`: one chunk, in ONE transaction with its stream's cursor (`ingest_streams`): a chunk
  whose sequence number was already stored (the edge did not get the answer: link cut, edge
  killed) is acknowledged again and stored nothing (`duplicate`); a chunk ahead of the next
  expected number is refused (`IngestConflict`, 409, with the number expected), so a stream is
  stored in order, without gaps and without duplicates. The cursor row is moved first with a
  compare-and-set (`WHERE next_seq = ?`), so two requests racing on one stream cannot both
  store (PostgreSQL's READ COMMITTED included).
- `end`: the edge's final status, accepted only when every stream holds what the edge sent.

While a session is `uploading` its row says `live` (the edge may still be recording it, or be
offline with the rest) and this process holds its writer lock (locks.py), so a store opened
elsewhere does not mark it `interrupted`; after a restart of the central service `resume`
takes the locks again and revives the sessions the restart marked. The edge's angles and
calibrations go into one analysis of kind `live` on this side.

Only RecordingStore's transaction (`_tx`), query (`_query`) and sql.py's statements are used, so
this works on whichever backend the store has (SQLite or PostgreSQL).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recordings import sql
from recordings.chunks import Chunk, stream_role, valid_stream
from recordings.database import Database, connect
from recordings.locks import writer_lock
from recordings.models import SensorInfo, SessionInfo, utc_now_iso
from recordings.store import RecordingStore

log = logging.getLogger(__name__)

FINAL_STATUSES = ("completed", "interrupted")
LIVE_ANALYSIS = ("live", "computed during the session, on the patient's edge device")


class IngestError(Exception):
    """A refusal with an HTTP status (the routes answer it as is)."""

    status = 400


class IngestNotFound(IngestError):
    status = 404


class IngestConflict(IngestError):
    """Out of order, or not all there yet: the edge re-reads the cursor and goes on from it."""

    status = 409

    def __init__(self, message: str, *, stream: str | None = None,
                 expected_seq: int | None = None) -> None:
        super().__init__(message)
        self.stream = stream
        self.expected_seq = expected_seq


@dataclass(frozen=True)
class StreamState:
    next_seq: int  # the sequence number the next chunk must have
    last_item_id: int  # the edge's id of the last row stored (0: none yet)
    items: int  # rows stored


@dataclass(frozen=True)
class IngestState:
    """An uploaded session as the central service holds it (the edge's cursor)."""

    session_id: str
    patient_id: str | None
    device_id: str
    state: str  # "uploading" | "ended"
    status: str  # the session row's: live, completed, interrupted
    edge_status: str  # the final status the edge reported ("" before the end)
    streams: dict[str, StreamState] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "state": self.state, "status": self.status,
                "edge_status": self.edge_status,
                "streams": {k: {"next_seq": v.next_seq, "last_item_id": v.last_item_id,
                                "items": v.items} for k, v in sorted(self.streams.items())}}


@dataclass(frozen=True)
class SessionMeta:
    """What the edge says about a session when it announces it."""

    started_at: str
    time_origin_s: float | None = None
    source: str = ""
    notes: str = ""
    sensors: tuple[SensorInfo, ...] = ()


@dataclass(frozen=True)
class ChunkResult:
    stream: str
    seq: int
    duplicate: bool  # already stored before: nothing stored now
    next_seq: int
    last_item_id: int
    items: int


class Ingest:
    """Uploaded sessions in `store` (the central service's RecordingStore)."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store
        self._locks: dict[str, Any] = {}
        self._locks_mutex = threading.Lock()
        self._lock_db: Database | None = None  # PostgreSQL: the connection holding the locks

    # --- locks: an uploading session is `live` and nobody else's to mark interrupted ----------
    def _lock_conn(self) -> Database | None:
        """SQLite: None (file locks). PostgreSQL: a connection of its own for the advisory
        locks (on the store's, the store's own recovery would claim them as its)."""
        if self.store.target.is_sqlite:
            return None
        if self._lock_db is None or self._lock_db.broken:
            self._locks.clear()  # a lost connection took its locks with it
            self._lock_db = connect(self.store.target, application_name="lumbo uploads",
                                    keepalive=True)
        return self._lock_db

    def _hold(self, session_id: str) -> None:
        with self._locks_mutex:
            try:
                db = self._lock_conn()
                if session_id in self._locks:
                    return
                lock = writer_lock(self.store.target, session_id)
                if lock.acquire(db):
                    self._locks[session_id] = lock
            except Exception as exc:  # noqa: BLE001 - a lock we cannot take loses no data
                log.warning("upload of %s: cannot take its writer lock: %s", session_id, exc)

    def _let_go(self, session_id: str) -> None:
        with self._locks_mutex:
            lock = self._locks.pop(session_id, None)
            if lock is not None:
                try:
                    lock.release(delete=True)
                except Exception as exc:  # noqa: BLE001 - the connection's end drops it anyway
                    log.warning("upload of %s: releasing its lock: %s", session_id, exc)

    def resume(self) -> list[str]:
        """At start-up: hold the locks of the sessions still uploading, and make those that
        opening the store marked `interrupted` `live` again. Returns their ids."""
        ids = [r["session_id"] for r in self.store._query(
            "SELECT session_id FROM ingest_sessions WHERE state = 'uploading'")]
        for sid in ids:
            self._hold(sid)
        if ids:
            with self.store._tx("resuming uploads") as conn:
                for sid in ids:
                    _revive(conn, sid)
        return ids

    def close(self) -> None:
        for sid in list(self._locks):
            self._let_go(sid)
        if self._lock_db is not None:
            self._lock_db.close()
            self._lock_db = None

    # --- sessions -----------------------------------------------------------------------------
    def open_session(self, session_id: str, patient_id: str, device_id: str,
                     meta: SessionMeta) -> IngestState:
        """Create the session (or find it, when the edge announces it again) and add sensors
        it did not have yet. IngestConflict when the id is taken by anything else."""
        with self.store._tx(f"opening upload {session_id}") as conn:
            row = conn.execute(
                "SELECT s.patient_id, i.state FROM sessions s LEFT JOIN ingest_sessions i "
                "ON i.session_id = s.id WHERE s.id = ?", (session_id,)).fetchone()
            now = utc_now_iso()
            if row is None:
                info = SessionInfo(source=meta.source, sensors=meta.sensors,
                                   patient_id=patient_id, notes=meta.notes,
                                   time_origin_s=meta.time_origin_s, started_at=meta.started_at)
                sql.insert_session(conn, session_id, info, status="live",
                                   owner=f"edge:{device_id}")
                conn.execute("INSERT INTO ingest_sessions (session_id, device_id, state, "
                             "edge_status, analysis_id, created_at, updated_at) "
                             "VALUES (?, ?, 'uploading', '', NULL, ?, ?)",
                             (session_id, device_id, now, now))
                uploading = True
            else:
                if row[1] is None or row[0] != patient_id:
                    raise IngestConflict(f"The session id {session_id!r} is already used on "
                                         "the central service.")
                uploading = row[1] == "uploading"
                if uploading:
                    _revive(conn, session_id)
            have = {r[0] for r in conn.execute(
                "SELECT role FROM sensors WHERE session_id = ?", (session_id,)).fetchall()}
            for s in meta.sensors:
                if s.role not in have:
                    sql.insert_sensor(conn, session_id, s)
                    have.add(s.role)
        if uploading:
            self._hold(session_id)
        return self.state(session_id, {patient_id})

    def state(self, session_id: str, patients: Iterable[str] | None) -> IngestState:
        """The upload state of a session of one of `patients` (None: any); IngestNotFound
        otherwise (another patient's session is answered as if it did not exist)."""
        rows = self.store._query(
            "SELECT s.patient_id, s.status, i.device_id, i.state, i.edge_status "
            "FROM ingest_sessions i JOIN sessions s ON s.id = i.session_id "
            "WHERE i.session_id = ?", (session_id,))
        if not rows or (patients is not None and rows[0]["patient_id"] not in set(patients)):
            raise IngestNotFound(f"No uploaded session {session_id!r}.")
        r = rows[0]
        streams = {s["stream"]: StreamState(int(s["next_seq"]), int(s["last_item_id"]),
                                            int(s["items"]))
                   for s in self.store._query(
                       "SELECT stream, next_seq, last_item_id, items FROM ingest_streams "
                       "WHERE session_id = ?", (session_id,))}
        return IngestState(session_id, r["patient_id"], r["device_id"], r["state"], r["status"],
                           r["edge_status"], streams)

    # --- chunks -------------------------------------------------------------------------------
    def apply(self, session_id: str, patient_id: str, chunk: Chunk) -> ChunkResult:
        """Store one validated chunk exactly once (see the module docstring)."""
        with self.store._tx(f"storing a chunk of upload {session_id}") as conn:
            state, analysis_id = self._owned(conn, session_id, patient_id)
            row = conn.execute("SELECT next_seq, last_item_id, items FROM ingest_streams "
                               "WHERE session_id = ? AND stream = ?",
                               (session_id, chunk.stream)).fetchone()
            expected, last, items = (0, 0, 0) if row is None else (int(x) for x in row)
            if chunk.seq < expected:
                if chunk.seq == expected - 1 and chunk.upto != last:
                    raise IngestConflict(
                        f"chunk {chunk.seq} of {chunk.stream} was stored ending at item {last}, "
                        f"not {chunk.upto}", stream=chunk.stream, expected_seq=expected)
                return ChunkResult(chunk.stream, chunk.seq, True, expected, last, items)
            if chunk.seq > expected:
                raise IngestConflict(f"chunk {chunk.seq} of {chunk.stream} is out of order: "
                                     f"the next is {expected}", stream=chunk.stream,
                                     expected_seq=expected)
            if chunk.upto <= last:
                raise IngestConflict(f"chunk {chunk.seq} of {chunk.stream} ends at item "
                                     f"{chunk.upto}, not after the last stored ({last})",
                                     stream=chunk.stream, expected_seq=expected)
            now = utc_now_iso()
            n = len(chunk.rows)
            if row is None:
                conn.execute("INSERT INTO ingest_streams (session_id, stream, next_seq, "
                             "last_item_id, items, updated_at) VALUES (?, ?, 1, ?, ?, ?)",
                             (session_id, chunk.stream, chunk.upto, n, now))
            else:
                cur = conn.execute(
                    "UPDATE ingest_streams SET next_seq = ?, last_item_id = ?, items = ?, "
                    "updated_at = ? WHERE session_id = ? AND stream = ? AND next_seq = ?",
                    (expected + 1, chunk.upto, items + n, now, session_id, chunk.stream,
                     expected))
                if cur.rowcount != 1:  # another request stored this seq meanwhile
                    raise IngestConflict(f"chunk {chunk.seq} of {chunk.stream} is being stored "
                                         "by another request", stream=chunk.stream,
                                         expected_seq=expected + 1)
            self._store_rows(conn, session_id, chunk, analysis_id)
            if state == "uploading":
                _revive(conn, session_id)
            conn.execute("UPDATE ingest_sessions SET updated_at = ? WHERE session_id = ?",
                         (now, session_id))
        return ChunkResult(chunk.stream, chunk.seq, False, expected + 1, chunk.upto, items + n)

    def _owned(self, conn: Any, session_id: str, patient_id: str) -> tuple[str, int | None]:
        row = conn.execute(
            "SELECT s.patient_id, i.state, i.analysis_id FROM ingest_sessions i "
            "JOIN sessions s ON s.id = i.session_id WHERE i.session_id = ?",
            (session_id,)).fetchone()
        if row is None or row[0] != patient_id:
            raise IngestNotFound(f"No uploaded session {session_id!r}: announce it first "
                                 f"(PUT /api/ingest/sessions/{session_id}).")
        return str(row[1]), (None if row[2] is None else int(row[2]))

    def _analysis(self, conn: Any, session_id: str, analysis_id: int | None) -> int:
        if analysis_id is not None:
            return analysis_id
        aid = sql.create_analysis(conn, session_id, *LIVE_ANALYSIS)
        conn.execute("UPDATE ingest_sessions SET analysis_id = ? WHERE session_id = ?",
                     (aid, session_id))
        return aid

    def _store_rows(self, conn: Any, session_id: str, chunk: Chunk,
                    analysis_id: int | None) -> None:
        kind = chunk.kind
        if kind == "samples":
            role = stream_role(chunk.stream) or ""
            row = conn.execute("SELECT id FROM sensors WHERE session_id = ? AND role = ?",
                               (session_id, role)).fetchone()
            sensor_id = int(row[0]) if row is not None else sql.insert_sensor(
                conn, session_id, SensorInfo(role))
            for r in chunk.rows:
                sql.insert_sample_block(conn, sensor_id, r)
        elif kind == "angles":
            aid = self._analysis(conn, session_id, analysis_id)
            for r in chunk.rows:
                sql.insert_angle_block(conn, aid, r)
        elif kind == "events":
            for t, type_, payload in chunk.rows:
                sql.insert_event(conn, session_id, t, type_, payload)
        elif kind == "calibrations":
            aid = self._analysis(conn, session_id, analysis_id)
            for t, payload in chunk.rows:
                sql.insert_calibration(conn, session_id, t, payload, aid)
        else:
            for t, at, kind_, payload in chunk.rows:
                sql.insert_report(conn, session_id, t, kind_, payload, reported_at=at)

    # --- the end ------------------------------------------------------------------------------
    def end(self, session_id: str, patient_id: str, status: str, ended_at: str | None,
            streams: Mapping[str, int]) -> IngestState:
        """The edge's session ended with `status` and it sent `streams` (stream -> chunks).
        IngestConflict when this side holds anything else (the edge goes on uploading)."""
        if status not in FINAL_STATUSES:
            raise IngestError(f"status must be one of {', '.join(FINAL_STATUSES)}")
        bad = [s for s in streams if not valid_stream(s)]
        if bad:
            raise IngestError(f"unknown streams: {', '.join(sorted(bad))[:200]}")
        with self.store._tx(f"ending upload {session_id}") as conn:
            self._owned(conn, session_id, patient_id)
            held = {r[0]: int(r[1]) for r in conn.execute(
                "SELECT stream, next_seq FROM ingest_streams WHERE session_id = ?",
                (session_id,)).fetchall()}
            sent = {k: int(v) for k, v in streams.items() if int(v) > 0}
            if held != sent:
                diff = sorted(k for k in set(held) | set(sent) if held.get(k, 0) != sent.get(k, 0))
                first = diff[0]
                raise IngestConflict(
                    "not every chunk is stored yet: " + ", ".join(
                        f"{k} has {held.get(k, 0)} of {sent.get(k, 0)}" for k in diff[:5]),
                    stream=first, expected_seq=held.get(first, 0))
            sql.finish_session(conn, session_id, status, ended_at, only_if_live=False)
            conn.execute("UPDATE ingest_sessions SET state = 'ended', edge_status = ?, "
                         "updated_at = ? WHERE session_id = ?",
                         (status, utc_now_iso(), session_id))
        self._let_go(session_id)
        return self.state(session_id, {patient_id})


def _revive(conn: Any, session_id: str) -> None:
    """An uploading session that a store opened elsewhere (or a restart) marked interrupted
    is live again: the edge is still sending it."""
    conn.execute("UPDATE sessions SET status = 'live', ended_at = NULL "
                 "WHERE id = ? AND status = 'interrupted'", (session_id,))


__all__ = ["ChunkResult", "FINAL_STATUSES", "Ingest", "IngestConflict", "IngestError",
           "IngestNotFound", "IngestState", "SessionMeta", "StreamState"]
