"""Every message that crosses Lumbo's process boundary, in one place and versioned.

The live WebSocket carries three message types, each with `type` and `schema_version`:

- `frame` (`LiveFrame`): one per processed lower-sensor batch (about 50 per second with 20 ms
  batches): latest angles, the trace since the previous frame, target, feedback state,
  calibration, sensor health and the feedback events since the previous frame.
- `heartbeat` (`Heartbeat`): once a second while no frames flow, so a page can tell "connected
  but no data" from "data is stale".
- `status` (`StatusMessage`): the session's status whenever it changes (started, calibrated,
  stopped, failed) and once on connect.

The REST request/response models live here too, so `/openapi.json` and the JSON Schemas served
at `/api/schema/{name}` come from the same classes. Bump `SCHEMA_VERSION` on any change that an
existing page could misread (renamed or removed fields, changed meaning); adding optional fields
does not need a bump.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.practice_models import PracticeStart, ProgramEventModel, ProgramFrame
from feedback.exercise import (
    HOLD_MAX_S,
    REPS_PER_SET_MAX,
    TARGET_MAX_DEG,
    TOLERANCE_MAX_DEG,
    TOLERANCE_MIN_DEG,
)

SCHEMA_VERSION = 1

SessionState = Literal["idle", "starting", "calibrating", "running", "stopping", "stopped", "ended", "failed"]
"""idle: no session yet; calibrating/running: live; stopped: by request; ended: the source ran
out; failed: the source or the processing raised (see `error`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------- frame parts


class Angles(_Strict):
    """Latest lumbar angles (degrees, zero in neutral standing); null until calibrated."""

    flexion_deg: float | None = Field(None, description="> 0 bending forward")
    lateral_bend_deg: float | None = Field(None, description="> 0 bending to the right")
    axial_rotation_deg: float | None = Field(None, description="> 0 shoulders turning right")
    pelvic_tilt_deg: float | None = Field(None, description="> 0 anterior pelvic tilt")


class Velocity(_Strict):
    flexion_deg_s: float | None = Field(None, description="lumbar flexion velocity, deg/s")


class Trace(_Strict):
    """Every angle sample since the previous frame (for the therapist's trace), oldest first;
    null where a sample is missing (do not draw across it)."""

    t_s: list[float] = Field(default_factory=list, description="host monotonic time, s")
    flexion_deg: list[float | None] = Field(default_factory=list)
    pelvic_tilt_deg: list[float | None] = Field(default_factory=list)
    gaps: list[int] = Field(
        default_factory=list,
        description="indices into `t_s` of samples that follow lost samples (a BLE link drop, "
        "a counter jump): do not draw or interpolate across the step into them",
    )


class Target(_Strict):
    """The movement target the feedback engine currently scores against."""

    target_deg: float = Field(description="target lumbar flexion, degrees")
    tolerance_deg: float = Field(description="half-width of the target band, degrees")
    hold_s: float = Field(description="how long to hold inside the band, s")
    level: int | None = Field(None, description="exercise level; null for an explicit target")
    share: float | None = Field(
        None, description="target as a share of the comfortable flexion; null when explicit"
    )
    source: Literal["level", "explicit"] = "level"


class Feedback(BaseModel):
    """`LiveFeedback.as_dict()`: the core fields below, plus whatever the engine adds."""

    model_config = ConfigDict(extra="allow")

    zone: str | None = Field(
        None, description="rest (near neutral) / below (under the band) / in (inside) / over"
    )
    rep_count: int = 0
    reps_per_set: int = 0
    hold_progress: float = Field(0.0, description="0..1 of the hold time achieved")


class Calibration(_Strict):
    phase: str = Field(description="e.g. waiting / neutral / bend / done / failed")
    message: str = ""
    progress: float = Field(0.0, ge=0.0, le=1.0)
    comfortable_flexion_deg: float | None = None


class SensorHealthModel(_Strict):
    """`sensors.samples.SensorHealth.as_dict()`."""

    sensor: Literal["upper", "lower"]
    connected: bool
    device_name: str = ""
    address: str = ""
    rate_hz: float = 0.0
    nominal_rate_hz: float = 0.0
    loss_pct: float = 0.0
    battery_pct: float | None = None
    last_seen_s: float | None = None
    silent: bool = False
    status: str = "idle"
    message: str = ""
    family: str = Field("", description="BLE device family id (e.g. witmotion); empty otherwise")
    reconnects: int = Field(0, description="link losses this session that were reconnected or "
                            "are being reconnected")
    retry_in_s: float | None = Field(None, description="while reconnecting: next attempt in s")


class Sensors(_Strict):
    upper: SensorHealthModel | None = None
    lower: SensorHealthModel | None = None


class FeedbackEventModel(BaseModel):
    """A feedback event (`FeedbackEvent.as_dict()`): `type` is `repetition_started`,
    `repetition_scored` (with `score`: peak/error/hold/time to target and the cue text),
    `repetition_interrupted` (with `message`) or `set_completed` (with `summary`)."""

    model_config = ConfigDict(extra="allow")

    type: str


class StorageHealth(_Strict):
    """Is this session being stored, and safely (api/recording.py)? Live feedback never waits
    for storage: when it fails, `healthy` is false, `last_error` says why and what to do, and
    the data waits in memory (bounded: `dropped_samples` counts what no longer fit)."""

    recording: bool = Field(description="the session's samples, angles and events are stored")
    recording_id: str | None = Field(None, description="the stored session (/api/recordings/{id})")
    analysis_of: str | None = Field(
        None, description="a replay: its results become a new analysis of this stored session "
        "when it ends")
    analysis_id: int | None = Field(None, description="that analysis, once stored")
    healthy: bool = Field(True, description="false: storage is failing (see last_error)")
    error_kind: str | None = Field(None, description="full / read_only / schema / error")
    last_error: str | None = None
    stored_samples: int = Field(0, description="samples committed to disk so far")
    pending_samples: int = Field(0, description="samples waiting in memory")
    dropped_samples: int = Field(0, description="samples lost because storage failed too long")
    stored_until_s: float | None = Field(
        None, description="`t_s` of the newest sample stored of both sensors (host time base)")
    received_until_s: float | None = Field(
        None, description="`t_s` of the newest sample received from the source")
    closed: bool = Field(False, description="the recording is finished")


# ---------------------------------------------------------------------------- WS messages


class LiveFrame(_Strict):
    """One live frame. `t_s` is the host monotonic time (the `SampleBatch.time_s` clock) of the
    newest angle sample in the frame, or of the newest lower-sensor sample while no angles exist
    yet (during calibration). The therapist's clients receive it whole; the patient's own clients
    receive the patient's view of it, same schema (api/audience.py): `trace` empty,
    `program.exercise` null, therapist events left out, and `angles`/`velocity` null while the
    practice block withholds the position from the patient."""

    type: Literal["frame"] = "frame"
    schema_version: Literal[1] = SCHEMA_VERSION
    session_id: str
    seq: int = Field(ge=0, description="frame counter within the session, from 0")
    t_s: float
    server_time_s: float | None = Field(
        None, description="server monotonic clock (CLOCK_MONOTONIC, the heartbeat's "
        "`server_time_s`) when the frame was made and published, s: a client on the same host "
        "measures the fan-out latency against it (bench/fanout.py)",
    )
    angles: Angles
    velocity: Velocity
    trace: Trace
    target: Target | None = Field(None, description="null until calibrated or set explicitly")
    feedback: Feedback | None = Field(None, description="null until the engine runs")
    calibration: Calibration
    sensors: Sensors
    events: list[FeedbackEventModel] = Field(default_factory=list)
    gap: bool = Field(
        False, description="samples were lost since the previous frame (see `trace.gaps`); a "
        "repetition under way across the gap is interrupted, not scored",
    )
    program: ProgramFrame | None = Field(
        None, description="graded practice (day's program or baseline assessment) in this "
        "session; null when it runs the single flexion exercise (api/practice_models.py)",
    )
    program_events: list[ProgramEventModel] = Field(
        default_factory=list, description="practice events since the previous frame",
    )
    storage: StorageHealth | None = Field(
        None, description="recording health; null when the service stores nothing",
    )


class Heartbeat(_Strict):
    type: Literal["heartbeat"] = "heartbeat"
    schema_version: Literal[1] = SCHEMA_VERSION
    session_id: str | None = None
    state: SessionState = "idle"
    server_time_s: float = Field(description="server monotonic time, s")


class SetSummaryModel(BaseModel):
    """`SetSummary.as_dict()` of one set; fields depend on the feedback engine."""

    model_config = ConfigDict(extra="allow")


class SessionStatus(_Strict):
    session_id: str | None = None
    state: SessionState = "idle"
    source: str | None = None
    message: str = ""
    error: str | None = None
    started_at: str | None = Field(None, description="wall-clock ISO 8601 start time")
    frames: int = Field(0, description="frames produced so far")
    calibration: Calibration | None = None
    target: Target | None = None
    pending_level: int | None = Field(
        None, description="level requested before calibration; applied once calibrated"
    )
    feedback: Feedback | None = None
    summary: SetSummaryModel | None = Field(None, description="running set summary")
    sets: list[SetSummaryModel] = Field(default_factory=list, description="completed sets")
    sensors: Sensors = Field(default_factory=Sensors)
    clients: int = Field(0, description="connected live clients")
    dropped_frames: int = Field(0, description="frames dropped for slow clients, total")
    storage: StorageHealth | None = Field(
        None, description="recording health; null when the service stores nothing",
    )


class SessionSummary(_Strict):
    session_id: str
    state: SessionState
    current: SetSummaryModel | None = Field(None, description="the running set")
    sets: list[SetSummaryModel] = Field(default_factory=list, description="completed sets")


class StatusMessage(_Strict):
    type: Literal["status"] = "status"
    schema_version: Literal[1] = SCHEMA_VERSION
    session: SessionStatus


# ---------------------------------------------------------------------------- REST models


BLE_ADDRESS_PATTERN = (
    r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"  # MAC (Linux/BlueZ, Windows)
    r"|^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"  # macOS
)
"""A sensor's address as bleak reports it: a MAC, or CoreBluetooth's per-host UUID on macOS."""

BLE_RATE_MIN_HZ = 10.0
BLE_RATE_MAX_HZ = 500.0
_SIMULATOR_FIELDS = ("script", "n_reps", "amplitude_deg", "calibration_deg", "speed", "realtime",
                     "loop", "seed")
_BLE_FIELDS = ("upper", "lower", "rate_hz")
_REPLAY_FIELDS = ("session_id", "speed", "realtime")


def normalise_address(address: str | None) -> str | None:
    """Upper-case hex, surrounding spaces removed (bleak reports MACs upper-case on Linux)."""
    return None if address is None else address.strip().upper()


def check_roles(upper: str | None, lower: str | None) -> None:
    """Both or neither, and two different sensors (raises ValueError with a readable text)."""
    if (upper is None) != (lower is None):
        raise ValueError("give both upper and lower sensor addresses (or neither, to use the "
                         "sensors remembered on this host)")
    if upper is not None and upper == lower:
        raise ValueError("upper and lower must be two different sensors")


class StartSessionRequest(_Strict):
    """Start a session on the simulated patient (`source: simulated`, the default) or on two
    BLE sensors (`source: ble` with `upper` and `lower`). Options of the other source are
    refused rather than silently ignored."""

    source: Literal["simulated", "ble", "replay"] = Field(
        "simulated",
        description="sensor source: `simulated` (the simulated patient), `ble` (two BLE IMUs) "
        "or `replay` (a stored session, `session_id`; with `speed`, `realtime`). "
        "When omitted, a server started with BLE sensors (`lumbo serve --upper/--lower`, "
        "`--ble`) uses them",
    )
    session_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="replay: the stored session (or a unique prefix of its id) to replay; its "
        "results are stored as a new analysis of it",
    )
    upper: str | None = Field(
        None, pattern=BLE_ADDRESS_PATTERN, examples=["C0:1D:B0:00:00:01"],
        description="ble: address of the sensor at the thoracolumbar junction (T12/L1); omit "
        "upper and lower to use the sensors remembered on this host",
    )
    lower: str | None = Field(
        None, pattern=BLE_ADDRESS_PATTERN, examples=["C0:1D:B0:00:00:02"],
        description="ble: address of the sensor on the sacrum (S2)",
    )
    rate_hz: float = Field(
        100.0, ge=BLE_RATE_MIN_HZ, le=BLE_RATE_MAX_HZ,
        description="ble: sample rate to configure; a family without it streams at its next "
        "faster rate",
    )
    script: Literal["demo", "flexion_reps"] = Field(
        "demo", description="simulated movement script"
    )
    n_reps: int = Field(10, ge=1, le=REPS_PER_SET_MAX, description="flexion_reps script: repetitions")
    amplitude_deg: float = Field(
        40.0, gt=0.0, le=90.0, description="flexion_reps script: trunk amplitude, degrees"
    )
    calibration_deg: float = Field(
        80.0, ge=20.0, le=100.0,
        description="flexion_reps script: trunk flexion of the simulated calibration bend, degrees "
        "(a stiff patient bends less, and so gets a smaller comfortable range)",
    )
    speed: float = Field(1.0, gt=0.0, le=50.0, description="simulation speed, 1 = real time")
    realtime: bool = Field(True, description="pace batches in (scaled) real time")
    loop: bool = Field(False, description="loop the script forever")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    level: int | None = Field(
        None, ge=1, description="exercise level once calibrated; default: the server's default level"
    )
    reps_per_set: int | None = Field(
        None, ge=1, le=REPS_PER_SET_MAX, description="repetitions per set; default: the level's"
    )
    practice: PracticeStart | None = Field(
        None, description="run graded practice (the patient's day's program, or the baseline "
        "assessment) instead of the single flexion exercise",
    )

    @model_validator(mode="after")
    def _source_options(self) -> StartSessionRequest:
        given = self.model_fields_set
        if self.source == "replay":
            wrong = [f for f in (*_BLE_FIELDS, *_SIMULATOR_FIELDS) if f in given
                     and f not in _REPLAY_FIELDS]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} do not apply to source 'replay'")
            if self.session_id is None:
                raise ValueError("source 'replay' needs session_id")
            return self
        if "session_id" in given:
            raise ValueError("session_id applies to source 'replay' only")
        if self.source == "simulated":
            wrong = [f for f in _BLE_FIELDS if f in given]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} apply to source 'ble' only")
        else:
            wrong = [f for f in _SIMULATOR_FIELDS if f in given]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} apply to source 'simulated' only")
            if self.upper is not None:
                self.upper = normalise_address(self.upper)
            if self.lower is not None:
                self.lower = normalise_address(self.lower)
            check_roles(self.upper, self.lower)
        return self


