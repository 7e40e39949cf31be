"""All of a therapist's live sessions at a glance: one compact tile per live session.

Built from what the live service already holds in memory (`SessionManager.by_patient`, each
session's latest frame and status), for the patients of one therapist only: `overview(manager,
patients, ...)` never looks at a session whose patient is not in `patients`. The REST snapshot
(`GET /api/live/sessions`) and the WebSocket `/ws/overview` (about 4 messages a second) send the
same `LiveOverview` (api/routes/overview.py).

A tile: patient, session state and calibration phase, the current lumbar angles, repetitions
done of those planned, the exercise and level running, sensor health (connected, status,
battery, loss, lost-sample gaps), how many live pages watch the session, and how long ago its
last frame was made (`FrameClock`: frames are counted as they appear, on the server's monotonic
clock, so a session whose sensors went silent shows its age growing).

Scope: the sessions of this service instance (several instances share stored data, not their
live sessions' in-memory state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from api import schema
from api.fanout import audience_topics
from recordings.accounts import Account

OVERVIEW_PERIOD_S = 0.25  # ~4 messages per second on /ws/overview
OVERVIEW_SCHEMA_VERSION = 1
CLASSIC_NAME = "Bend forward to the target (single exercise)"


class SensorBrief(BaseModel):
    connected: bool
    status: str = Field(description="idle / connecting / streaming / reconnecting / failed")
    silent: bool = False
    battery_pct: float | None = None
    loss_pct: float = 0.0
    rate_hz: float = 0.0
    nominal_rate_hz: float = 0.0
    message: str = ""


class TileExercise(BaseModel):
    exercise_id: str | None = None
    name: str
    level: int | None = None
    block: str | None = Field(None, description="set / retention / baseline step")
    phase: str | None = Field(None, description="e.g. rest, finding_start, active")
    stage: int | None = None
    stages: int | None = None


class LiveTile(BaseModel):
    patient_id: str
    patient_name: str
    session_id: str
    state: schema.SessionState
    message: str = ""
    source: str
    started_at: str
    calibration: schema.Calibration
    angles: schema.Angles = Field(description="the latest frame's lumbar angles, degrees")
    frames: int = Field(description="frames made so far")
    frame_age_s: float | None = Field(
        None, description="server seconds since this session's last new frame was seen (null: "
        "not known yet)")
    exercise: TileExercise | None = None
    reps_done: int | None = None
    reps_planned: int | None = None
    awaiting: list[str] = Field(default_factory=list, description="what the patient is asked "
                                "for now (pain_before, self_estimate, pain_after, ...)")
    sensors: dict[Literal["upper", "lower"], SensorBrief] = Field(default_factory=dict)
    gaps: int = Field(0, description="batches that followed lost samples, this session")
    viewers: int = Field(0, description="live pages watching (the patient's and therapist's)")
    recording: bool = False
    storage_healthy: bool = True


class LiveOverview(BaseModel):
    type: Literal["overview"] = "overview"
    schema_version: Literal[1] = OVERVIEW_SCHEMA_VERSION
    server_time_s: float = Field(description="server monotonic clock, s")
    patients: int = Field(description="patients of the signed-in therapist")
    sessions: list[LiveTile] = Field(description="their live sessions, oldest first")


class FrameClock:
    """When each session's frame counter last moved, on the server's monotonic clock; bounded
    by the sessions it is asked about (entries of other sessions are dropped)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[int, float]] = {}

    def age_s(self, session_id: str, frames: int) -> float | None:
        now = self._clock()
        seen = self._seen.get(session_id)
        if seen is None:
            self._seen[session_id] = (frames, now)
            return None
        if frames != seen[0]:
            self._seen[session_id] = (frames, now)
            return 0.0
        return round(now - seen[1], 2)

    def keep_only(self, session_ids: Iterable[str]) -> None:
        keep = set(session_ids)
        for sid in [s for s in self._seen if s not in keep]:
            del self._seen[sid]


