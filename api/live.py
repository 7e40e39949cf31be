"""The live service layer: one session = source → pipeline → feedback engine → frames → fan-out.

No HTTP here. `LiveSession` consumes a `SensorSource` in an asyncio task, feeds every batch to
`LumbarPipeline.update`, passes the new angles to `FlexionPracticeEngine.update`, and emits one
`LiveFrame` per processed lower-sensor batch (about 50 per second with 20 ms batches). The work
per batch is a few samples, so it runs inline on the event loop; the loop is yielded once per
frame so a source that does not pace itself cannot starve the WebSocket senders.

`SessionManager` holds the current session. There is one at a time for now, but sessions are
keyed by `session_id` so several can exist later (one broadcaster per session then).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from api import schema
from api.fanout import Broadcaster
from api.sources import make_source
from sensors.samples import SampleBatch
from sensors.source import SensorSource

log = logging.getLogger(__name__)

ACTIVE_STATES = {"starting", "calibrating", "running", "stopping"}


class SessionConflict(RuntimeError):
    """A session is already running."""


class NoSession(LookupError):
    """There is no session (yet)."""


class TargetError(ValueError):
    """A target request that cannot be applied (unknown level, …)."""


@dataclass(frozen=True)
class Components:
    """Factories for the processing and feedback parts, injectable for tests."""

    make_pipeline: Callable[[], Any]
    make_engine: Callable[[Any, int], Any]  # (TargetSpec, reps_per_set) -> engine
    target_for: Callable[[int, float], Any]  # (level, comfortable_flexion_deg) -> TargetSpec
    levels: Callable[[], dict[int, Any]]  # level number -> ExerciseLevel
    make_target: Callable[..., Any]  # explicit TargetSpec(target_deg, tolerance_deg, hold_s, ...)
    errors: tuple[type[Exception], ...] = (ValueError,)  # what a bad target raises


def default_components() -> Components:
    from feedback.engine import FlexionPracticeEngine
    from feedback.exercise import FLEXION_LEVELS, ExerciseError, TargetSpec, target_for
    from processing.pipeline import LumbarPipeline

    return Components(
        make_pipeline=LumbarPipeline,
        make_engine=FlexionPracticeEngine,
        target_for=target_for,
        levels=lambda: {lv.level: lv for lv in FLEXION_LEVELS},
        make_target=TargetSpec,
        errors=(ExerciseError, ValueError),
    )


def _f(x: Any, nd: int = 3) -> float | None:
    """A finite float rounded for the wire, or None."""
    if x is None:
        return None
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "as_dict"):
        return dict(obj.as_dict())
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _clean(value: Any) -> Any:
    """Make engine dicts JSON-safe: numpy scalars → Python, NaN/inf → None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _f(value, 4)
    return value


def _trace_list(arr: np.ndarray, nd: int) -> list[float | None]:
    arr = np.asarray(arr, dtype=float)
    rounded = np.round(arr, nd)
    if np.all(np.isfinite(rounded)):
        return rounded.tolist()
    return [v if math.isfinite(v) else None for v in rounded.tolist()]


