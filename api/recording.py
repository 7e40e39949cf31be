"""Recording the live service's sessions: the glue between `api.live` and `recordings/`.

- `Recordings`: the service's `RecordingStore` at `settings.database()` (`--db`/$LUMBO_DB, else
  the data directory $LUMBO_DATA_DIR), opened once at start-up (which also marks sessions of a
  crashed run `interrupted`). A store that cannot be opened (read-only or full disk, database
  server unreachable) does not stop the service: sessions run, their storage health says why
  they are not recorded, and every new session tries again. On a shared PostgreSQL database the
  other instances may crash too, so a background thread repeats that marking every
  `RECOVERY_INTERVAL_S` (it never marks a session whose writer is alive on any instance).
- `SessionRecorder`: one per live session. `LiveSession` hands it every batch as received and
  the angles computed from it (`on_batch`), every feedback event (`on_event`) and every change
  of state or target (`on_change`); it forwards them to an `AsyncSessionWriter`, whose thread
  does all the disk work, so nothing here blocks the event loop. It also records the
  calibration once found, a `session_started` event with the request, `state` and
  `target_changed` events, patient reports, and `session_ended` with the set summaries.
  Durability: the writer group-commits every `0.5 s / speed` of wall time (speed of a simulated
  source, else 1), so a crash loses at most about the last 0.5 s of stream time.
- `AnalysisRecorder`: a replayed session (`source: replay`) records no samples again; its
  results (angles, events, calibration) are stored as a NEW analysis of the original session
  when the replay ends, in one transaction, beside the original's own.
- `make_replay_source`: the `replay` source factory (api.sources).
- `replay_analysis` / `reanalyze`: re-analysis of a stored session for `lumbo replay --analyze`
  (the live pipeline and feedback engine over a `ReplaySource`) and `lumbo reanalyze` (the
  offline analysis), each stored as a new analysis.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api import schema
from recordings import (
    AsyncSessionWriter,
    CommitPolicy,
    RecordingStore,
    ReplaySource,
    SensorInfo,
    SessionInfo,
    StorageError,
)
from recordings.database import is_url, redact
from recordings.errors import SessionNotFound

if TYPE_CHECKING:
    from api.live import LiveSession

log = logging.getLogger(__name__)

TERMINAL_STATES = ("stopped", "ended", "failed")
BASE_COMMIT_INTERVAL_S = 0.5
MAX_BUFFERED_SAMPLES = 60_000  # 5 min of 2 × 100 Hz kept in memory while storage fails
RECOVERY_INTERVAL_S = 60.0  # shared database: how often other instances' dead sessions are marked


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Recordings:
    """The live service's recordings (see the module docstring). `data_dir`: a data directory or
    a storage URL (recordings/database.py); None: off."""

    def __init__(self, data_dir: Path | str | None, *, enabled: bool = True,
                 max_buffered_samples: int = MAX_BUFFERED_SAMPLES,
                 recovery_interval_s: float = RECOVERY_INTERVAL_S) -> None:
        self.data_dir: Path | str | None = (
            None if data_dir is None else data_dir if is_url(data_dir)
            else Path(data_dir).expanduser())
        self.location = "" if self.data_dir is None else _display(self.data_dir)
        self.enabled = enabled and self.data_dir is not None
        self.max_buffered_samples = max_buffered_samples
        self.recovery_interval_s = recovery_interval_s
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()
        self.store: RecordingStore | None = None
        self.error: StorageError | None = None
        self.recovered: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: RecordingStore | None = None
        self.trusted_replay: str | None = None  # the replay `lumbo replay` started the service for
        if self.enabled:
            self.open()

    def open(self) -> RecordingStore | None:
        """The writable store, (re)opened if needed; None (and `error`) when it cannot be."""
        if not self.enabled:
            return None
        if self.store is None:
            try:
                self.store = RecordingStore(self.data_dir)
            except StorageError as exc:
                log.error("recordings are not stored: %s", exc)
                self.error = exc
                return None
            self.error = None
            self.recovered = list(self.store.recovered)
            if self.recovered:
                log.warning("sessions of an earlier run marked interrupted: %s",
                            ", ".join(self.recovered))
            if self.store.dialect != "sqlite" and self._sweeper is None:
                self._sweeper = threading.Thread(target=self._sweep, args=(self.store,),
                                                 name="lumbo-recovery", daemon=True)
                self._sweeper.start()
        return self.store

    def _sweep(self, store: RecordingStore) -> None:
        """Shared database: mark the sessions of instances that died since (see locks.py)."""
        while not self._stop_sweeping.wait(self.recovery_interval_s):
            try:
                found = store.recover_interrupted()
            except StorageError as exc:
                log.warning("could not look for interrupted sessions: %s", exc)
                continue
            except Exception:  # noqa: BLE001 - the store was closed under us: stop
                return
            if found:
                self.recovered += found
                log.warning("sessions of a stopped instance marked interrupted: %s",
                            ", ".join(found))

    def reader(self) -> RecordingStore | None:
        """A store to read from: the writable one, else a read-only view (None: no database)."""
        if self.store is not None or not self.enabled:
            return self.store
        if self.open() is not None:
            return self.store
        if self._reader is None:
            try:
                self._reader = RecordingStore(self.data_dir, read_only=True)
            except StorageError:
                return None
        return self._reader

    def check_start(self, req: schema.StartSessionRequest, patient_id: str | None) -> None:
        """Before a session starts: a replay must be of a recording of the same patient (or of
        none), so one patient's data never streams to another's pages. SessionNotFound: 404."""
        if req.source != "replay" or patient_id is None or req.session_id is None:
            return
        store = self.reader()
        if store is None:
            return  # make_replay_source says why
        rec = store.session(req.session_id)
        if rec.id == self.trusted_replay or req.session_id == self.trusted_replay:
            return
        if rec.patient_id is not None and rec.patient_id != patient_id:
            raise SessionNotFound(f"No session {req.session_id!r} of this patient to replay.")

    def recorder_for(self, session: LiveSession, req: schema.StartSessionRequest) -> Any:
        """The recorder of a new live session (None when recording is off)."""
        if not self.enabled:
            return None
        if req.source == "replay":
            return AnalysisRecorder(self, session, req)
        return SessionRecorder(self, session, req)

    def track(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_closed(self) -> None:
        """Wait until every finished session's recording is closed (stored or its loss said)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.wait_closed()
        self._stop_sweeping.set()
        if self._sweeper is not None:
            await asyncio.to_thread(self._sweeper.join, 30)
            self._sweeper = None
        for s in (self.store, self._reader):
            if s is not None:
                with contextlib.suppress(Exception):
                    s.close()
        self.store = self._reader = None


