"""Edge mode on the central service: `/api/ingest` (uploads), `/ws/ingest/live` (the live
relay) and a patient's device tokens (`/api/patients/{id}/device-tokens`).

Who may do what (the middleware puts an edge's device in the scope, api/auth/devices.py):
- uploading (`PUT`/`POST` under `/api/ingest/sessions`, the live relay): a device token only,
  and only into its own patient's records; a signed-in person is answered 403;
- an upload's cursor (`GET .../cursor`): the device, or the patient and their therapist;
  anyone else's session is answered 404, as if it did not exist;
- device tokens: the patient's therapist (others: 404, a patient: 403).

The store work (recordings/ingest.py) runs in worker threads, never on the event loop. A chunk
body is read with a size bound (413 beyond `MAX_CHUNK_BYTES`) and fully validated before
anything is stored (400).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.responses import Response

from api.auth.deps import (
    PATIENT_ID_MAX,
    current_account,
    get_auth,
    require_therapist,
    visible_patient,
)
from api.auth.devices import Device
from api.auth.middleware import DEVICE, PRINCIPAL
from api.edge_models import (
    SESSION_ID_PATTERN,
    ChunkAck,
    DeviceInfo,
    DeviceTokenCreated,
    DeviceTokenOut,
    DeviceTokenRequest,
    EndRequest,
    IngestConflictOut,
    Revoked,
    RevokeRequest,
    SessionAnnounce,
    StreamOut,
    UploadState,
)
from api.fanout import audience_topic
from api.schema import ErrorResponse
from recordings.accounts import Account
from recordings.chunks import MAX_CHUNK_BYTES, MEDIA_TYPE, ChunkError, decode_chunk
from recordings.errors import StorageError
from recordings.ingest import Ingest, IngestConflict, IngestError, IngestState, SessionMeta
from recordings.models import SensorInfo

router = APIRouter(tags=["edge mode"])
MAX_RELAY_MESSAGE_CHARS = 512 << 10
RELAY_RECHECK_S = 30.0  # an open relay re-checks its device token this often
RELAY_TYPES = ("frame", "status")
POLICY_VIOLATION = 1008

SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="the edge's session id")]
PatientId = Annotated[str, Path(max_length=PATIENT_ID_MAX, description="the patient's id")]

_upload_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No device token, or revoked"},
    403: {"model": ErrorResponse, "description": "Only an edge device (device token) uploads"},
    404: {"model": ErrorResponse, "description": "No such uploaded session of this patient"},
    409: {"model": IngestConflictOut, "description": "Out of order or incomplete: the cursor "
          "says what the central service expects"},
    503: {"model": ErrorResponse, "description": "Recordings are not available on this server"},
}


# --- who -------------------------------------------------------------------------------------

def require_device(request: Request) -> Device:
    device = request.scope.get(DEVICE)
    if device is not None:
        return device
    if request.scope.get(PRINCIPAL) is not None:
        raise HTTPException(403, "Only an edge device uploads: use the patient's device token "
                                 "(lumbo create-device-token).")
    raise HTTPException(401, "Sign in first: the ingest routes need a device token "
                             "(Authorization: Bearer ...).")


Edge = Annotated[Device, Depends(require_device)]


def _ingest(request: Request | WebSocket) -> Ingest:
    ingest = getattr(request.app.state, "ingest", None)
    if ingest is None:
        recordings = request.app.state.recordings
        store = recordings.open()
        if store is None:
            why = "recording is off on this server" if not recordings.enabled else str(
                recordings.error or "the recordings database cannot be opened")
            raise HTTPException(503, f"Uploads are not possible: {why}.")
        ingest = request.app.state.ingest = Ingest(store)
        ingest.resume()
    return ingest


async def _run(fn: Any, *args: Any) -> Any:
    """The store call in a worker thread; its refusals as HTTP answers."""
    try:
        return await asyncio.to_thread(fn, *args)
    except IngestConflict as exc:
        raise _Conflict(exc) from None
    except IngestError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except StorageError as exc:
        raise HTTPException(503, f"The central service cannot store this now: {exc}") from None


class _Conflict(Exception):
    def __init__(self, exc: IngestConflict) -> None:
        self.exc = exc


def _state(s: IngestState) -> UploadState:
    return UploadState(session_id=s.session_id, state=s.state,  # type: ignore[arg-type]
                       status=s.status, edge_status=s.edge_status,  # type: ignore[arg-type]
                       streams={k: StreamOut(next_seq=v.next_seq, last_item_id=v.last_item_id,
                                             items=v.items) for k, v in sorted(s.streams.items())})


# --- uploads ---------------------------------------------------------------------------------

@router.get("/api/ingest/me", response_model=DeviceInfo, summary="Whose device token this is",
            responses={k: _upload_errors[k] for k in (401, 403)})
async def whoami(device: Edge) -> DeviceInfo:
    """The patient the device token is bound to (an edge checks this when it starts)."""
    p = device.patient
    return DeviceInfo(device_id=device.id, patient_id=p.id, username=p.username,
                      display_name=p.display_name)


@router.put("/api/ingest/sessions/{session_id}", response_model=UploadState,
            summary="Announce an uploaded session (idempotent)", responses=_upload_errors)
async def announce(session_id: SessionId, req: SessionAnnounce, device: Edge,
                   request: Request) -> UploadState:
    """Create the session under the edge's id and the device's patient, or find it again
    (every reconnection repeats this); sensors it did not have yet are added. The answer is
    the cursor: per stream, the next chunk number and the edge's id of the last item stored."""
    meta = SessionMeta(started_at=req.started_at, time_origin_s=req.time_origin_s,
                       source=req.source, notes=req.notes,
                       sensors=tuple(SensorInfo(s.role, s.family, s.device_name, s.address,
                                                s.nominal_rate_hz) for s in req.sensors))
    state = await _run(_ingest(request).open_session, session_id, device.patient.id, device.id,
                       meta)
    return _state(state)


