"""The live session writer: the event loop only enqueues; one thread does all database work.

Durability (what `kill -9` or a crash costs), with the default `CommitPolicy`:
- Everything appended is committed within `interval_s` (0.5 s) of its arrival, in one
  transaction per commit ("group commit"), as long as storage works. A commit that returned is in
  the WAL file in the OS page cache: a process crash (kill -9, segfault, OOM kill) loses only what
  was appended in the last ≤ 0.5 s plus the commit in flight, never a committed transaction.
- With `synchronous=NORMAL` (WAL) commits are not fsynced, so an OS crash or power cut can also
  lose committed transactions back to the last fsync; the writer runs a passive WAL checkpoint
  (which fsyncs the WAL) every `checkpoint_s` (10 s), bounding that loss to ~10 s. The database
  itself stays consistent either way. `synchronous="FULL"` fsyncs every commit (≤ 0.5 s lost on
  power loss too) at the price of an fsync per commit.
- When storage fails (disk full, read-only) `healthy` turns False and `last_error` says why; the
  data stays buffered (bounded, see PendingBuffer) and is retried every `retry_s` and on
  `flush()`; nothing is raised to the producer. A session whose writer dies stays `live` in the
  database and is marked `interrupted` by the next `RecordingStore` to open it (see locks.py).

On PostgreSQL the same holds with the server's durability instead of SQLite's: a commit that
returned is on the server's disk (synchronous_commit on, PostgreSQL's default), so neither a
crash of this process nor of its machine loses it; a crash loses at most the last ≤ 0.5 s not
yet committed. There is no checkpoint to run. A lost connection (server restart, network) is a
storage failure like a full disk: data stays buffered and the writer reconnects on retry,
re-taking its session's lock (and setting the session `live` again if another instance marked it
interrupted meanwhile).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recordings import sql
from recordings.blocks import (
    MAX_BLOCK_SAMPLES,
    angle_columns,
    concat_columns,
    encode_angle_block,
    encode_sample_block,
    group_batches,
)
from recordings.buffer import PendingBuffer, PendingRecord
from recordings.codec import DEFAULT_CODEC
from recordings.database import Database, StorageTarget, connect, sqlite_file_target
from recordings.errors import StorageError, classify
from recordings.locks import owner_tag, writer_lock
from recordings.models import SensorInfo, SessionInfo, new_session_id, utc_now_iso
from sensors.samples import SampleBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitPolicy:
    """When the writer thread commits (pure: the thread asks it, tests ask it directly)."""

    interval_s: float = 0.5
    """Commit pending data at most this long after the oldest of it arrived."""
    max_pending_samples: int = 2_000
    """Commit sooner when this many samples wait (bursts, fast imports)."""
    retry_s: float = 2.0
    """After a failure, retry this often (`flush()` retries at once)."""
    checkpoint_s: float = 10.0
    """Passive WAL checkpoint (fsync) at least this often while writing."""

    def due(self, now_s: float, pending_since_s: float | None, pending_samples: int) -> bool:
        if pending_since_s is None:
            return False
        return now_s - pending_since_s >= self.interval_s or pending_samples >= \
            self.max_pending_samples

    def wait_s(self, now_s: float, pending_since_s: float | None, retry_at_s: float | None
               ) -> float | None:
        """How long the thread may sleep waiting for new items (None: until one comes)."""
        if pending_since_s is None:
            return None
        wake = pending_since_s + self.interval_s
        if retry_at_s is not None:
            wake = max(wake, retry_at_s)
        return max(0.0, wake - now_s)


@dataclass(frozen=True)
class WriterStatus:
    """A snapshot for the live display: is the recording safe, and if not why."""

    session_id: str
    healthy: bool = True
    last_error: str | None = None
    error_kind: str | None = None  # "full" | "read_only" | "schema" | "error"
    committed_samples: dict[str, int] = field(default_factory=dict)
    committed_angle_frames: int = 0
    commits: int = 0
    pending_samples: int = 0
    dropped_samples: int = 0
    closed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "healthy": self.healthy,
                "last_error": self.last_error, "error_kind": self.error_kind,
                "committed_samples": dict(self.committed_samples),
                "committed_angle_frames": self.committed_angle_frames, "commits": self.commits,
                "pending_samples": self.pending_samples,
                "dropped_samples": self.dropped_samples, "closed": self.closed}


class SessionWriter:
    """Records one session into a `RecordingStore`'s database from any thread or the event loop.

    `append_*` never block on I/O and never raise (after `close()` they are ignored); a dedicated
    thread buffers, group-commits, retries. `flush()` / `close()` block the caller (use
    `AsyncSessionWriter` from asyncio). The session row is created by the first commit.
    `db_path`: the SQLite file, or the store's `StorageTarget` (any backend); `lock_dir`: where
    SQLite writers keep their lock files (None: `locks/` beside the file; unused on PostgreSQL).
    """

    def __init__(self, db_path: Path | str | StorageTarget, lock_dir: Path | str | None,
                 info: SessionInfo, *,
                 session_id: str | None = None, policy: CommitPolicy = CommitPolicy(),
                 max_buffered_samples: int = 60_000, codec: str = DEFAULT_CODEC,
                 synchronous: str = "NORMAL",
                 on_commit: Callable[[WriterStatus], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(db_path, StorageTarget):
            self.target = db_path
        else:  # a SQLite file
            self.target = sqlite_file_target(Path(db_path))
        self.db_path = self.target.db_path
        self.location = self.target.display
        self.session_id = session_id or new_session_id()
        self.info = info if info.started_at else _with_start(info)
        self.policy = policy
        self.codec = codec
        self.synchronous = synchronous
        self.on_commit = on_commit
        self._clock = clock
        if lock_dir is not None and self.target.is_sqlite:
            self.target = dataclasses.replace(self.target, lock_dir=Path(lock_dir))
        self._lock = writer_lock(self.target, self.session_id)
        self._relock = False  # the lock was lost with the connection: revive the session
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._buf = PendingBuffer(max_samples=max_buffered_samples,
                                  max_angle_frames=max_buffered_samples)
        self._arrival = itertools.count()
        self._closed = False
        # thread-owned state
        self._conn: Database | None = None
        self._header_done = False
        self._sensor_ids: dict[str, int] = {}
        self._known_sensors: dict[str, SensorInfo] = {s.role: s for s in info.sensors}
        self._live_analysis_id: int | None = None
        self._committed: dict[str, int] = {}
        self._committed_angles = 0
        self._commits = 0
        self._retry_at: float | None = None
        self._last_checkpoint = clock()
        self._error: StorageError | None = None
        self._status = WriterStatus(self.session_id)
        self._thread = threading.Thread(target=self._run, name=f"lumbo-writer-{self.session_id}",
                                        daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        """A normal interpreter exit without close(): store what is buffered, say interrupted."""
        if not self._closed:
            try:
                self.close("interrupted", timeout=5.0)
            except concurrent.futures.TimeoutError:
                pass

    # --- producer side (any thread, non-blocking) ---------------------------------------------
    def append_batch(self, batch: SampleBatch) -> None:
        """Queue raw samples as received (copied, so the caller may reuse its arrays)."""
        if self._closed or len(batch) == 0:
            return
        self._q.put(("batch", _copy_batch(batch)))

    def append_angles(self, angles: Any) -> None:
        """Queue derived angles (an `AngleBatch` or mapping of arrays) of the live analysis."""
        if self._closed:
            return
        try:
            cols = {k: np.array(v, copy=True) for k, v in angle_columns(angles).items()}
        except (TypeError, ValueError) as exc:
            log.warning("angles not recorded: %s", exc)
            return
        if cols["time_s"].shape[0]:
            self._q.put(("angles", cols))

    def append_event(self, time_s: float | None, type: str, payload: Any = None) -> None:
        """Queue an event: repetition, feedback, level change, marker, ... (payload as JSON)."""
        self._record("event", time_s, type, payload)

    def append_calibration(self, time_s: float | None, calibration: Any) -> None:
        """Queue the calibration of the live analysis (a dict, or an object with `to_dict`)."""
        self._record("calibration", time_s, "calibration", calibration)

    def append_report(self, kind: str, payload: Any, time_s: float | None = None) -> None:
        """Queue a patient report (e.g. kind "pain_nrs", payload {"nrs": 4})."""
        self._record("report", time_s, kind, payload)

    def _record(self, table: str, time_s: float | None, kind: str, payload: Any) -> None:
        if self._closed:
            return
        try:
            t = None if time_s is None else float(time_s)
        except (TypeError, ValueError):
            log.warning("%s %r: time %r is not a number; stored without time", table, kind,
                        time_s)
            t = None
        self._q.put(("record", PendingRecord(table, t, str(kind), sql.to_json(payload))))

    # --- status -------------------------------------------------------------------------------
    @property
    def status(self) -> WriterStatus:
        return self._status

    @property
    def healthy(self) -> bool:
        return self._status.healthy

    @property
    def last_error(self) -> StorageError | None:
        return self._error

    # --- control ------------------------------------------------------------------------------
    def flush_future(self) -> concurrent.futures.Future[bool]:
        """Commit everything queued so far now (retrying after a failure); the future says
        whether all of it is stored."""
        fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
        if not self._thread.is_alive():
            fut.set_result(False)
        else:
            self._q.put(("flush", fut))
        return fut

    def flush(self, timeout: float | None = None) -> bool:
        return self.flush_future().result(timeout)

    def close_future(self, status: str = "completed") -> concurrent.futures.Future[bool]:
        """Commit what is left, set the session's status and end time, stop the thread."""
        fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
        if self._closed or not self._thread.is_alive():
            self._closed = True
            fut.set_result(self._status.healthy and self._buf.empty)
            return fut
        self._closed = True
        self._q.put(("close", status, fut))
        return fut

    def close(self, status: str = "completed", timeout: float | None = None) -> bool:
        return self.close_future(status).result(timeout)

    def call_in_writer_thread(self, fn: Callable[[Database], Any]
                              ) -> concurrent.futures.Future[Any]:
        """Run `fn(connection)` on the writer's own connection (diagnostics and tests, e.g. a
        `PRAGMA max_page_count` to simulate a full disk)."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._q.put(("call", fn, fut))
        return fut

    # --- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        waiters: list[concurrent.futures.Future[bool]] = []
        closing: tuple[str, concurrent.futures.Future[bool]] | None = None
        result = False
        try:
            while closing is None:
                timeout = self.policy.wait_s(self._clock(), self._buf.since_s, self._retry_at)
                try:
                    closing = self._handle(self._q.get(timeout=timeout), waiters)
                except queue.Empty:
                    pass
                # take what else is queued, but no more than one commit's worth: a producer
                # running ahead must not push a healthy writer's buffer past its bound
                limit = min(self.policy.max_pending_samples, self._buf.max_samples)
                while closing is None and self._buf.samples < limit:
                    try:
                        closing = self._handle(self._q.get_nowait(), waiters)
                    except queue.Empty:
                        break
                now = self._clock()
                forced = bool(waiters) or closing is not None
                retry_ok = self._retry_at is None or now >= self._retry_at
                due = self.policy.due(now, self._buf.since_s, self._buf.samples) or \
                    self._buf.samples >= limit
                if not self._buf.empty and (forced or (retry_ok and due)):
                    self._commit(finish=None)
                self._maybe_checkpoint()
                ok = self._status.healthy and self._buf.empty
                for w in waiters:
                    w.set_result(ok)
                waiters.clear()
            result = self._commit(finish=closing[0]) and self._buf.empty
        except BaseException as exc:  # a bug, not storage trouble: report it, never hang
            log.exception("session writer thread failed")
            self._set_error(classify(exc, self.location, "recording"))
        finally:
            self._closed = True
            atexit.unregister(self._close_at_exit)
            self._lock.release(delete=True)
            if self._conn is not None:
                self._conn.close()
            self._publish(closed=True)
            for w in waiters:
                if not w.done():
                    w.set_result(False)
            if closing is not None:
                closing[1].set_result(result)
            self._drain_after_close()

    def _drain_after_close(self) -> None:
        """Answer futures queued after the thread decided to stop (flush or close raced it)."""
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            fut = item[-1]
            if not isinstance(fut, concurrent.futures.Future) or fut.done():
                continue
            if item[0] == "call":
                fut.set_exception(StorageError("the session writer is closed", self.location))
            else:
                fut.set_result(False)

    def _handle(self, item: Any, waiters: list[concurrent.futures.Future[bool]]
                ) -> tuple[str, concurrent.futures.Future[bool]] | None:
        kind = item[0]
        now = self._clock()
        if kind == "batch":
            self._buf.add_batch(item[1], next(self._arrival), now)
        elif kind == "angles":
            self._buf.add_angles(item[1], now)
        elif kind == "record":
            self._buf.add_record(item[1], now)
        elif kind == "flush":
            waiters.append(item[1])
        elif kind == "call":
            fut = item[2]
            try:
                fut.set_result(item[1](self._connection()))
            except BaseException as exc:
                fut.set_exception(exc)
        elif kind == "close":
            return item[1], item[2]
        return None

    def _connection(self) -> Database:
        if self._conn is not None and self._conn.broken:  # PostgreSQL: the connection is lost
            self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = connect(self.target, synchronous=self.synchronous, keepalive=True,
                                 application_name=f"lumbo writer {self.session_id}")
        return self._conn

    def _commit(self, finish: str | None) -> bool:
        """One transaction with everything pending (and the session's end if `finish`)."""
        batches, angles, records = self._buf.take()
        try:
            conn = self._connection()
            if not self._lock.held:  # first commit, or PostgreSQL dropped it with a connection
                if not self._lock.acquire(conn):
                    raise StorageError(f"session {self.session_id} is locked by another "
                                       "process", self.location)
                self._relock = self._header_done
            conn.begin()
            try:
                if self._relock:
                    sql.revive_session(conn, self.session_id)
                new_ids, analysis_id = self._write(conn, batches, angles, records)
                if finish is not None:
                    sql.finish_session(conn, self.session_id, finish, utc_now_iso())
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        except Exception as exc:  # storage trouble: keep the data, report, retry later
            self._set_error(classify(exc, self.location, f"recording session {self.session_id}"))
            self._retry_at = self._clock() + self.policy.retry_s
            return False
        self._header_done = True
        self._relock = False
        self._sensor_ids.update(new_ids)
        if analysis_id is not None:
            self._live_analysis_id = analysis_id
        for b, _ in batches:
            self._committed[b.sensor] = self._committed.get(b.sensor, 0) + len(b)
        self._committed_angles += sum(int(c["time_s"].shape[0]) for c in angles)
        self._commits += 1
        self._buf.clear()
        self._error = None
        self._retry_at = None
        status = self._publish()
        if self.on_commit is not None:
            try:
                self.on_commit(status)
            except Exception:
                log.exception("on_commit callback failed")
        return True

    def _write(self, conn: Database, batches: list[tuple[SampleBatch, int]],
               angles: list[dict[str, np.ndarray]], records: list[PendingRecord]
               ) -> tuple[dict[str, int], int | None]:
        new_ids: dict[str, int] = {}
        if not self._header_done:
            sql.insert_session(conn, self.session_id, self.info, status="live", owner=owner_tag())
            for s in self._known_sensors.values():
                new_ids[s.role] = sql.insert_sensor(conn, self.session_id, s)
        by_role: dict[str, list[tuple[SampleBatch, int]]] = {}
        for item in batches:
            by_role.setdefault(item[0].sensor, []).append(item)
        for role, items in by_role.items():
            sid = self._sensor_ids.get(role) or new_ids.get(role)
            if sid is None:
                sid = new_ids[role] = sql.insert_sensor(conn, self.session_id, SensorInfo(role))
            for group in group_batches(items):
                sql.insert_sample_block(conn, sid, encode_sample_block(group, self.codec))
        analysis_id = self._live_analysis_id
        created = None
        if angles or any(r.table == "calibration" for r in records):
            if analysis_id is None:
                analysis_id = created = sql.create_analysis(
                    conn, self.session_id, "live", "computed during the session")
        if angles:
            cols = concat_columns(angles)
            n = int(cols["time_s"].shape[0])
            for i in range(0, n, MAX_BLOCK_SAMPLES):
                part = {k: v[i:i + MAX_BLOCK_SAMPLES] for k, v in cols.items()}
                sql.insert_angle_block(conn, analysis_id, encode_angle_block(part, self.codec))
        for r in records:
            if r.table == "event":
                sql.insert_event(conn, self.session_id, r.time_s, r.kind, r.payload_json)
            elif r.table == "calibration":
                sql.insert_calibration(conn, self.session_id, r.time_s, r.payload_json,
                                       analysis_id)
            else:
                sql.insert_report(conn, self.session_id, r.time_s, r.kind, r.payload_json)
        return new_ids, created

    def _maybe_checkpoint(self) -> None:
        """SQLite: a passive WAL checkpoint now and then (see the module docstring)."""
        now = self._clock()
        if self._conn is None or not self._status.healthy or not self.target.is_sqlite or \
                now - self._last_checkpoint < self.policy.checkpoint_s:
            return
        self._last_checkpoint = now
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except self._conn.Error as exc:  # not data loss: the WAL still holds everything
            log.warning("WAL checkpoint failed: %s", exc)

    def _set_error(self, err: StorageError) -> None:
        if self._error is None or str(self._error) != str(err):
            log.error("%s", err)
        self._error = err
        self._publish()

    def _publish(self, closed: bool = False) -> WriterStatus:
        err = self._error
        self._status = WriterStatus(
            session_id=self.session_id, healthy=err is None,
            last_error=None if err is None else str(err),
            error_kind=None if err is None else err.kind,
            committed_samples=dict(self._committed),
            committed_angle_frames=self._committed_angles, commits=self._commits,
            pending_samples=self._buf.samples, dropped_samples=self._buf.dropped_samples,
            closed=closed or self._status.closed)
        return self._status


def _copy_batch(b: SampleBatch) -> SampleBatch:
    def c(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.array(a, copy=True)

    return SampleBatch(b.sensor, np.array(b.time_s, copy=True), np.array(b.acc, copy=True),
                       np.array(b.gyr, copy=True), c(b.mag), c(b.device_time_s), c(b.counter),
                       b.gap_before)


def _with_start(info: SessionInfo) -> SessionInfo:
    """A session starting now: wall clock now, host time origin now unless given."""
    import dataclasses

    origin = info.time_origin_s if info.time_origin_s is not None else time.monotonic()
    return dataclasses.replace(info, started_at=utc_now_iso(), time_origin_s=origin)
