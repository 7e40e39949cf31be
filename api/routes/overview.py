"""All of a therapist's live sessions at a glance: `GET /api/live/sessions` (a snapshot) and
`WS /ws/overview` (the same, pushed about 4 times a second). Therapists only; a therapist sees
the live sessions of their own patients and of no one else (api/overview.py builds the tiles).

The WebSocket authenticates as `/ws/live` does: the session cookie (the middleware resolves it)
plus this site's Origin; a refused handshake is answered 401 (no sign-in), 403 (another Origin,
or a patient's sign-in); it is closed (1008) when the sign-in ends. Each connection has its own
sender loop; a send that does not complete within `SEND_TIMEOUT_S` closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from starlette.responses import JSONResponse

from api import schema
from api.auth.deps import get_auth, require_therapist
from api.auth.live import signed_in_while_open
from api.auth.middleware import PRINCIPAL
from api.overview import OVERVIEW_PERIOD_S, FrameClock, LiveOverview, overview
from api.routes.live import origin_allowed
from recordings.accounts import Account

router = APIRouter(tags=["live"])

POLICY_VIOLATION = 1008
SEND_TIMEOUT_S = 5.0
PATIENTS_REFRESH_S = 1.0  # a patient added meanwhile appears within this


@router.get("/api/live/sessions", response_model=LiveOverview,
            summary="Your patients' live sessions at a glance",
            responses={403: {"model": schema.ErrorResponse,
                             "description": "Only a therapist can do this"}})
async def live_sessions(request: Request,
                        therapist: Account = Depends(require_therapist)) -> LiveOverview:
    """One tile per live session of the signed-in therapist's patients: patient, state and
    calibration phase, current angles, repetitions, exercise and level, sensor health, live
    viewers. `WS /ws/overview` pushes the same about 4 times a second."""
    clock = request.app.state.overview_clock
    return overview(request.app.state.manager, get_auth(request).patients_of(therapist), clock)


async def _deny(websocket: WebSocket, status: int, detail: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    else:
        await websocket.close(code=POLICY_VIOLATION, reason=detail[:120])


@router.websocket("/ws/overview")
async def ws_overview(websocket: WebSocket) -> None:
    """`overview` messages (the `GET /api/live/sessions` document) about 4 times a second, for
    the signed-in therapist's patients. Messages the client sends are ignored."""
    if not origin_allowed(websocket):
        await _deny(websocket, 403, "origin not allowed")
        return
    principal = websocket.scope.get(PRINCIPAL)
    if principal is None:
        await _deny(websocket, 401, "Sign in first.")
        return
    if principal.account.role != "therapist":
        await _deny(websocket, 403, "Only a therapist can do this.")
        return
    await websocket.accept()
    auth = get_auth(websocket)
    manager = websocket.app.state.manager
    therapist = principal.account

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)

    async def push() -> None:
        clock = FrameClock()  # this connection's own view of frame ages
        patients, fetched = auth.patients_of(therapist), time.monotonic()
        while True:
            if time.monotonic() - fetched >= PATIENTS_REFRESH_S:
                patients, fetched = auth.patients_of(therapist), time.monotonic()
            text = overview(manager, patients, clock).model_dump_json()
            await asyncio.wait_for(websocket.send_text(text), timeout=SEND_TIMEOUT_S)
            await asyncio.sleep(OVERVIEW_PERIOD_S)  # the push period, not a synchronisation

    async def drain() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    try:
        async with signed_in_while_open(websocket, principal, close):
            tasks = [asyncio.ensure_future(push()), asyncio.ensure_future(drain())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await close(1000, "done")


def install(app: FastAPI) -> None:
    """The REST snapshot's frame clock (`app.state.overview_clock`) and the routes."""
    app.state.overview_clock = FrameClock()
    app.include_router(router)