class LiveSession:
    """One live session. Create, then `start()`; `stop()` ends the source cleanly."""

    def __init__(
        self,
        source: SensorSource,
        *,
        source_name: str = "simulated",
        session_id: str | None = None,
        level: int = 1,
        reps_per_set: int | None = None,
        publish: Callable[[str], None] | None = None,
        on_change: Callable[[LiveSession], None] | None = None,
        components: Components | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.source = source
        self.source_name = source_name
        self.info = dict(info or {})
        self.reps_per_set = reps_per_set
        self._publish = publish
        self._on_change = on_change
        self.components = components or default_components()
        self.pipeline = self.components.make_pipeline()
        self.engine: Any | None = None
        self.level: int | None = level
        self.pending_level: int | None = level
        self._explicit: tuple[float, float, float] | None = None
        self.target_spec: Any | None = None
        self.state: str = "starting"
        self.message = ""
        self.error: str | None = None
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.seq = 0
        self.batches = 0
        self._target_blocked = False
        self._pending_angles: list[Any] = []
        self._pending_events: list[dict[str, Any]] = []
        self._last: dict[str, float | None] = {}
        self._last_lower_t: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_frame: schema.LiveFrame | None = None
        if level not in self.components.levels():
            raise TargetError(f"unknown level {level}; known: {sorted(self.components.levels())}")

    # ------------------------------------------------------------------ lifecycle

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("session already started")
        self._set_state("calibrating", "Calibrating: stand still")
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"lumbo-session-{self.session_id}"
        )

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the source and wait for the session task to finish (cancel it if it hangs)."""
        if self._task is None or self._task.done():
            if self.active:
                self._set_state("stopped", "Stopped")
            return
        self._stopping = True
        self._set_state("stopping", "Stopping")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.source.stop(), timeout=timeout_s)
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.active:
            self._set_state("stopped", "Stopped")

    async def wait(self) -> None:
        """Wait until the session task ends (source ended, stopped or failed)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            async for batch in self.source.batches():
                frame = self.process_batch(batch)
                if frame is not None:
                    if self._publish is not None:
                        self._publish(frame.model_dump_json())
                    await asyncio.sleep(0)  # let senders and HTTP run even with an unpaced source
                if self._stopping:
                    break
        except asyncio.CancelledError:
            self._set_state("stopped", "Stopped")
            raise
        except Exception as exc:
            log.exception("live session %s failed", self.session_id)
            self.error = f"{type(exc).__name__}: {exc}"
            self._set_state("failed", f"The session stopped because of an error: {self.error}")
        else:
            if self._stopping:
                self._set_state("stopped", "Stopped")
            else:
                self._set_state("ended", "The sensor source ended")
        finally:
            with contextlib.suppress(Exception):
                await self.source.stop()

    def _set_state(self, state: str, message: str = "") -> None:
        changed = state != self.state or message != self.message
        self.state = state
        self.message = message
        if changed and self._on_change is not None:
            try:
                self._on_change(self)
            except Exception:  # pragma: no cover
                log.exception("on_change callback failed")

    # ------------------------------------------------------------------ processing

    def process_batch(self, batch: SampleBatch) -> schema.LiveFrame | None:
        """Feed one batch through pipeline and engine; a frame for every lower-sensor batch."""
        self.batches += 1
        angles = self.pipeline.update(batch)
        if angles is not None and len(angles):
            self._pending_angles.append(angles)
        if self.target_spec is None or self.engine is None:
            self._maybe_start_engine()
        if self.engine is not None and angles is not None and len(angles):
            self._feed_engine(angles)
        if batch.sensor != "lower":
            return None
        if len(batch):
            self._last_lower_t = float(batch.time_s[-1])
        return self._make_frame()

    def _calibrated(self) -> bool:
        return getattr(self.pipeline, "comfortable_flexion_deg", None) is not None

    def _level_obj(self, level: int | None) -> Any | None:
        return None if level is None else self.components.levels().get(level)

    def _maybe_start_engine(self) -> None:
        """Build the target (and the engine) once calibrated, or at once for an explicit one."""
        if self._target_blocked:
            return
        try:
            if self._explicit is not None:
                spec = self._explicit_spec(*self._explicit)
            elif self.pending_level is not None and self._calibrated():
                spec = self.components.target_for(
                    self.pending_level, float(self.pipeline.comfortable_flexion_deg)
                )
                self.level = self.pending_level
                self.pending_level = None
            else:
                return
        except self.components.errors as exc:
            # e.g. a calibration that measured an implausible range: say so, don't crash
            self._target_blocked = True
            self.error = f"no target: {exc}"
            state = "running" if self._calibrated() else self.state
            self._set_state(state, f"No target could be set: {exc}. Choose another level or target.")
            return
        self._apply_target(spec)

    def _explicit_spec(self, target_deg: float, tolerance_deg: float, hold_s: float) -> Any:
        lv = self._level_obj(self.level) or self._level_obj(1)
        return self.components.make_target(
            target_deg=target_deg,
            tolerance_deg=tolerance_deg,
            hold_s=hold_s,
            min_time_to_target_s=getattr(lv, "min_time_to_target_s", None),
            max_time_to_target_s=getattr(lv, "max_time_to_target_s", None),
        )

    def _apply_target(self, spec: Any) -> None:
        self.target_spec = spec
        if self.error is not None and self.error.startswith("no target"):
            self.error = None
        if self.engine is None:
            reps = self.reps_per_set
            if reps is None:
                reps = int(getattr(self._level_obj(self.level or 1), "reps_per_set", 10))
            self.engine = self.components.make_engine(spec, reps)
        else:
            self.engine.set_target(spec)
        if self.state == "calibrating" and self._calibrated():
            self._set_state("running", "Running")
        elif self._on_change is not None:
            self._on_change(self)

    def _feed_engine(self, angles: Any) -> None:
        """Feed the engine the angles after the calibration bend. Once calibrated the pipeline
        also emits the buffered angles from before, calibration bend included: they belong in
        the trace, but the calibration bend is not a practice repetition."""
        assert self.engine is not None
        cal = getattr(self.pipeline, "calibration", None)
        bend_s = getattr(cal, "bend_s", None)
        t, flex = angles.time_s, angles.flexion_deg
        if bend_s is not None and len(t) and t[0] <= bend_s[1]:
            keep = t > bend_s[1]
            t, flex = t[keep], flex[keep]
        for ev in self.engine.update(t, flex) or []:
            d = _clean(_as_dict(ev))
            d.setdefault("type", getattr(ev, "type", type(ev).__name__))
            self._pending_events.append(d)

    @property
    def completed_sets(self) -> list[dict[str, Any]]:
        if self.engine is None:
            return []
        return [_clean(_as_dict(s)) for s in getattr(self.engine, "completed_sets", ())]

    def set_target(
        self,
        *,
        level: int | None = None,
        target_deg: float | None = None,
        tolerance_deg: float | None = None,
        hold_s: float | None = None,
    ) -> None:
        """Switch to an exercise level (applied once calibrated) or to an explicit target.
        Raises TargetError (nothing changed) if the target is not valid for this patient."""
        if level is not None:
            if self._level_obj(level) is None:
                known = sorted(self.components.levels())
                raise TargetError(f"unknown level {level}; known levels: {known[0]}–{known[-1]}")
            if self._calibrated():
                try:
                    spec = self.components.target_for(
                        level, float(self.pipeline.comfortable_flexion_deg)
                    )
                except self.components.errors as exc:
                    raise TargetError(str(exc)) from None
                self._explicit, self.level, self.pending_level = None, level, None
                self._target_blocked = False
                self._apply_target(spec)
            else:
                self._explicit, self.pending_level = None, level
                self.level = level
                if self._on_change is not None:
                    self._on_change(self)
            return
        if target_deg is None or tolerance_deg is None:
            raise TargetError("give level, or both target_deg and tolerance_deg")
        if hold_s is None:
            hold_s = float(getattr(self.target_spec, "hold_s", None) or getattr(
                self._level_obj(self.level or 1), "hold_s", 0.0))
        explicit = (float(target_deg), float(tolerance_deg), float(hold_s))
        try:
            spec = self._explicit_spec(*explicit)
        except self.components.errors as exc:
            raise TargetError(str(exc)) from None
        self._explicit, self.pending_level, self.level = explicit, None, None
        self._target_blocked = False
        self._apply_target(spec)

    # ------------------------------------------------------------------ frames and status

    def _calibration_model(self) -> schema.Calibration:
        st = getattr(self.pipeline, "calibration_status", None)
        progress = float(getattr(st, "progress", 0.0) or 0.0)
        return schema.Calibration(
            phase=str(getattr(st, "phase", "unknown")),
            message=str(getattr(st, "message", "")),
            progress=min(1.0, max(0.0, progress)),
            comfortable_flexion_deg=_f(getattr(self.pipeline, "comfortable_flexion_deg", None), 2),
        )

    def _target_model(self) -> schema.Target | None:
        spec = self.target_spec
        if spec is None:
            return None
        explicit = self._explicit is not None
        share = None
        if not explicit and self.level is not None:
            lv = self._level_obj(self.level)
            share = _f(getattr(lv, "amplitude_share", None), 4) if lv is not None else None
        return schema.Target(
            target_deg=_f(spec.target_deg, 2),
            tolerance_deg=_f(spec.tolerance_deg, 2),
            hold_s=_f(spec.hold_s, 2),
            level=None if explicit else self.level,
            share=share,
            source="explicit" if explicit else "level",
        )

    def _feedback_model(self) -> schema.Feedback | None:
        if self.engine is None:
            return None
        return schema.Feedback.model_validate(_clean(_as_dict(self.engine.state)))

    def _sensors_model(self) -> schema.Sensors:
        try:
            health = self.source.health()
        except Exception:  # pragma: no cover - health must never break a frame
            log.exception("source.health() failed")
            return schema.Sensors()
        out: dict[str, Any] = {}
        for role in ("upper", "lower"):
            h = health.get(role)  # type: ignore[call-overload]
            if h is not None:
                out[role] = _clean(h.as_dict())
        return schema.Sensors.model_validate(out)

    def _make_frame(self) -> schema.LiveFrame:
        pending = self._pending_angles
        self._pending_angles = []
        events, self._pending_events = self._pending_events, []
        trace = schema.Trace()
        if pending:
            a = pending[0] if len(pending) == 1 else type(pending[0]).concat(pending)
            trace = schema.Trace(
                t_s=_trace_list(a.time_s, 4),
                flexion_deg=_trace_list(a.flexion_deg, 2),
                pelvic_tilt_deg=_trace_list(a.pelvic_tilt_deg, 2),
            )
            self._last = {
                "t_s": float(a.time_s[-1]),
                "flexion_deg": _f(a.flexion_deg[-1], 2),
                "lateral_bend_deg": _f(a.lateral_bend_deg[-1], 2),
                "axial_rotation_deg": _f(a.axial_rotation_deg[-1], 2),
                "pelvic_tilt_deg": _f(a.pelvic_tilt_deg[-1], 2),
                "flexion_deg_s": _f(a.flexion_velocity_deg_s[-1], 2),
            }
            t_s = float(a.time_s[-1])
        else:
            t_s = self._last.get("t_s") or self._last_lower_t or 0.0
        last = self._last
        frame = schema.LiveFrame(
            session_id=self.session_id,
            seq=self.seq,
            t_s=round(float(t_s), 4),
            angles=schema.Angles(
                flexion_deg=last.get("flexion_deg"),
                lateral_bend_deg=last.get("lateral_bend_deg"),
                axial_rotation_deg=last.get("axial_rotation_deg"),
                pelvic_tilt_deg=last.get("pelvic_tilt_deg"),
            ),
            velocity=schema.Velocity(flexion_deg_s=last.get("flexion_deg_s")),
            trace=trace,
            target=self._target_model(),
            feedback=self._feedback_model(),
            calibration=self._calibration_model(),
            sensors=self._sensors_model(),
            events=[schema.FeedbackEventModel.model_validate(e) for e in events],
        )
        self.seq += 1
        self.last_frame = frame
        return frame

    def summary(self) -> dict[str, Any] | None:
        if self.engine is None:
            return None
        return _clean(_as_dict(self.engine.summary()))

    def status(self, *, clients: int = 0, dropped_frames: int = 0) -> schema.SessionStatus:
        return schema.SessionStatus(
            session_id=self.session_id,
            state=self.state,  # type: ignore[arg-type]
            source=self.source_name,
            message=self.message,
            error=self.error,
            started_at=self.started_at,
            frames=self.seq,
            calibration=self._calibration_model(),
            target=self._target_model(),
            pending_level=self.pending_level if self.target_spec is None else None,
            feedback=self._feedback_model(),
            summary=self.summary(),
            sets=self.completed_sets,
            sensors=self._sensors_model(),
            clients=clients,
            dropped_frames=dropped_frames,
        )


