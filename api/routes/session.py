"""`/api/session`: start, stop, retarget and inspect the live session."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from api import schema
from api.auth.deps import PatientSessions, patient_sessions, require_therapist
from api.routes.deps import get_roles, get_settings
from api.sensor_roles import SensorRoleStore
from api.settings import Settings
from api.sources import resolve_request

router = APIRouter(prefix="/api/session", tags=["session"])

# One patient's view of the SessionManager (api/auth/deps.py): every route here takes an
# optional `patient_id` and acts only on that patient's session.
Manager = Annotated[PatientSessions, Depends(patient_sessions)]

_errors: dict[int | str, dict[str, Any]] = {
    404: {"model": schema.ErrorResponse, "description": "No session has been started"},
}


@router.get("", response_model=schema.SessionStatus, summary="Current session status")
async def get_session(manager: Manager) -> schema.SessionStatus:
    """State, calibration, target, feedback, running set summary, completed sets and sensor
    health of the current session (`state: idle` and no `session_id` before the first one)."""
    return manager.status()


@router.post(
    "/start",
    response_model=schema.SessionStatus,
    summary="Start a live session",
    responses={
        409: {"model": schema.ErrorResponse, "description": "A session is already running"},
        400: {"model": schema.ErrorResponse, "description": "The source cannot be created"},
        422: {"description": "Invalid request, or `ble` without sensors given or remembered"},
    },
)
async def start_session(
    manager: Manager,
    settings: Annotated[Settings, Depends(get_settings)],
    roles: Annotated[SensorRoleStore, Depends(get_roles)],
    req: Annotated[schema.StartSessionRequest, Body()] = schema.StartSessionRequest(),
) -> schema.SessionStatus:
    """Start a session on the simulated patient (`source: simulated`) or on two BLE sensors
    (`{"source": "ble", "upper": ADDR, "lower": ADDR, "rate_hz": 100}`; without `upper` and
    `lower` the sensors remembered on this host are used, and they are remembered for next
    time). The session calibrates first (stand still, then one slow forward bend); the target
    for `level` follows from the comfortable flexion measured there. Frames flow on `/ws/live`;
    BLE sensors connect in the background (their progress is in `sensors`)."""
    await manager.start(resolve_request(req, settings, roles))
    return manager.status()


@router.post(
    "/stop", response_model=schema.SessionStatus, summary="Stop the session", responses=_errors
)
async def stop_session(manager: Manager) -> schema.SessionStatus:
    """Stop the source cleanly; the final status keeps the summary. Stopping a session that
    has already ended is not an error."""
    await manager.stop()
    return manager.status()


@router.put(
    "/target",
    response_model=schema.SessionStatus,
    summary="Change the exercise level or set an explicit target",
    dependencies=[Depends(require_therapist)],  # the therapist prescribes the target
    responses={
        **_errors,
        409: {"model": schema.ErrorResponse, "description": "The session is no longer live"},
    },
)
async def put_target(manager: Manager, req: schema.TargetRequest) -> schema.SessionStatus:
    """Either `{"level": n}` (the target follows from the calibration; before calibration it is
    applied once calibrated) or `{"target_deg": x, "tolerance_deg": y, "hold_s": z}`. The patient
    page follows through the next frames."""
    manager.get_active().set_target(
        level=req.level, target_deg=req.target_deg, tolerance_deg=req.tolerance_deg, hold_s=req.hold_s
    )
    return manager.status()


@router.get(
    "/summary",
    response_model=schema.SessionSummary,
    summary="Set summaries of the session",
    responses=_errors,
)
async def get_summary(manager: Manager) -> schema.SessionSummary:
    """The running set's summary and every completed set's summary."""
    session = manager.get()
    return schema.SessionSummary(
        session_id=session.session_id,
        state=session.state,  # type: ignore[arg-type]
        current=session.summary(),
        sets=session.completed_sets,
    )