@router.get("/api/ingest/sessions/{session_id}/cursor", response_model=UploadState,
            summary="Upload state of a session", responses=_upload_errors)
async def cursor(session_id: SessionId, request: Request) -> UploadState:
    """Where an upload stands: for the edge (its device token) to resume, for the patient and
    their therapist to see what has arrived."""
    device: Device | None = request.scope.get(DEVICE)
    if device is not None:
        patients: set[str] = {device.patient.id}
    else:
        principal = request.scope.get(PRINCIPAL)
        if principal is None:
            raise HTTPException(401, "Sign in first.")
        account: Account = principal.account
        patients = {account.id} if account.role == "patient" else {
            p.id for p in get_auth(request).patients_of(account)}
    return _state(await _run(_ingest(request).state, session_id, patients))


@router.post(
    "/api/ingest/sessions/{session_id}/chunks", response_model=ChunkAck,
    summary="Upload one chunk of one stream", responses={
        **_upload_errors,
        400: {"model": ErrorResponse, "description": "Malformed chunk: nothing stored"},
        413: {"model": ErrorResponse, "description": "Chunk too large"}},
    openapi_extra={"requestBody": {"required": True, "content": {MEDIA_TYPE: {
        "schema": {"type": "string", "format": "binary"}}},
        "description": "recordings/chunks.py: the next rows of one stream, numbered `seq`"}})
async def post_chunk(session_id: SessionId, device: Edge, request: Request) -> ChunkAck:
    """Store the chunk if it is the next of its stream; a chunk already stored (re-sent after
    a lost answer) is acknowledged with `duplicate: true` and stored nothing; one ahead of the
    next is refused (409, `expected_seq`)."""
    body = await _read_body(request)
    try:
        chunk = await asyncio.to_thread(decode_chunk, body)
    except ChunkError as exc:
        raise HTTPException(400, f"Malformed chunk: {exc}") from None
    r = await _run(_ingest(request).apply, session_id, device.patient.id, chunk)
    return ChunkAck(stream=r.stream, seq=r.seq, duplicate=r.duplicate, next_seq=r.next_seq,
                    last_item_id=r.last_item_id, items=r.items)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CHUNK_BYTES:
        raise HTTPException(413, f"A chunk has at most {MAX_CHUNK_BYTES} bytes.")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_CHUNK_BYTES:
            raise HTTPException(413, f"A chunk has at most {MAX_CHUNK_BYTES} bytes.")
        parts.append(part)
    return b"".join(parts)


@router.post("/api/ingest/sessions/{session_id}/end", response_model=UploadState,
             summary="The edge's session ended", responses=_upload_errors)
async def end(session_id: SessionId, req: EndRequest, device: Edge,
              request: Request) -> UploadState:
    """Set the final status once every stream holds all the chunks the edge sent (`streams`);
    otherwise 409 with the first stream that lacks some. Repeating it changes nothing."""
    state = await _run(_ingest(request).end, session_id, device.patient.id, req.status,
                       req.ended_at, req.streams)
    return _state(state)


# --- the live relay ----------------------------------------------------------------------------

@router.websocket("/ws/ingest/live")
async def relay(websocket: WebSocket) -> None:
    """An edge's live messages for its patient's viewers on this service. Each text message is
    `<audience>\\n<message>`: audience `therapist` or `patient` (the broadcaster topic it goes
    to, api/fanout.py) and a live `frame` or `status` message as the edge published it. Needs
    the device token (Authorization header); anything else is dropped."""
    device: Device | None = websocket.scope.get(DEVICE)
    if device is None:
        status = 403 if websocket.scope.get(PRINCIPAL) is not None else 401
        detail = "Only an edge device relays live frames." if status == 403 else "Sign in first."
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(JSONResponse({"detail": detail},
                                                              status_code=status))
        else:
            await websocket.close(code=POLICY_VIOLATION, reason=detail)
        return
    await websocket.accept()
    broadcaster = websocket.app.state.manager.broadcaster
    devices = get_auth(websocket).devices
    patient_id = device.patient.id
    checked = time.monotonic()
    with contextlib.suppress(Exception):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if time.monotonic() - checked > RELAY_RECHECK_S:
                checked = time.monotonic()
                if not await asyncio.to_thread(_still_valid, devices, device):
                    await websocket.close(code=POLICY_VIOLATION, reason="device token revoked")
                    break
            text = message.get("text")
            if not text or len(text) > MAX_RELAY_MESSAGE_CHARS:
                continue
            audience, _, body = text.partition("\n")
            if audience in ("therapist", "patient") and _relayable(body):
                topic = audience_topic(patient_id, audience)  # type: ignore[arg-type]
                broadcaster.publish(body, topic=topic)


