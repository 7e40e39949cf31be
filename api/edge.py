"""Edge mode (`lumbo edge`): the patient's machine runs the service as `lumbo serve` does (patient
page on localhost, BLE sensors or the simulated patient, every session recorded locally) and
forwards every session of its patient to a central service.

- The local store is the buffer: the uploader (api/edge_uploader.py) sends each session's raw
  samples (bit for bit), angles, events, calibrations, reports and final status in the
  background, chunk by chunk, exactly once, from wherever it stopped (link cut, edge restarted).
- While online the live relay (api/edge_relay.py) forwards the live frames to the central
  service, whose therapist page shows them on the patient's topic.
- The edge authenticates with a device token bound to one patient on the central service
  (api/auth/devices.py); whatever it uploads lands in that patient's records.

Locally the sessions belong to one local account, `EdgeSettings.patient` ("home-patient"),
created here if missing (a patient of a local `edge-admin` therapist; neither has a password:
the patient page opens with a one-time link, printed at start and by `lumbo login-link`).
Only that account's sessions are uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from api.edge_client import CentralClient
from api.edge_relay import LiveRelay
from api.edge_uploader import Backoff, Uploader
from recordings.accounts import Account

log = logging.getLogger(__name__)

EDGE_THERAPIST = "edge-admin"
router = APIRouter(tags=["edge mode"])


class EdgeStatus(BaseModel):
    """This edge's upload and relay (`GET /api/edge/status`)."""

    central: str
    patient: str = Field(description="the local account whose sessions are uploaded")
    central_patient: str | None = Field(description="the patient account on the central "
                                        "service the device token uploads into (null: not "
                                        "reached yet)")
    online: bool | None = Field(description="the last upload pass reached the central service "
                                "(null: not tried yet)")
    last_error: str | None
    chunks_sent: int
    duplicates: int = Field(description="chunks the central service already had (an answer "
                            "lost on the way)")
    bytes_sent: int
    samples_sent: int
    sessions_ended: int
    pending_sessions: int = Field(description="sessions not yet fully uploaded")
    last_ack_at: str | None
    backlog: dict[str, int] = Field(description="stored here, not yet acknowledged: sessions, "
                                    "sample_blocks, samples, streams_behind")
    relay: dict[str, Any] | None


def ensure_local_patient(auth: Any, username: str) -> Account:
    """The local patient whose sessions the edge uploads (created with its local therapist if
    missing; no passwords: one-time links sign them in)."""
    patient = auth.store.by_username(username)
    if patient is not None:
        if patient.role != "patient":
            raise RuntimeError(f"the local account {username!r} is not a patient: choose "
                               "another with --patient")
        return patient
    therapist = auth.store.by_username(EDGE_THERAPIST)
    if therapist is None:
        therapist = auth.create_therapist(EDGE_THERAPIST, None, "This edge's administrator")
    return auth.create_patient(username, therapist.id, None, username)


@router.get("/api/edge/status", response_model=EdgeStatus, summary="This edge's uploads")
async def edge_status(request: Request) -> EdgeStatus:
    """What has been uploaded to the central service, what is still waiting here, and whether
    the live relay is connected."""
    edge: EdgeRuntime = request.app.state.edge
    backlog = await asyncio.to_thread(edge.uploader.backlog) if edge.uploader else {}
    stats = edge.uploader.stats.as_dict() if edge.uploader else {}
    stats.pop("refused", None)
    return EdgeStatus(central=edge.central, patient=edge.patient.username,
                      **{k: stats.get(k) for k in (
                          "online", "last_error", "last_ack_at", "central_patient")},
                      **{k: int(stats.get(k) or 0) for k in (
                          "chunks_sent", "duplicates", "bytes_sent", "samples_sent",
                          "sessions_ended", "pending_sessions")},
                      backlog=backlog, relay=None if edge.relay is None else edge.relay.as_dict())


class EdgeRuntime:
    """The uploader and the relay of one app (`app.state.edge`)."""

    def __init__(self, app: FastAPI) -> None:
        settings = app.state.settings
        edge = settings.edge
        self.settings = edge
        self.central = edge.central_url
        self.patient = ensure_local_patient(app.state.auth, edge.patient)
        token = edge.token.get_secret_value()
        location = settings.database() if hasattr(settings, "database") else settings.data_dir
        self.uploader: Uploader | None = None
        if location is None:
            log.error("edge mode without a recordings store: nothing will be uploaded")
        else:
            client = CentralClient(edge.central_url, token, timeout_s=edge.request_timeout_s)
            self.uploader = Uploader(
                location, client, patient_id=self.patient.id, poll_s=edge.poll_s,
                backoff_base_s=edge.backoff_base_s, backoff_cap_s=edge.backoff_cap_s,
                max_items=edge.chunk_max_items, max_bytes=edge.chunk_max_bytes, seed=edge.seed,
                busy=lambda: _live(app.state.manager))
        self.relay: LiveRelay | None = None
        if edge.relay:
            import random

            manager = app.state.manager
            rng = random.Random(None if edge.seed is None else edge.seed + 1)
            self.relay = LiveRelay(
                manager.broadcaster, self.patient.id, edge.ws_url(), token,
                backoff=Backoff(edge.backoff_base_s, edge.backoff_cap_s, rng),
                status_message=lambda: manager.status_message(self.patient.id))

    def start(self) -> None:
        if self.uploader is not None:
            self.uploader.start()
        if self.relay is not None:
            self.relay.start()

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        if self.uploader is not None:
            await asyncio.to_thread(self.uploader.stop)


def _live(manager: Any) -> bool:
    """Whether a live session runs here (read from the uploader's thread: `list` copies the
    dict's values in one step under the GIL)."""
    return any(s.active for s in list(manager.sessions.values()))


def install_edge(app: FastAPI) -> EdgeRuntime:
    """Edge mode for `app` (needs `app.state.settings.edge`, the accounts and recordings): the
    status route; the uploader and the relay run while the app does."""
    runtime = EdgeRuntime(app)
    app.state.edge = runtime
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            runtime.start()
            try:
                yield state
            finally:
                with contextlib.suppress(Exception):
                    await runtime.stop()

    app.router.lifespan_context = lifespan
    return runtime
