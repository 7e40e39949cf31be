"""Access to `/ws/live`: which patient's live topic a WebSocket may receive, for how long.

Browsers cannot put an Authorization header on a WebSocket, so the session cookie (checked with
the Origin by the middleware) identifies the viewer; no token ever goes in the URL. A WebSocket
receives one patient's topic: the patient's own, or for a therapist the patient named by
`?patient_id=` (optional with exactly one patient). It is closed (code 1008) as soon as its
sign-in is ended (sign-out, password change, account disabled) and, at the latest, when the
sign-in expires; an open live page counts as activity for the idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import HTTPException, WebSocket
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from api.auth.deps import get_auth, visible_patient
from api.auth.middleware import PRINCIPAL
from api.auth.service import Principal
from recordings.accounts import Account

POLICY_VIOLATION = 1008


async def _deny(websocket: WebSocket, status: int, detail: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    else:
        await websocket.close(code=POLICY_VIOLATION, reason=detail[:120])


async def live_access(websocket: WebSocket) -> tuple[Principal, Account] | None:
    """(viewer, patient whose topic it gets), or None after refusing the WebSocket."""
    principal: Principal | None = websocket.scope.get(PRINCIPAL)
    if principal is None:
        await _deny(websocket, 401, "Sign in first.")
        return None
    patient_id = websocket.query_params.get("patient_id") or None
    try:
        patient = visible_patient(get_auth(websocket), principal.account, patient_id)
    except HTTPException as exc:
        await _deny(websocket, exc.status_code, str(exc.detail))
        return None
    except RequestValidationError as exc:
        await _deny(websocket, 422, "; ".join(str(e.get("msg")) for e in exc.errors()))
        return None
    return principal, patient


@contextlib.asynccontextmanager
async def signed_in_while_open(
    websocket: WebSocket, principal: Principal, close: Callable[[int, str], Awaitable[None]]
) -> AsyncIterator[None]:
    auth = get_auth(websocket)
    ended = auth.watch(principal)
    recheck_s = auth.settings.live_recheck_s

    async def guard() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), timeout=recheck_s)
            if ended.is_set() or not auth.still_valid(principal):
                with contextlib.suppress(Exception):
                    await close(POLICY_VIOLATION, "signed out")
                return

    task = asyncio.get_running_loop().create_task(guard(), name="lumbo-ws-signin-guard")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        auth.unwatch(principal, ended)