def _display(location: Path | str) -> str:
    return redact(location) if isinstance(location, str) else str(location)


class _Observer:
    """What both recorders watch: calibration found, state and target changes, the end."""

    def __init__(self, owner: Recordings, session: LiveSession,
                 req: schema.StartSessionRequest) -> None:
        self.owner = owner
        self.session_id = session.session_id
        self.request = req.model_dump(mode="json", exclude_unset=True)
        self.last_t: float | None = None
        self._calibrated = False
        self._last_state: tuple[str, str] | None = None
        self._last_target: Any = None
        self._closing: asyncio.Task[Any] | None = None
        self.error: str | None = None
        self.error_kind: str | None = None

    # LiveSession hooks ----------------------------------------------------------------------
    def on_batch(self, session: LiveSession, batch: Any, angles: Any) -> None:
        if len(batch):
            t = float(batch.time_s[-1])
            self.last_t = t if self.last_t is None else max(self.last_t, t)
        self._store_batch(session, batch)
        if angles is not None and len(angles):
            self._store_angles(angles)
        cal = getattr(session.pipeline, "calibration", None)
        if not self._calibrated and cal is not None:
            self._calibrated = True
            payload = cal.to_dict() if hasattr(cal, "to_dict") else cal
            self._store_calibration(self.last_t, payload)
            self._store_event(self.last_t, "calibration_done", {
                "comfortable_flexion_deg": _finite(getattr(cal, "comfortable_flexion_deg", None)),
                "neutral_s": getattr(cal, "neutral_s", None), "bend_s": getattr(cal, "bend_s", None)})

    def on_event(self, session: LiveSession, event: dict[str, Any]) -> None:
        self._store_event(event.get("time_s", self.last_t), str(event.get("type", "event")), event)

    def on_program_events(self, session: LiveSession, events: list[Any]) -> None:
        """Graded practice's events (api/practice.py), as the frame carries them."""
        for ev in events:
            d = ev.model_dump(mode="json") if hasattr(ev, "model_dump") else dict(ev)
            self._store_event(d.get("time_s", self.last_t), str(d.get("type", "program")), d)

    def on_change(self, session: LiveSession) -> None:
        state = (session.state, session.message)
        if state != self._last_state:
            self._last_state = state
            self._store_event(self.last_t, "state", {"state": session.state,
                                                      "message": session.message,
                                                      "error": session.error})
        target = _target_of(session)
        if target != self._last_target:
            self._last_target = target
            if target is not None:
                self._store_event(self.last_t, "target_changed", target)
        if session.state in TERMINAL_STATES and self._closing is None:
            self._closing = self._schedule_close(session)

    def _schedule_close(self, session: LiveSession) -> asyncio.Task[Any] | None:
        ended = {"state": session.state, "error": session.error, "frames": session.seq,
                 "summary": session.summary(), "sets": session.completed_sets}
        self._store_event(self.last_t, "session_ended", ended)
        if self.owner is None:  # the command line's replay: it saves by itself
            return None
        try:
            return self.owner.track(self._close(session.state),
                                    name=f"lumbo-recording-close-{self.session_id}")
        except RuntimeError:  # no running loop (a test driving process_batch by hand)
            return None

    def _received(self) -> float | None:
        return None if self.last_t is None else round(self.last_t, 4)

    # to implement ---------------------------------------------------------------------------
    def _store_batch(self, session: LiveSession, batch: Any) -> None: ...
    def _store_angles(self, angles: Any) -> None: ...
    def _store_calibration(self, t: float | None, payload: Any) -> None: ...
    def _store_event(self, t: float | None, type_: str, payload: Any) -> None: ...
    async def _close(self, state: str) -> None: ...
    def health(self) -> schema.StorageHealth: ...


