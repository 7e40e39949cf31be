"""The recordings store: one database, read and written here: SQLite (WAL) in a data directory
(the default) or at a `sqlite://` URL, or PostgreSQL at a `postgresql://` URL (database.py).

`RecordingStore(location)` creates the directory and database if needed (PostgreSQL: the
database must exist, its tables are created), upgrades the schema (migrations.py), and marks
`live` sessions whose writer is gone as `interrupted` (their data kept; locks.py says how a
writer is known to be alive on each backend). Live sessions are written by a `SessionWriter`
(`begin_session`); whole recordings (imports, re-analyses) are written here in one transaction
each, so a failure leaves nothing half-written. Reading returns exactly the batches that were
stored (see blocks.py).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from recordings import sql
from recordings.blocks import (
    MAX_BLOCK_SAMPLES,
    SAMPLE_BLOCK_COLUMNS,
    angle_columns,
    concat_batches,
    concat_columns,
    decode_angle_block,
    decode_sample_block,
    decode_sample_runs,
    encode_angle_block,
    encode_sample_block,
    group_batches,
)
from recordings.codec import DEFAULT_CODEC
from recordings.database import Database, StorageTarget, connect, driver_errors, parse_location
from recordings.errors import SessionNotFound, StorageError, StorageReadOnlyError, classify
from recordings.locks import claim_dead, writer_alive
from recordings.migrations import current_version, migrate
from recordings.models import (
    AnalysisRecord,
    EventRecord,
    ReportRecord,
    SensorInfo,
    SensorRecord,
    SessionInfo,
    SessionRecord,
    new_session_id,
    utc_now_iso,
)
from recordings.writer import CommitPolicy, SessionWriter, WriterStatus
from sensors.samples import SampleBatch

_PAGE_BLOCKS = 64
ALL: Any = object()  # `events(analysis_id=ALL)`: events of every analysis and of none
log = logging.getLogger(__name__)


class RecordingStore:
    """Sessions at a storage location: a data directory (default: $LUMBO_DB if set, else
    $LUMBO_DATA_DIR or ~/.local/share/lumbo), a `sqlite:///FILE` or a `postgresql://` URL.

    Thread-safe: one connection guarded by a lock for reads and whole-recording writes; each
    `SessionWriter` has its own connection in its own thread. `read_only=True` opens an existing
    database without writing anything (no migration, no interrupted marking). `location` is what
    messages name (a PostgreSQL URL without its password); `data_dir`, `db_path` and `lock_dir`
    are SQLite's (None on PostgreSQL).
    """

    def __init__(self, data_dir: Path | str | StorageTarget | None = None, *,
                 read_only: bool = False, synchronous: str = "NORMAL",
                 codec: str = DEFAULT_CODEC) -> None:
        try:
            self.target = parse_location(data_dir)
        except ValueError as exc:
            raise StorageError(f"Cannot open the recordings database: {exc}") from None
        self.data_dir = self.target.data_dir
        self.db_path = self.target.db_path
        self.lock_dir = self.target.lock_dir
        self.location = self.target.display
        self.read_only = read_only
        self.synchronous = synchronous
        self.codec = codec
        self._mutex = threading.RLock()
        if self.target.is_sqlite:
            assert self.data_dir is not None and self.db_path is not None
            if read_only:
                if not self.db_path.exists():
                    raise StorageError(f"No recordings database at {self.db_path}", self.db_path)
            else:
                _prepare_directory(self.data_dir)
        try:
            self._conn: Database = connect(self.target, read_only=read_only,
                                           synchronous=synchronous,
                                           application_name="lumbo store")
        except driver_errors() as exc:
            raise classify(exc, self.location, "opening the recordings database") from exc
        try:
            if not read_only:
                migrate(self._conn)
            elif not self.target.is_sqlite and current_version(self._conn) == 0:
                raise StorageError(f"No recordings database at {self.location} (no Lumbo tables "
                                   "yet)", self.location)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, driver_errors()):
                raise classify(exc, self.location, "upgrading the recordings database") from exc
            raise
        self.recovered: list[str] = []
        self.recovery_error: StorageError | None = None
        if not read_only:
            try:
                self.recovered = self.recover_interrupted()
            except StorageError as exc:  # e.g. disk full: still open the store for reading
                log.error("could not mark interrupted sessions: %s", exc)
                self.recovery_error = exc

    # --- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    def __enter__(self) -> RecordingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, doing: str) -> Iterator[Database]:
        """One write transaction; storage failures come out as `StorageError` subclasses."""
        if self.read_only:
            raise StorageReadOnlyError(f"The recordings store {self.location} was opened "
                                       f"read-only: cannot {doing}.", self.location)
        with self._mutex:
            try:
                self._conn.ensure_open()
                self._conn.begin()
            except driver_errors() as exc:
                raise classify(exc, self.location, doing) from exc
            try:
                yield self._conn
                self._conn.commit()
            except BaseException as exc:
                self._conn.rollback()
                if isinstance(exc, driver_errors()):
                    raise classify(exc, self.location, doing) from exc
                raise

    def _query(self, statement: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._mutex:
            try:
                self._conn.ensure_open()
                return self._conn.rows(statement, tuple(params))
            except driver_errors() as exc:
                raise classify(exc, self.location, "reading recordings") from exc

    def recover_interrupted(self) -> list[str]:
        """Mark `live` sessions without a living writer `interrupted`; returns their ids.

        Safe to call at any time and from several instances sharing one PostgreSQL database:
        a session whose writer is alive anywhere is left alone (locks.py). The end time is
        estimated from the last stored sample (wall clock of the start plus the span of host
        time recorded)."""
        ids = [r["id"] for r in self._query("SELECT id FROM sessions WHERE status = 'live'")]
        if self.target.is_sqlite:
            ids = [i for i in ids if not writer_alive(self.lock_dir, i)]
        if not ids:
            return []
        with self._tx("marking interrupted sessions") as conn:
            dead = ids if self.target.is_sqlite else claim_dead(conn, ids)
            for sid in dead:
                sql.finish_session(conn, sid, "interrupted", self._estimated_end(conn, sid))
        return dead

    def _estimated_end(self, conn: Database, session_id: str) -> str | None:
        row = conn.execute(
            "SELECT started_at, time_origin_s, (SELECT MAX(b.t_last) FROM sensors se "
            "JOIN sample_blocks b ON b.sensor_id = se.id WHERE se.session_id = s.id) "
            "FROM sessions s WHERE s.id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        started, origin, last = row
        if started is None or origin is None or last is None:
            return None
        try:
            return (datetime.fromisoformat(started) + timedelta(seconds=last - origin)).isoformat(
                timespec="milliseconds")
        except (ValueError, OverflowError):
            return None

    # --- writing ------------------------------------------------------------------------------
    def begin_session(self, info: SessionInfo = SessionInfo(), *,
                      policy: CommitPolicy = CommitPolicy(), max_buffered_samples: int = 60_000,
                      on_commit: Any = None, session_id: str | None = None) -> SessionWriter:
        """A live writer for a new session (returns at once; the row appears at first commit).
        `session_id`: the id to store it under (default: a new one, see `new_session_id`)."""
        if self.read_only:
            raise StorageReadOnlyError(f"The recordings store {self.location} was opened "
                                       "read-only: cannot record a session.", self.location)
        return SessionWriter(self.target, self.lock_dir, info, session_id=session_id,
                             policy=policy, max_buffered_samples=max_buffered_samples,
                             codec=self.codec, synchronous=self.synchronous, on_commit=on_commit)

    def import_recording(self, batches: Iterable[SampleBatch], info: SessionInfo = SessionInfo(),
                         *, session_id: str | None = None) -> str:
        """Store a whole recording as a `completed` session in ONE transaction; returns its id.

        `batches` may be a generator that validates as it goes (interchange.iter_interchange):
        if it raises, the transaction is rolled back and nothing of the session remains.
        """
        sid = session_id or new_session_id()
        if info.started_at is None:
            info = dataclasses.replace(info, started_at=utc_now_iso())
        with self._tx(f"importing session {sid}") as conn:
            sql.insert_session(conn, sid, info, status="live")
            ids = {s.role: sql.insert_sensor(conn, sid, s) for s in info.sensors}
            pending: dict[str, list[tuple[SampleBatch, int]]] = {}
            arrival = 0
            for b in batches:
                if len(b) == 0:
                    continue
                if b.sensor not in ids:
                    ids[b.sensor] = sql.insert_sensor(conn, sid, SensorInfo(b.sensor))
                pending.setdefault(b.sensor, []).append((b, arrival))
                arrival += 1
                if sum(len(x) for x, _ in pending[b.sensor]) >= MAX_BLOCK_SAMPLES:
                    self._flush_blocks(conn, ids, pending, b.sensor)
            for role in list(pending):
                self._flush_blocks(conn, ids, pending, role)
            sql.finish_session(conn, sid, "completed", _end_of(conn, sid))
        return sid

    def _flush_blocks(self, conn: Database, ids: dict[str, int],
                      pending: dict[str, list[tuple[SampleBatch, int]]], role: str) -> None:
        for group in group_batches(pending.pop(role, [])):
            sql.insert_sample_block(conn, ids[role], encode_sample_block(group, self.codec))

    def create_analysis(self, session_id: str, kind: str = "offline", description: str = "",
                        params: Mapping[str, Any] | None = None) -> int:
        with self._tx("creating an analysis") as conn:
            return sql.create_analysis(conn, self.session(session_id).id, kind, description,
                                       params)

    def write_angles(self, analysis_id: int, angles: Any) -> None:
        """Store angles (an `AngleBatch` or mapping of arrays) under an analysis, in one
        transaction."""
        cols = angle_columns(angles)
        n = int(cols["time_s"].shape[0])
        with self._tx("storing angles") as conn:
            for i in range(0, n, MAX_BLOCK_SAMPLES):
                part = {k: v[i:i + MAX_BLOCK_SAMPLES] for k, v in cols.items()}
                sql.insert_angle_block(conn, analysis_id, encode_angle_block(part, self.codec))

    def store_analysis(self, session_id: str, *, kind: str, description: str = "",
                       params: Mapping[str, Any] | None = None, angles: Any = None,
                       events: Iterable[tuple[float | None, str, Any]] = (),
                       calibrations: Iterable[tuple[float | None, Any]] = ()) -> int:
        """A whole analysis of a stored session (angles, events, calibrations) in ONE
        transaction, as a new analysis beside the session's others; returns its id.

        Re-analyses and replays land here: the session's samples, its live analysis and every
        earlier analysis stay exactly as they were (nothing is updated or deleted), and a failure
        leaves no trace of the new one."""
        sid = self.session(session_id).id
        cols = angle_columns(angles) if angles is not None else None
        with self._tx(f"storing an analysis of session {sid}") as conn:
            aid = sql.create_analysis(conn, sid, kind, description, params)
            if cols is not None:
                n = int(cols["time_s"].shape[0])
                for i in range(0, n, MAX_BLOCK_SAMPLES):
                    part = {k: v[i:i + MAX_BLOCK_SAMPLES] for k, v in cols.items()}
                    sql.insert_angle_block(conn, aid, encode_angle_block(part, self.codec))
            for time_s, type_, payload in events:
                sql.insert_event(conn, sid, time_s, type_, sql.to_json(payload), aid)
            for time_s, payload in calibrations:
                sql.insert_calibration(conn, sid, time_s, sql.to_json(payload), aid)
        return aid

    def add_event(self, session_id: str, time_s: float | None, type: str, payload: Any = None,
                  analysis_id: int | None = None) -> None:
        with self._tx("storing an event") as conn:
            sql.insert_event(conn, session_id, time_s, type, sql.to_json(payload), analysis_id)

    def add_calibration(self, session_id: str, time_s: float | None, calibration: Any,
                        analysis_id: int | None = None) -> None:
        with self._tx("storing a calibration") as conn:
            sql.insert_calibration(conn, session_id, time_s, sql.to_json(calibration),
                                   analysis_id)

    def add_report(self, session_id: str, kind: str, payload: Any,
                   time_s: float | None = None) -> None:
        """A patient report (pain NRS before/after, comments), e.g. kind="pain_nrs"."""
        with self._tx("storing a patient report") as conn:
            sql.insert_report(conn, self.session(session_id).id, time_s, kind,
                              sql.to_json(payload))

    def set_notes(self, session_id: str, notes: str) -> None:
        with self._tx("storing notes") as conn:
            conn.execute("UPDATE sessions SET notes = ? WHERE id = ?", (notes, session_id))

    def delete_session(self, session_id: str) -> None:
        with self._tx(f"deleting session {session_id}") as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # --- reading ------------------------------------------------------------------------------
    def sessions(self, *, limit: int | None = None) -> list[SessionRecord]:
        """All sessions, newest first, with per-sensor sample counts."""
        rows = self._query("SELECT * FROM sessions ORDER BY started_at DESC, id DESC"
                           + (f" LIMIT {int(limit)}" if limit else ""))
        sensors = self._sensors_by_session([r["id"] for r in rows])
        return [_session_record(r, sensors.get(r["id"], ())) for r in rows]

    def session(self, id_or_prefix: str) -> SessionRecord:
        """A session by id or unique id prefix (as `git` does); `SessionNotFound` otherwise."""
        key = id_or_prefix.strip()
        rows = self._query("SELECT * FROM sessions WHERE id = ?", (key,))
        if not rows and key:
            rows = self._query("SELECT * FROM sessions WHERE substr(id, 1, ?) = ? LIMIT 3",
                               (len(key), key))
        if not rows:
            raise SessionNotFound(f"No session {key!r} in {self.location} "
                                  "(`lumbo sessions` lists them).")
        if len(rows) > 1:
            raise SessionNotFound(f"Session prefix {key!r} is ambiguous: "
                                  + ", ".join(r["id"] for r in rows[:2])
                                  + (", ..." if len(rows) > 2 else ""))
        sensors = self._sensors_by_session([rows[0]["id"]])
        return _session_record(rows[0], sensors.get(rows[0]["id"], ()))

    def _sensors_by_session(self, ids: list[str]) -> dict[str, tuple[SensorRecord, ...]]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            "SELECT se.*, COALESCE(SUM(b.n), 0) AS samples, MIN(b.t_first) AS t_first, "
            "MAX(b.t_last) AS t_last FROM sensors se LEFT JOIN sample_blocks b "
            f"ON b.sensor_id = se.id WHERE se.session_id IN ({marks}) GROUP BY se.id "
            "ORDER BY se.id", ids)
        out: dict[str, list[SensorRecord]] = {}
        for r in rows:
            out.setdefault(r["session_id"], []).append(SensorRecord(
                r["id"], r["role"], r["family"], r["device_name"], r["address"],
                r["nominal_rate_hz"], int(r["samples"]), r["t_first"], r["t_last"]))
        return {k: tuple(v) for k, v in out.items()}

    def iter_sensor_batches(self, session_id: str, role: str, *, with_arrival: bool = False,
                            merged: bool = False) -> Iterator[Any]:
        """The stored batches of one sensor in order, read a page of blocks at a time.
        `merged=True`: the same samples in as few batches as possible (each stored block cut
        only at lost samples; `decode_sample_runs`), for whole-recording readers."""
        rec = self.session(session_id).sensor(role)
        if rec is None:
            return
        last = -1
        cols = ", ".join(SAMPLE_BLOCK_COLUMNS)
        while True:
            rows = self._query(f"SELECT id, {cols} FROM sample_blocks WHERE sensor_id = ? "
                               "AND id > ? ORDER BY id LIMIT ?", (rec.id, last, _PAGE_BLOCKS))
            if not rows:
                return
            for r in rows:
                last = r["id"]
                if merged:
                    yield from decode_sample_runs(role, r)
                    continue
                for batch, arrival in decode_sample_block(role, r):
                    yield (batch, arrival) if with_arrival else batch

    def iter_batches(self, session_id: str, *, order: str = "time") -> Iterator[SampleBatch]:
        """All sensors' batches, each sensor's in order, interleaved by first sample time
        (`order="time"`) or as they arrived live (`order="arrival"`)."""
        if order not in ("time", "arrival"):
            raise ValueError("order must be 'time' or 'arrival'")
        rec = self.session(session_id)
        streams = []
        for k, s in enumerate(rec.sensors):
            it = self.iter_sensor_batches(rec.id, s.role, with_arrival=True)
            if order == "time":
                streams.append(((float(b.time_s[0]), k, a), b) for b, a in it)
            else:
                streams.append(((a, k, 0.0), b) for b, a in it)
        for _, batch in heapq.merge(*streams, key=lambda x: x[0]):
            yield batch

    def read_batches(self, session_id: str, *, merged: bool = False
                     ) -> dict[str, list[SampleBatch]]:
        """Per sensor role, its stored batches in order (what `processing.offline` takes);
        `merged=True`: as few batches as the gaps allow (much faster for long sessions)."""
        rec = self.session(session_id)
        return {s.role: list(self.iter_sensor_batches(rec.id, s.role, merged=merged))
                for s in rec.sensors}

    def read_recording(self, session_id: str) -> dict[str, SampleBatch]:
        """Per sensor role, all its samples in one batch (gap flags other than the first are
        dropped: use `read_batches` when they matter)."""
        return {role: concat_batches(bs) for role, bs in
                self.read_batches(session_id, merged=True).items() if bs}

    def analyses(self, session_id: str) -> list[AnalysisRecord]:
        rows = self._query(
            "SELECT a.*, COALESCE((SELECT SUM(n) FROM angle_blocks ab WHERE ab.analysis_id = a.id),"
            " 0) AS samples FROM analyses a WHERE a.session_id = ? ORDER BY a.id",
            (self.session(session_id).id,))
        return [AnalysisRecord(r["id"], r["session_id"], r["created_at"], r["kind"],
                               r["description"], json.loads(r["params"] or "{}"),
                               int(r["samples"])) for r in rows]

    def read_angles(self, session_id: str, analysis_id: int | None = None
                    ) -> dict[str, np.ndarray]:
        """Angle columns of an analysis (default: the newest one that has angles); {} if none."""
        if analysis_id is None:
            with_angles = [a for a in self.analyses(session_id) if a.samples]
            if not with_angles:
                return {}
            analysis_id = with_angles[-1].id
        rows = self._query("SELECT n, codec, fields, data FROM angle_blocks WHERE analysis_id = ? "
                           "ORDER BY id", (analysis_id,))
        return concat_columns(decode_angle_block(r["n"], r["codec"], r["fields"], r["data"])
                              for r in rows)

    def events(self, session_id: str, type: str | None = None, *,
               analysis_id: int | None | object = ALL) -> list[EventRecord]:
        """Events in time order. `analysis_id`: ALL (default) every event; None only the
        session's own (recorded live, or imported); an id only that analysis' events."""
        sid = self.session(session_id).id
        q = "SELECT time_s, type, payload, analysis_id FROM events WHERE session_id = ?"
        params: list[Any] = [sid]
        if type is not None:
            q += " AND type = ?"
            params.append(type)
        if analysis_id is None:
            q += " AND analysis_id IS NULL"
        elif analysis_id is not ALL:
            q += " AND analysis_id = ?"
            params.append(int(analysis_id))  # type: ignore[call-overload]
        rows = self._query(q + " ORDER BY time_s IS NULL, time_s, id", params)
        return [EventRecord(r["time_s"], r["type"], json.loads(r["payload"]), r["analysis_id"])
                for r in rows]

    def calibrations(self, session_id: str) -> list[EventRecord]:
        rows = self._query("SELECT time_s, payload, analysis_id FROM calibrations "
                           "WHERE session_id = ? ORDER BY id", (self.session(session_id).id,))
        return [EventRecord(r["time_s"], "calibration", json.loads(r["payload"]),
                            r["analysis_id"]) for r in rows]

    def reports(self, session_id: str) -> list[ReportRecord]:
        rows = self._query("SELECT time_s, reported_at, kind, payload FROM patient_reports "
                           "WHERE session_id = ? ORDER BY id", (self.session(session_id).id,))
        return [ReportRecord(r["time_s"], r["reported_at"], r["kind"], json.loads(r["payload"]))
                for r in rows]

    def pragma(self, name: str) -> Any:
        """A PRAGMA's value on the store's connection (diagnostics: journal_mode, ...; SQLite)."""
        if not self.target.is_sqlite:
            raise ValueError(f"PRAGMA is SQLite's; {self.location} is PostgreSQL")
        with self._mutex:
            return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._conn.dialect.name

    def storage_bytes(self) -> int:
        """Bytes the database takes: the SQLite file after a WAL checkpoint, or the PostgreSQL
        database's size (pg_database_size: tables, TOAST, indexes and the system catalogs)."""
        with self._mutex:
            if self.target.is_sqlite:
                assert self.db_path is not None
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return self.db_path.stat().st_size
            return int(self._conn.execute(
                "SELECT pg_database_size(current_database())").fetchone()[0])


