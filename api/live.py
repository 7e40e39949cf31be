"""The live service layer: one session = source → pipeline → feedback engine → frames → fan-out.

No HTTP here. `LiveSession` consumes a `SensorSource` in an asyncio task, feeds every batch to
`LumbarPipeline.update`, passes the new angles to `FlexionPracticeEngine.update`, and emits one
`LiveFrame` per processed lower-sensor batch (about 50 per second with 20 ms batches). The work
per batch is a few samples, so it runs inline on the event loop; the loop is yielded once per
frame so a source that does not pace itself cannot starve the WebSocket senders.

Lost samples (`SampleBatch.gap_before`: a BLE link drop, a counter jump) never break a session:
the pipeline does not interpolate across them, the frame says so (`gap`, `trace.gaps`), and a
repetition under way across a gap is interrupted rather than scored. The feedback engine ends a
repetition when no valid sample came for longer than its `max_gap_s`; for a shorter loss the
angles just after the gap are handed to it as missing (NaN) until that much time has passed, so
every gap interrupts, however short. The sensors' health is watched on a timer as well: a change
of a sensor's state (reconnecting, silent, streaming again) is published as a status message at
once, since a lost lower sensor produces no frames to carry it.

`SessionManager` holds the live sessions: one per patient at a time, any number of patients at
once (up to `max_live_sessions`), each publishing on its patient's broadcaster topics: the full
frame for the therapist's clients, and the patient's view of it (api/audience.py) for the
patient's own, each serialised once per frame (topic names: api/fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from api import schema
from api.audience import patient_frame
from api.fanout import Broadcaster, audience_topic, audience_topics, topic_patient
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
    max_gap_s: float = 0.2  # the engine's own signal-gap limit (RepetitionParams.max_gap_s)


def default_components() -> Components:
    from feedback.engine import FlexionPracticeEngine
    from feedback.exercise import FLEXION_LEVELS, ExerciseError, TargetSpec, target_for
    from feedback.repetitions import RepetitionParams
    from processing.pipeline import LumbarPipeline

    return Components(
        make_pipeline=LumbarPipeline,
        make_engine=FlexionPracticeEngine,
        target_for=target_for,
        levels=lambda: {lv.level: lv for lv in FLEXION_LEVELS},
        make_target=TargetSpec,
        errors=(ExerciseError, ValueError),
        max_gap_s=RepetitionParams().max_gap_s,
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


_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def _clean(value: Any) -> Any:
    """Make engine dicts JSON-safe: numpy scalars → Python, NaN/inf → None. Runs on every
    frame's feedback and sensor state, so the plain Python types take a fast path first."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is float:
        return round(value, 4) if math.isfinite(value) else None
    if kind is dict:
        return {k if type(k) is str else str(k): _clean(v) for k, v in value.items()}
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

    practice: Any = None  # a PracticeDriver (api/practice.py) when the session runs practice

    def __init__(
        self,
        source: SensorSource,
        *,
        source_name: str = "simulated",
        session_id: str | None = None,
        level: int = 1,
        reps_per_set: int | None = None,
        publish: Callable[[str], None] | None = None,
        publish_patient: Callable[[str], None] | None = None,
        on_change: Callable[[LiveSession], None] | None = None,
        components: Components | None = None,
        info: dict[str, Any] | None = None,
        patient_id: str | None = None,
    ) -> None:
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.patient_id = patient_id  # the account it belongs to (api/auth); None: nobody's
        self.source = source
        self.source_name = source_name
        self.info = dict(info or {})
        self.reps_per_set = reps_per_set
        self._publish = publish  # the full frame (the therapist's clients)
        self._publish_patient = publish_patient  # its patient view (the patient's own clients)
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
        self._health_task: asyncio.Task[None] | None = None
        self._health_key: tuple[Any, ...] | None = None
        self._stopping = False
        self.last_frame: schema.LiveFrame | None = None
        self.recorder: Any | None = None  # api.recording: stores what the session sees
        self._gap_pending = False  # a batch since the previous frame had gap_before
        self._angles_seen = False
        self._engine_last_t: float | None = None  # time of the last valid angle fed
        self._engine_gap_until: float | None = None  # feed NaN up to here after a gap
        self.gaps = 0  # batches and angle samples that followed lost samples
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
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"lumbo-session-{self.session_id}")
        self._health_task = loop.create_task(self._watch_health(),
                                             name=f"lumbo-health-{self.session_id}")

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
                    self._publish_frame(frame)
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
            if self._health_task is not None:
                self._health_task.cancel()
            with contextlib.suppress(Exception):
                await self.source.stop()

    def _publish_frame(self, frame: schema.LiveFrame) -> None:
        """Stamp the frame with the publish time (server monotonic clock) and publish it, once
        per audience: the full frame, and the patient's view of it."""
        frame.server_time_s = round(time.monotonic(), 6)
        if self._publish is not None:
            self._publish(frame.model_dump_json())
        if self._publish_patient is not None:
            self._publish_patient(patient_frame(frame).model_dump_json())

    HEALTH_CHECK_S = 0.2

    def _health_signature(self) -> tuple[Any, ...]:
        try:
            health = self.source.health()
        except Exception:  # pragma: no cover - health must never break the session
            return ()
        return tuple(
            (role, h.status, h.connected, h.silent, h.message)
            for role, h in sorted(health.items())
        )

    async def _watch_health(self) -> None:
        """Publish a status message when a sensor's state changes (reconnecting, silent, back):
        frames carry health too, but a lost lower sensor produces no frames."""
        self._health_key = self._health_signature()
        while self.active:
            await asyncio.sleep(self.HEALTH_CHECK_S)  # a poll period, not a synchronisation
            key = self._health_signature()
            if key != self._health_key:
                self._health_key = key
                if self._on_change is not None:
                    try:
                        self._on_change(self)
                    except Exception:  # pragma: no cover
                        log.exception("on_change callback failed")

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
        if batch.gap_before:
            self._gap_pending = True
            self.gaps += 1
        angles = self.pipeline.update(batch)
        if self.recorder is not None:
            self.recorder.on_batch(self, batch, angles)
        if angles is not None and len(angles):
            self._pending_angles.append(angles)
        if self.practice is not None:  # graded practice (api/practice.py) runs instead
            self.practice.on_angles(self, angles)
        else:
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
        gap = getattr(angles, "gap_before", None)
        gap = np.zeros(len(t), dtype=bool) if gap is None else np.asarray(gap, dtype=bool)
        if bend_s is not None and len(t) and t[0] <= bend_s[1]:
            keep = t > bend_s[1]
            t, flex, gap = t[keep], flex[keep], gap[keep]
        flex = self._mask_after_gaps(np.asarray(t, dtype=float), np.asarray(flex, dtype=float),
                                     gap)
        for ev in self.engine.update(t, flex) or []:
            d = _clean(_as_dict(ev))
            d.setdefault("type", getattr(ev, "type", type(ev).__name__))
            self._pending_events.append(d)
            if self.recorder is not None:
                self.recorder.on_event(self, d)

    def _mask_after_gaps(self, t: np.ndarray, flex: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """NaN (missing) for the angles within `max_gap_s` of the last valid one before a gap.

        The engine interrupts a repetition when no valid sample came for more than `max_gap_s`;
        a shorter loss would otherwise be bridged, and the engine would interpolate across it
        (band entry times, hold). Masking the first moments after the gap makes every gap an
        interruption, and costs at most `max_gap_s` of feedback after one.
        """
        last, until = self._engine_last_t, self._engine_gap_until
        if until is None and not gap.any():  # the usual case
            valid = np.flatnonzero(np.isfinite(flex))
            if valid.size:
                self._engine_last_t = float(t[valid[-1]])
            return flex
        out = flex.copy()
        for i in range(len(t)):
            if gap[i] and last is not None:
                until = last + self.components.max_gap_s
            if until is not None:
                if t[i] <= until:
                    out[i] = np.nan
                    continue
                until = None
            if math.isfinite(out[i]):
                last = float(t[i])
        self._engine_last_t, self._engine_gap_until = last, until
        return out

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
                d = _clean(h.as_dict())
                extra = getattr(h, "extra", None) or {}
                d["family"] = str(extra.get("family", ""))
                with contextlib.suppress(TypeError, ValueError):
                    d["reconnects"] = int(extra.get("link_losses", 0))
                with contextlib.suppress(TypeError, ValueError):
                    d["retry_in_s"] = _f(extra["retry_in_s"], 2) if "retry_in_s" in extra else None
                out[role] = d
        return schema.Sensors.model_validate(out)

    def _make_frame(self) -> schema.LiveFrame:
        pending = self._pending_angles
        self._pending_angles = []
        events, self._pending_events = self._pending_events, []
        trace = schema.Trace()
        gap = self._gap_pending
        self._gap_pending = False
        if pending:
            a = pending[0] if len(pending) == 1 else type(pending[0]).concat(pending)
            flags = getattr(a, "gap_before", None)
            gaps: list[int] = []
            if flags is not None:
                flags = np.asarray(flags, dtype=bool).copy()
                if not self._angles_seen:
                    flags[0] = False  # the very first angle: nothing before it to bridge
                gaps = np.flatnonzero(flags).tolist()
            self._angles_seen = True
            gap = gap or bool(gaps)
            trace = schema.Trace(
                t_s=_trace_list(a.time_s, 4),
                flexion_deg=_trace_list(a.flexion_deg, 2),
                pelvic_tilt_deg=_trace_list(a.pelvic_tilt_deg, 2),
                gaps=gaps,
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
            gap=gap,
            program=None if self.practice is None else self.practice.frame(),
            program_events=[] if self.practice is None else self.practice.drain_events(),
            storage=None if self.recorder is None else self.recorder.health(),
        )
        self.seq += 1
        self.last_frame = frame
        if self.recorder is not None and frame.program_events:
            self.recorder.on_program_events(self, frame.program_events)
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
            storage=None if self.recorder is None else self.recorder.health(),
        )