def _target_of(session: LiveSession) -> dict[str, Any] | None:
    spec = session.target_spec
    if spec is None:
        return None
    return {"target_deg": _finite(getattr(spec, "target_deg", None)),
            "tolerance_deg": _finite(getattr(spec, "tolerance_deg", None)),
            "hold_s": _finite(getattr(spec, "hold_s", None)), "level": session.level,
            "source": "explicit" if session.level is None else "level"}


class SessionRecorder(_Observer):
    """Stores one live session (see the module docstring)."""

    def __init__(self, owner: Recordings, session: LiveSession,
                 req: schema.StartSessionRequest) -> None:
        super().__init__(owner, session, req)
        speed = float(req.speed) if req.source == "simulated" and req.realtime else 1.0
        self.speed = speed
        self.policy = CommitPolicy(
            interval_s=max(0.05, min(BASE_COMMIT_INTERVAL_S, BASE_COMMIT_INTERVAL_S / speed)))
        self.writer: AsyncSessionWriter | None = None
        self._begun = False
        self._pending_reports: list[tuple[str, Any, float | None]] = []
        self._appended: dict[str, collections.deque[tuple[int, float]]] = {}
        self._count: dict[str, int] = {}
        self._stored_t: dict[str, float] = {}
        self._closed = False
        if owner.open() is None:
            self._fail_open(owner.error)

    def _fail_open(self, exc: StorageError | None) -> None:
        self.error = (f"This session is NOT being recorded: {exc}" if exc is not None else
                      "This session is NOT being recorded: the recordings store is unavailable.")
        self.error_kind = getattr(exc, "kind", "error")

    def _begin(self, session: LiveSession) -> None:
        self._begun = True
        store = self.owner.open()
        if store is None:
            self._fail_open(self.owner.error)
            return
        try:
            health = session.source.health()
        except Exception:  # pragma: no cover - health must never break recording
            health = {}
        sensors = tuple(SensorInfo.from_health(h, family=str((h.extra or {}).get("family", "")))
                        for _, h in sorted(health.items()))
        origin = getattr(session.source, "time_origin_s", None)
        notes = ""
        if session.source_name == "simulated":
            r = self.request
            notes = (f"simulated patient: script {r.get('script', 'demo')}, seed "
                     f"{r.get('seed', 0)}, speed {r.get('speed', 1.0)}")
        info = SessionInfo(source=session.source_name, sensors=sensors, notes=notes,
                           patient_id=getattr(session, "patient_id", None),
                           time_origin_s=origin if isinstance(origin, (int, float)) else None)
        try:
            writer = store.begin_session(info, session_id=self.session_id, policy=self.policy,
                                         max_buffered_samples=self.owner.max_buffered_samples)
        except StorageError as exc:
            self._fail_open(exc)
            return
        self.writer = AsyncSessionWriter(writer)
        self.writer.append_event(self.last_t, "session_started",
                                 {"request": self.request, "level": session.level,
                                  "reps_per_set": session.reps_per_set})
        for kind, payload, t in self._pending_reports:
            self.writer.append_report(kind, payload, t)
        self._pending_reports.clear()

    # storing --------------------------------------------------------------------------------
    def _store_batch(self, session: LiveSession, batch: Any) -> None:
        if not self._begun:
            self._begin(session)
        if self.writer is None or not len(batch):
            return
        self.writer.append_batch(batch)
        role = batch.sensor
        n = self._count.get(role, 0) + len(batch)
        self._count[role] = n
        self._appended.setdefault(role, collections.deque()).append((n, float(batch.time_s[-1])))

    def _store_angles(self, angles: Any) -> None:
        if self.writer is not None:
            self.writer.append_angles(angles)

    def _store_calibration(self, t: float | None, payload: Any) -> None:
        if self.writer is not None:
            self.writer.append_calibration(t, payload)

    def _store_event(self, t: float | None, type_: str, payload: Any) -> None:
        if self.writer is not None:
            self.writer.append_event(t, type_, payload)

    def add_report(self, kind: str, payload: Any) -> bool:
        """A patient report at the current stream time; False once the recording is closed."""
        if self._closed:
            return False
        if self.writer is None:
            if self._begun:  # could not record at all
                return False
            self._pending_reports.append((kind, payload, self.last_t))
            return True
        self.writer.append_report(kind, payload, self.last_t)
        return True

    async def _close(self, state: str) -> None:
        if self.writer is None:
            self._closed = True
            return
        ok = await self.writer.close("interrupted" if state == "failed" else "completed")
        self._closed = True
        if not ok:
            log.error("session %s: recording closed with data not stored: %s", self.session_id,
                      self.writer.status.last_error)

    async def flush(self) -> bool:
        """Commit everything appended so far (tests, and before a planned shutdown)."""
        return True if self.writer is None else await self.writer.flush()

    # health ---------------------------------------------------------------------------------
    def _stored_until(self, committed: dict[str, int]) -> float | None:
        for role, q in self._appended.items():
            done = committed.get(role, 0)
            while q and q[0][0] <= done:
                self._stored_t[role] = q.popleft()[1]
        if not self._appended or any(r not in self._stored_t for r in self._appended):
            return None
        return round(min(self._stored_t[r] for r in self._appended), 4)

    def health(self) -> schema.StorageHealth:
        if self.writer is None:
            return schema.StorageHealth.model_construct(
                recording=False, recording_id=None, healthy=self.error is None,
                error_kind=self.error_kind, last_error=self.error, closed=self._closed,
                received_until_s=self._received())
        st = self.writer.status
        return schema.StorageHealth.model_construct(
            recording=True, recording_id=self.session_id, healthy=st.healthy,
            error_kind=st.error_kind, last_error=st.last_error,
            stored_samples=sum(st.committed_samples.values()),
            pending_samples=st.pending_samples, dropped_samples=st.dropped_samples,
            stored_until_s=self._stored_until(st.committed_samples), closed=st.closed,
            received_until_s=self._received())


