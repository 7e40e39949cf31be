"""`/ws/live`: the live stream (frames, heartbeats, status messages) of the current session."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.auth.live import live_access, signed_in_while_open
from api.broker import live_status_message, watching
from api.fanout import audience_topic

router = APIRouter(tags=["live"])

POLICY_VIOLATION = 1008


def origin_allowed(websocket: WebSocket) -> bool:
    """Browsers cannot send an Authorization header on a WebSocket, so at least refuse pages
    from other sites (cross-site WebSocket hijacking): the Origin's host must be this host or
    an explicitly allowed origin. Clients that send no Origin (not browsers) are let in."""
    origin = websocket.headers.get("origin")
    if not origin:
        return True
    if origin in websocket.app.state.settings.allowed_origins:
        return True
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


@router.websocket("/ws/live")
async def ws_live(websocket: WebSocket) -> None:
    """Messages: `frame` (about 50/s), `heartbeat` (each second without frames), `status` (on
    connect and on every session state change); schemas at `/api/schema/{type}`. Messages the
    client sends are ignored (keep-alive). Needs a sign-in (the session cookie, from this
    site's pages); delivers one patient's live session: the patient's own, or for their
    therapist `?patient_id=...` (optional with a single patient). The therapist gets the full
    frames; the patient gets their view of each frame (no therapist-only fields, no position
    while the practice block withholds it: api/audience.py)."""
    if not origin_allowed(websocket):
        await websocket.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    access = await live_access(websocket)  # refuses the WebSocket itself when not allowed
    if access is None:
        return
    principal, patient = access
    await websocket.accept()
    manager = websocket.app.state.manager
    broadcaster = manager.broadcaster

    async def close(code: int, reason: str) -> None:
        await websocket.close(code=code, reason=reason)

    audience = "therapist" if principal.account.role == "therapist" else "patient"
    client = broadcaster.add_client(websocket.send_text, close, name=str(websocket.client),
                                    topic=audience_topic(patient.id, audience))
    # with a broker (api/broker.py): the status of the instance that runs the session, and
    # the topic's messages from other instances while this client is open
    broadcaster.offer(client, live_status_message(websocket.app, client.topic))
    try:
        async with signed_in_while_open(websocket, principal, close), \
                watching(websocket.app, client.topic):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await broadcaster.remove_client(client)