class SessionManager:
    """Holds the live sessions, one per patient at a time (several patients at once), and the
    broadcaster that carries each patient's frames on the patient's own topic."""

    practice: Any = None  # PracticeService (api/practice.py): prepares practice sessions
    recordings: Any = None  # Recordings (api/recording.py): stores every session

    def __init__(
        self,
        broadcaster: Broadcaster,
        *,
        components: Callable[[], Components] = default_components,
        source_factory: Callable[[schema.StartSessionRequest], tuple[SensorSource, dict]] = make_source,
        default_level: int = 1,
        max_live_sessions: int = 200,
    ) -> None:
        self.default_level = default_level
        self.max_live_sessions = max_live_sessions
        self.broadcaster = broadcaster
        self._components = components
        self._source_factory = source_factory
        self.sessions: dict[str, LiveSession] = {}  # the live ones and each patient's latest
        self.current: LiveSession | None = None  # the most recently started session
        self.by_patient: dict[str, LiveSession] = {}  # each patient's latest session

    def levels(self) -> dict[int, Any]:
        return self._components().levels()

    def live_sessions(self) -> list[LiveSession]:
        """The sessions still under way, oldest first."""
        return [s for s in self.sessions.values() if s.active]

    def _check_can_start(self, req: schema.StartSessionRequest, patient_id: str | None) -> None:
        mine = self.by_patient.get(patient_id) if patient_id is not None else (
            self.current if self.current is not None and self.current.patient_id is None else None)
        if mine is not None and mine.active:
            raise SessionConflict(
                f"session {mine.session_id} is still {mine.state}; stop it first")
        live = self.live_sessions()
        if len(live) >= self.max_live_sessions:
            raise SessionConflict(f"this service already runs {len(live)} live sessions, its "
                                  "limit; try again when one has ended")
        if req.source == "ble":  # one Bluetooth adapter: one BLE session per host
            for other in live:
                if other.source_name == "ble":
                    raise SessionConflict(
                        f"the Bluetooth sensors of this host are in use by session "
                        f"{other.session_id}; stop it first")

    async def start(
        self, req: schema.StartSessionRequest, *, patient_id: str | None = None
    ) -> LiveSession:
        """Start a session; with `patient_id` its frames and status go only to that patient's
        live topic (api/auth lets the patient and their therapist subscribe to it). Other
        patients' sessions go on; the same patient's must have ended (SessionConflict)."""
        self._check_can_start(req, patient_id)
        components = self._components()
        level = self.default_level if req.level is None else req.level
        known = sorted(components.levels())
        if level not in known:
            raise TargetError(f"unknown level {level}; known levels: {known[0]}–{known[-1]}")
        # graded practice (api/practice.py): checked first; a simulated patient may perform it
        prepared = None if self.practice is None else self.practice.prepare(req, patient_id)
        built = None if prepared is None else prepared.source
        if self.recordings is not None:  # a replay must be of this patient's recordings
            self.recordings.check_start(req, patient_id)
        source, info = built or self._source_factory(req)  # SourceError: the route answers 400
        session = LiveSession(
            source,
            source_name=req.source,
            level=level,
            reps_per_set=req.reps_per_set,
            publish=self._publisher(patient_id),
            publish_patient=None if patient_id is None else functools.partial(
                self.broadcaster.publish, topic=audience_topic(patient_id, "patient")),
            on_change=self._publish_status,
            components=components,
            info=info,
            patient_id=patient_id,
        )
        self.current = session
        if patient_id is not None:
            self.by_patient.pop(patient_id, None)  # re-inserted last: newest at the end
            self.by_patient[patient_id] = session
        self._forget_ended()
        self.sessions[session.session_id] = session
        if prepared is not None:
            prepared.attach(session)
        if self.recordings is not None:
            session.recorder = self.recordings.recorder_for(session, req)
        session.start()
        return session

    def _forget_ended(self) -> None:
        """Keep what is still live and the latest ended session of the most recent
        `max_live_sessions` patients (for their summary; stored sessions are in the
        recordings); without this every session would stay in memory."""
        ended = [p for p, s in self.by_patient.items() if not s.active]
        for p in ended[:max(0, len(ended) - self.max_live_sessions)]:
            del self.by_patient[p]
        keep = {id(s) for s in self.by_patient.values()} | {id(self.current)}
        self.sessions = {k: s for k, s in self.sessions.items() if s.active or id(s) in keep}

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

    def status_for(self, patient_id: str) -> schema.SessionStatus:
        """Status of the patient's latest session (`idle` if they have none)."""
        b = self.broadcaster
        clients = sum(len(b.topic_clients(t)) for t in audience_topics(patient_id))
        session = self.by_patient.get(patient_id)
        if session is None:
            return schema.SessionStatus(clients=clients, dropped_frames=b.dropped_total)
        return session.status(clients=clients, dropped_frames=b.dropped_total)

    def status_message(self, patient_id: str | None = None) -> str:
        status = self.status() if patient_id is None else self.status_for(patient_id)
        return schema.StatusMessage(session=status).model_dump_json()

    def heartbeat_message(self, topic: str | None = None) -> str:
        """The heartbeat of a broadcaster topic (either audience of a patient, or None)."""
        patient_id = topic_patient(topic)
        cur = self.current if patient_id is None else self.by_patient.get(patient_id)
        return schema.Heartbeat(
            session_id=cur.session_id if cur else None,
            state=cur.state if cur else "idle",  # type: ignore[arg-type]
            server_time_s=round(time.monotonic(), 4),
        ).model_dump_json()

    def _publisher(self, patient_id: str | None) -> Callable[[str], None]:
        if patient_id is None:
            return self.broadcaster.publish
        return functools.partial(self.broadcaster.publish, topic=patient_id)

    def _publish_status(self, session: LiveSession) -> None:
        if session.recorder is not None:
            session.recorder.on_change(session)
        pid = session.patient_id
        if pid is not None:
            if self.by_patient.get(pid) is session:
                message = self.status_message(pid)
                for topic in audience_topics(pid):  # the same for both audiences
                    self.broadcaster.publish(message, topic=topic)
        elif session is self.current:
            self.broadcaster.publish(self.status_message())

    async def shutdown(self) -> None:
        live = self.live_sessions()
        if live:
            await asyncio.gather(*(s.stop() for s in live), return_exceptions=True)