class AnalysisRecorder(_Observer):
    """A replay's results, stored as a new analysis of the original session when it ends."""

    kind = "replay"

    def __init__(self, owner: Recordings | None, session: LiveSession,
                 req: schema.StartSessionRequest, *, original: str | None = None,
                 store: RecordingStore | None = None, description: str = "") -> None:
        super().__init__(owner, session, req)  # type: ignore[arg-type]
        src_session = getattr(getattr(session, "source", None), "session", None)
        self.original = original or getattr(src_session, "id", None) or req.session_id
        self._store = store
        self.description = description or "the live pipeline and feedback engine over a replay"
        self.params = {"request": self.request, "level": session.level,
                       "reps_per_set": session.reps_per_set}
        self.angles: list[Any] = []
        self.events: list[tuple[float | None, str, Any]] = []
        self.calibrations: list[tuple[float | None, Any]] = []
        self.analysis_id: int | None = None
        self.closed = False

    def _store_batch(self, session: LiveSession, batch: Any) -> None:
        pass  # the samples are the original's: never stored again

    def _store_angles(self, angles: Any) -> None:
        self.angles.append(angles)

    def _store_calibration(self, t: float | None, payload: Any) -> None:
        self.calibrations.append((t, payload))

    def _store_event(self, t: float | None, type_: str, payload: Any) -> None:
        self.events.append((t, type_, payload))

    def add_report(self, kind: str, payload: Any) -> bool:
        return False

    def _target_store(self) -> RecordingStore | None:
        if self._store is not None:
            return self._store
        return None if self.owner is None else self.owner.open()

    def save(self, state: str = "ended") -> int | None:
        """Store the analysis (blocking; one transaction); returns its id."""
        from processing.angles import AngleBatch

        store = self._target_store()
        if store is None:
            self.error = "the recordings store is unavailable: the replay's results are lost"
            self.error_kind = "error"
            return None
        parts = [a for a in self.angles if len(a)]
        angles = (AngleBatch.concat(parts) if parts and isinstance(parts[0], AngleBatch)
                  else parts[0] if len(parts) == 1 else None)
        params = dict(self.params, state=state, replayed_until_s=self.last_t)
        try:
            self.analysis_id = store.store_analysis(
                self.original, kind=self.kind, description=self.description, params=params,
                angles=angles, events=self.events, calibrations=self.calibrations)
        except (StorageError, SessionNotFound) as exc:
            self.error, self.error_kind = str(exc), getattr(exc, "kind", "error")
            log.error("replay of %s: analysis not stored: %s", self.original, exc)
            return None
        return self.analysis_id

    async def _close(self, state: str) -> None:
        try:
            await asyncio.to_thread(self.save, state)
        finally:
            self.closed = True

    def health(self) -> schema.StorageHealth:
        return schema.StorageHealth.model_construct(
            recording=False, analysis_of=self.original, analysis_id=self.analysis_id,
            healthy=self.error is None, error_kind=self.error_kind, last_error=self.error,
            closed=self.closed, received_until_s=self._received())