class SessionManager:
    """Holds the live sessions (one active at a time for now) and the live broadcaster."""

    def __init__(
        self,
        broadcaster: Broadcaster,
        *,
        components: Callable[[], Components] = default_components,
        source_factory: Callable[[schema.StartSessionRequest], tuple[SensorSource, dict]] = make_source,
        default_level: int = 1,
    ) -> None:
        self.default_level = default_level
        self.broadcaster = broadcaster
        self._components = components
        self._source_factory = source_factory
        self.sessions: dict[str, LiveSession] = {}
        self.current: LiveSession | None = None

    def levels(self) -> dict[int, Any]:
        return self._components().levels()

    async def start(self, req: schema.StartSessionRequest) -> LiveSession:
        if self.current is not None and self.current.active:
            raise SessionConflict(
                f"session {self.current.session_id} is still {self.current.state}; stop it first"
            )
        components = self._components()
        level = self.default_level if req.level is None else req.level
        known = sorted(components.levels())
        if level not in known:
            raise TargetError(f"unknown level {level}; known levels: {known[0]}–{known[-1]}")
        source, info = self._source_factory(req)  # SourceError: the route answers 400
        session = LiveSession(
            source,
            source_name=req.source,
            level=level,
            reps_per_set=req.reps_per_set,
            publish=self.broadcaster.publish,
            on_change=self._publish_status,
            components=components,
            info=info,
        )
        self.sessions = {session.session_id: session}  # keep only the latest for now
        self.current = session
        session.start()
        return session

    async def stop(self) -> LiveSession:
        if self.current is None:
            raise NoSession("no session has been started")
        await self.current.stop()
        return self.current

    def get_active(self) -> LiveSession:
        """The current session if it is still live (for changes such as a new target)."""
        session = self.get()
        if not session.active:
            raise SessionConflict(
                f"session {session.session_id} has {session.state}; start a new session first"
            )
        return session

    def get(self, session_id: str | None = None) -> LiveSession:
        session = self.current if session_id is None else self.sessions.get(session_id)
        if session is None:
            raise NoSession("no session has been started" if session_id is None else f"no session {session_id}")
        return session

    def status(self) -> schema.SessionStatus:
        b = self.broadcaster
        if self.current is None:
            return schema.SessionStatus(clients=len(b.clients), dropped_frames=b.dropped_total)
        return self.current.status(clients=len(b.clients), dropped_frames=b.dropped_total)

    def status_message(self) -> str:
        return schema.StatusMessage(session=self.status()).model_dump_json()

    def heartbeat_message(self) -> str:
        cur = self.current
        return schema.Heartbeat(
            session_id=cur.session_id if cur else None,
            state=cur.state if cur else "idle",  # type: ignore[arg-type]
            server_time_s=round(time.monotonic(), 4),
        ).model_dump_json()

    def _publish_status(self, session: LiveSession) -> None:
        if session is self.current:
            self.broadcaster.publish(self.status_message())

    async def shutdown(self) -> None:
        if self.current is not None and self.current.active:
            await self.current.stop()