class ScannedSensor(_Strict):
    """A supported sensor seen advertising during a scan."""

    name: str = Field(description="advertised name")
    address: str = Field(description="address to use as `upper`/`lower`")
    rssi: int | None = Field(None, description="signal strength, dBm (closer to 0 is stronger)")
    family: str | None = Field(None, description="device family id; null when unsupported")
    display_name: str = Field("", description="device family in words, e.g. 'WitMotion WT901BLE'")
    battery_pct: float | None = Field(
        None, description="battery, percent: from the advertisement where the sensor sends it, "
        "else as last seen in a session on this host (`battery_from` says which)",
    )
    battery_from: Literal["advertisement", "last_session"] | None = None
    role: Literal["upper", "lower"] | None = Field(
        None, description="the role this sensor is remembered for on this host"
    )


class RememberedSensor(_Strict):
    address: str
    name: str = ""
    family: str | None = None
    battery_pct: float | None = None


class SensorRoles(_Strict):
    """The sensors assigned to the two roles on this host, remembered between sessions."""

    upper: RememberedSensor | None = Field(None, description="at T12/L1")
    lower: RememberedSensor | None = Field(None, description="on the sacrum (S2)")
    rate_hz: float = Field(100.0, description="sample rate used with them")
    updated: str | None = Field(None, description="wall-clock ISO 8601 time of the assignment")
    default_source: Literal["simulated", "ble"] = Field(
        "simulated", description="what a start request without `source` uses on this server"
    )