def _session_record(r: Any, sensors: tuple[SensorRecord, ...]) -> SessionRecord:
    return SessionRecord(r["id"], r["patient_id"], r["started_at"], r["ended_at"],
                         r["time_origin_s"], r["status"], r["source"], r["notes"], sensors)


def _end_of(conn: Database, session_id: str) -> str | None:
    row = conn.execute(
        "SELECT s.started_at, MIN(b.t_first), MAX(b.t_last) FROM sessions s "
        "JOIN sensors se ON se.session_id = s.id JOIN sample_blocks b ON b.sensor_id = se.id "
        "WHERE s.id = ? GROUP BY s.id", (session_id,)).fetchone()
    if row is None or row[1] is None:
        return None
    try:
        return (datetime.fromisoformat(row[0]) + timedelta(seconds=row[2] - row[1])).isoformat(
            timespec="milliseconds")
    except (ValueError, TypeError, OverflowError):
        return None


def _prepare_directory(data_dir: Path) -> None:
    """Create the data directory and prove it writable, with a message that says what to do."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{uuid.uuid4().hex}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        err = classify(exc, data_dir, "preparing the data directory")
        if isinstance(err, StorageReadOnlyError):
            raise StorageReadOnlyError(
                f"The data directory {data_dir} is not writable ({exc.strerror or exc}). "
                "Set LUMBO_DATA_DIR to a writable directory, or fix its permissions.",
                data_dir) from exc
        raise err from exc


__all__ = ["RecordingStore", "SessionWriter", "WriterStatus", "CommitPolicy", "concat_batches"]