# --- the replay source ----------------------------------------------------------------------

def make_replay_source(req: schema.StartSessionRequest, *, recordings: Recordings | None = None,
                       **_: Any) -> tuple[Any, dict[str, Any]]:
    """A stored session as the live session's source, batch for batch as it arrived live."""
    from api.sources import SourceError

    store = None if recordings is None else recordings.reader()
    if store is None:
        why = "" if recordings is None or recordings.error is None else f": {recordings.error}"
        raise SourceError(f"replay needs the recordings store, which is not available{why}")
    if not req.session_id:
        raise SourceError("source 'replay' needs session_id (GET /api/recordings lists them)")
    src = ReplaySource(store, req.session_id, realtime=req.realtime, speed=req.speed,
                       order="arrival")  # SessionNotFound: 404
    if src.session.samples == 0:
        raise SourceError(f"session {src.session.id} has no samples to replay")
    return src, {"replay_of": src.session.id, "source": src}


# --- re-analysis (command line) -----------------------------------------------------------

async def _run_replay(store: RecordingStore, session_id: str, *, speed: float, realtime: bool,
                      level: int | None, reps_per_set: int | None,
                      progress: Callable[[float], None] | None) -> AnalysisRecorder:
    from api.live import LiveSession, default_components

    components = default_components()
    level = 1 if level is None else level
    req = schema.StartSessionRequest(source="replay", session_id=session_id, speed=speed,
                                     realtime=realtime, level=level, reps_per_set=reps_per_set)
    src = ReplaySource(store, session_id, realtime=realtime, speed=speed, order="arrival")
    session = LiveSession(src, source_name="replay", level=level, reps_per_set=reps_per_set,
                          components=components, info={"replay_of": src.session.id})
    rec = AnalysisRecorder(None, session, req, original=src.session.id, store=store)
    session.recorder = rec
    last_report = time.monotonic()
    async for batch in src.batches():
        session.process_batch(batch)
        if progress is not None and time.monotonic() - last_report > 1.0:
            last_report = time.monotonic()
            progress(rec.last_t or 0.0)
    session.state = "ended"
    rec.on_change(session)
    return rec