def _exercise(status: schema.SessionStatus, program: dict[str, Any] | None
              ) -> tuple[TileExercise | None, int | None, int | None, list[str]]:
    """(exercise, reps done, reps planned, awaiting) from the program frame or the single
    flexion exercise's feedback."""
    if program:
        awaiting = [str(a) for a in program.get("awaiting") or []]
        if program.get("mode") == "baseline" and program.get("baseline"):
            b = program["baseline"]
            name = "Baseline: " + str(b.get("step_name") or b.get("step") or "assessment")
            return (TileExercise(name=name, block="baseline", phase=b.get("phase"),
                                 stage=program.get("stage"), stages=program.get("stages")),
                    b.get("count"), b.get("of"), awaiting)
        current = next((i for i in program.get("items") or [] if i.get("status") == "current"),
                       None)
        ex = program.get("exercise") or {}
        if current is None:
            return (TileExercise(name=str(program.get("message") or "Program"),
                                 phase=program.get("phase"), stage=program.get("stage"),
                                 stages=program.get("stages")), None, None, awaiting)
        return (TileExercise(exercise_id=current.get("exercise_id"), name=str(current.get("name")),
                             level=current.get("level"),
                             block=ex.get("block_kind") or program.get("stage_kind"),
                             phase=ex.get("phase"), stage=program.get("stage"),
                             stages=program.get("stages")),
                ex.get("rep_count"), ex.get("reps_in_block"), awaiting)
    fb, target = status.feedback, status.target
    if target is None and fb is None:
        return None, None, None, []
    level = target.level if target is not None else None
    name = CLASSIC_NAME if target is None or target.source == "level" else (
        f"Bend forward to {target.target_deg:.0f}° (explicit target)")
    return (TileExercise(exercise_id="flexion_classic", name=name, level=level, block="set"),
            fb.rep_count if fb else None, fb.reps_per_set if fb else None, [])


def tile(session: Any, patient: Account, *, viewers: int, clock: FrameClock) -> LiveTile:
    """One live session's tile (see the module docstring)."""
    status: schema.SessionStatus = session.status(clients=viewers)
    frame = session.last_frame
    program = None
    if frame is not None and frame.program is not None:
        program = frame.program if isinstance(frame.program, dict) else frame.program.model_dump()
    exercise, done, planned, awaiting = _exercise(status, program)
    sensors = {}
    for role in ("upper", "lower"):
        h = getattr(status.sensors, role)
        if h is not None:
            sensors[role] = SensorBrief(connected=h.connected, status=h.status, silent=h.silent,
                                        battery_pct=h.battery_pct, loss_pct=h.loss_pct,
                                        rate_hz=h.rate_hz, nominal_rate_hz=h.nominal_rate_hz,
                                        message=h.message)
    storage = status.storage
    return LiveTile(
        patient_id=patient.id, patient_name=patient.display_name or patient.username,
        session_id=session.session_id, state=status.state, message=status.message,
        source=status.source or "", started_at=status.started_at or "",
        calibration=status.calibration or schema.Calibration(phase="unknown"),
        angles=frame.angles if frame is not None else schema.Angles(),
        frames=status.frames, frame_age_s=clock.age_s(session.session_id, status.frames),
        exercise=exercise, reps_done=done, reps_planned=planned, awaiting=awaiting,
        sensors=sensors, gaps=int(getattr(session, "gaps", 0) or 0), viewers=viewers,
        recording=bool(storage and storage.recording),
        storage_healthy=True if storage is None else bool(storage.healthy),
    )


def viewers_of(manager: Any, patient_id: str) -> int:
    """Live pages subscribed to the patient's session (both audiences)."""
    b = manager.broadcaster
    return sum(len(b.topic_clients(t)) for t in audience_topics(patient_id))


def overview(manager: Any, patients: list[Account], clock: FrameClock) -> LiveOverview:
    """The live sessions of `patients` (one therapist's), oldest first."""
    tiles = []
    for p in patients:
        session = manager.by_patient.get(p.id)
        if session is None or not session.active:
            continue
        tiles.append(tile(session, p, viewers=viewers_of(manager, p.id), clock=clock))
    tiles.sort(key=lambda t: (t.started_at, t.patient_name))
    clock.keep_only(t.session_id for t in tiles)
    return LiveOverview(server_time_s=round(time.monotonic(), 3), patients=len(patients),
                        sessions=tiles)