class ScanResult(_Strict):
    sensors: list[ScannedSensor] = Field(
        default_factory=list, description="supported sensors, strongest signal first"
    )
    timeout_s: float
    roles: SensorRoles


class AssignRolesRequest(_Strict):
    """Assign two sensors to `upper` (T12/L1) and `lower` (S2) without starting a session."""

    upper: str = Field(pattern=BLE_ADDRESS_PATTERN)
    lower: str = Field(pattern=BLE_ADDRESS_PATTERN)
    rate_hz: float = Field(100.0, ge=BLE_RATE_MIN_HZ, le=BLE_RATE_MAX_HZ)

    @model_validator(mode="after")
    def _two_sensors(self) -> AssignRolesRequest:
        self.upper = normalise_address(self.upper) or ""
        self.lower = normalise_address(self.lower) or ""
        check_roles(self.upper, self.lower)
        return self


class TargetRequest(_Strict):
    """Either `level`, or an explicit `target_deg` with `tolerance_deg` (and optional `hold_s`)."""

    level: int | None = Field(None, ge=1, description="exercise level (from /api/levels)")
    target_deg: float | None = Field(
        None, gt=0.0, le=TARGET_MAX_DEG, description="explicit target lumbar flexion, degrees"
    )
    tolerance_deg: float | None = Field(
        None, ge=TOLERANCE_MIN_DEG, le=TOLERANCE_MAX_DEG, description="half-width of the band"
    )
    hold_s: float | None = Field(
        None, ge=0.0, le=HOLD_MAX_S, description="hold time; default: the current one"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> TargetRequest:
        explicit = (self.target_deg, self.tolerance_deg, self.hold_s)
        if self.level is not None and any(v is not None for v in explicit):
            raise ValueError("give either level or target_deg/tolerance_deg/hold_s, not both")
        if self.level is None:
            if self.target_deg is None or self.tolerance_deg is None:
                raise ValueError("give level, or both target_deg and tolerance_deg")
        return self


class LevelInfo(BaseModel):
    level: int
    share: float = Field(description="target as a share of the comfortable flexion")
    tolerance_deg: float
    hold_s: float
    reps_per_set: int
    min_time_to_target_s: float | None = None
    max_time_to_target_s: float | None = None


class ErrorResponse(BaseModel):
    detail: str | list[Any]


WS_MESSAGES: dict[str, type[BaseModel]] = {
    "frame": LiveFrame,
    "heartbeat": Heartbeat,
    "status": StatusMessage,
}


def json_schema(name: str) -> dict[str, Any]:
    """JSON Schema of a WebSocket message type, with `schema_version` recorded at the top."""
    model = WS_MESSAGES[name]
    schema = model.model_json_schema()
    schema["$id"] = f"/api/schema/{name}"
    schema["schema_version"] = SCHEMA_VERSION
    return schema