def replay_analysis(store: RecordingStore, session_id: str, *, speed: float = 1.0,
                    realtime: bool = False, level: int | None = None,
                    reps_per_set: int | None = None,
                    progress: Callable[[float], None] | None = None) -> AnalysisRecorder:
    """Run a stored session through the live pipeline and feedback engine again and store the
    results as a new analysis (kind "replay"); returns the recorder (analysis_id, events)."""
    rec = asyncio.run(_run_replay(store, session_id, speed=speed, realtime=realtime, level=level,
                                  reps_per_set=reps_per_set, progress=progress))
    rec.save("ended")
    return rec


def reanalyze(store: RecordingStore, session_id: str) -> tuple[int, dict[str, Any]]:
    """The offline analysis (`processing.offline.analyze_detailed`) of a stored session, stored
    as a new analysis (kind "offline"): angles, calibration and detected repetitions."""
    from processing.offline import analyze_detailed

    rec = store.session(session_id)
    chunk_s = 120.0
    result = analyze_detailed(store.read_batches(rec.id, merged=True), chunk_s=chunk_s)
    cal = result.calibration
    t_cal = cal.bend_s[1] if cal.bend_s is not None else None
    events = [(r.start_s, "repetition", r.to_dict()) for r in result.repetitions]
    events.insert(0, (t_cal, "calibration_done",
                      {"comfortable_flexion_deg": _finite(cal.comfortable_flexion_deg),
                       "neutral_s": cal.neutral_s, "bend_s": cal.bend_s}))
    aid = store.store_analysis(rec.id, kind="offline",
                               description="processing.offline.analyze_detailed",
                               params={"chunk_s": chunk_s, "pipeline": "PipelineParams()"},
                               angles=result.angles, events=events,
                               calibrations=[(t_cal, cal.to_dict())])
    summary = {"analysis_id": aid, "angle_frames": len(result.angles),
               "repetitions": len(result.repetitions),
               "comfortable_flexion_deg": _finite(cal.comfortable_flexion_deg)}
    return aid, summary