def _relayable(body: str) -> bool:
    try:
        msg = json.loads(body)
    except ValueError:
        return False
    return isinstance(msg, dict) and msg.get("type") in RELAY_TYPES and \
        msg.get("schema_version") == 1


def _still_valid(devices: Any, device: Device) -> bool:
    try:
        token = devices.get(device.id)
        patient = devices.store.get(device.patient.id)
    except Exception:  # noqa: BLE001 - gone: not valid
        return False
    return token.active and patient.active


# --- device tokens (the therapist) ---------------------------------------------------------

def own_patient(patient_id: PatientId, request: Request,
                therapist: Annotated[Account, Depends(require_therapist)]) -> Account:
    return visible_patient(get_auth(request), therapist, patient_id)


OwnPatient = Annotated[Account, Depends(own_patient)]
_token_errors: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "Only a therapist can do this"},
    404: {"model": ErrorResponse, "description": "No such patient, or not yours"},
}


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(
        timespec="seconds")


def _token_out(t: Any) -> dict[str, Any]:
    return {"id": t.id, "patient_id": t.patient_id, "label": t.label,
            "created_at": _iso(t.created_at), "last_used_at": _iso(t.last_used_at),
            "revoked_at": _iso(t.revoked_at), "active": t.active}


@router.get("/api/patients/{patient_id}/device-tokens", response_model=list[DeviceTokenOut],
            summary="A patient's device tokens", responses=_token_errors)
async def list_device_tokens(patient: OwnPatient, request: Request) -> list[DeviceTokenOut]:
    """The edge devices of one of your patients (never the tokens themselves)."""
    tokens = await asyncio.to_thread(get_auth(request).devices.of_patient, patient.id)
    return [DeviceTokenOut(**_token_out(t)) for t in tokens]


@router.post("/api/patients/{patient_id}/device-tokens", response_model=DeviceTokenCreated,
             status_code=201, summary="A device token for a patient's edge",
             responses=_token_errors)
async def create_device_token(
    patient: OwnPatient, request: Request,
    therapist: Annotated[Account, Depends(current_account)],
    req: Annotated[DeviceTokenRequest, Body()] = DeviceTokenRequest(),
) -> DeviceTokenCreated:
    """A long-lived token for `lumbo edge --token-file` on the patient's machine: it uploads
    into this patient's records and can do nothing else. Shown once; revoke it when the
    machine is lost or replaced."""
    token, rec = await asyncio.to_thread(get_auth(request).devices.create, patient, req.label,
                                         therapist.id)
    return DeviceTokenCreated(token=token, **_token_out(rec))


@router.post("/api/patients/{patient_id}/device-tokens/revoke", response_model=Revoked,
             summary="Revoke a device token", responses=_token_errors)
async def revoke_device_token(patient: OwnPatient, req: RevokeRequest,
                              request: Request) -> Revoked:
    """The token stops working at once (uploads and the live relay); what it uploaded stays."""
    done = await asyncio.to_thread(get_auth(request).devices.revoke, patient.id, req.id)
    return Revoked(revoked=done)


# --- wiring ----------------------------------------------------------------------------------

def install(app: FastAPI) -> None:
    """Add the routes; at start-up, resume the uploads a restart left `uploading`; at shutdown
    release their locks. Needs `app.state.recordings` (api/routes/recordings.py)."""

    async def conflict(request: Request, exc: Exception) -> Response:
        err = exc.exc  # type: ignore[attr-defined]
        return JSONResponse(status_code=409, content={
            "detail": str(err), "stream": err.stream, "expected_seq": err.expected_seq})

    app.add_exception_handler(_Conflict, conflict)
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            recordings = getattr(a.state, "recordings", None)
            if recordings is not None and recordings.store is not None and \
                    getattr(a.state, "ingest", None) is None:
                ingest = Ingest(recordings.store)
                try:
                    await asyncio.to_thread(ingest.resume)
                except StorageError:
                    pass  # the first upload tries again
                else:
                    a.state.ingest = ingest
            try:
                yield state
            finally:
                ingest = getattr(a.state, "ingest", None)
                if ingest is not None:
                    ingest.close()
                    a.state.ingest = None

    app.router.lifespan_context = lifespan
