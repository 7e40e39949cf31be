"""The edge's live relay: the local patient's live messages, forwarded to the central service
while online, so the therapist watches home practice live on the central therapist page.

The relay is one more client of the local broadcaster (api/fanout.py) on both of the patient's
topics (the therapist's full frames and the patient's view), so it gets what the local pages
get, through the same bounded, drop-oldest queue: a slow or stalled link to the central service
drops relayed frames (and is evicted like any stuck client), it never slows the live loop. Over
one WebSocket to `/ws/ingest/live` (device token in the Authorization header) each message goes
as `<audience>\\n<message>`; heartbeats stay local (the central service makes its own).

Offline, frames are simply not relayed (the recording uploads later, recordings/outbox.py);
the relay reconnects with capped, jittered backoff. On (re)connecting it sends the patient's
current status first, so the central page knows the session's state at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from api.edge_uploader import Backoff
from api.fanout import Broadcaster, audience_topics

log = logging.getLogger(__name__)

AUDIENCES = ("therapist", "patient")


class LiveRelay:
    def __init__(self, broadcaster: Broadcaster, patient_id: str, url: str, token: str, *,
                 backoff: Backoff, status_message: Callable[[], str] | None = None,
                 open_timeout_s: float = 10.0) -> None:
        self.broadcaster = broadcaster
        self.patient_id = patient_id
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"}
        self.backoff = backoff
        self.status_message = status_message
        self.open_timeout_s = open_timeout_s
        self.connected = False
        self.relayed = 0
        self.connections = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="lumbo-edge-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        while True:
            try:
                async with connect(self.url, additional_headers=self._headers,
                                   open_timeout=self.open_timeout_s, ping_interval=10,
                                   ping_timeout=10, close_timeout=2, max_queue=4,
                                   user_agent_header="lumbo-edge") as ws:
                    await self._relay(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - keep relaying whatever happened
                log.exception("live relay failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.connected = False
            await asyncio.sleep(self.backoff.next_s())  # a retry delay, not a synchronisation

    async def _relay(self, ws: Any) -> None:
        self.connected = True
        self.connections += 1
        self.backoff.reset()
        self.last_error = None

        async def close(code: int, reason: str) -> None:
            await ws.close(code, reason)

        def sender(audience: str) -> Callable[[str], Any]:
            async def send(message: str) -> None:
                if message.startswith('{"type":"heartbeat"'):
                    return
                await ws.send(f"{audience}\n{message}")
                self.relayed += 1
            return send

        clients = [self.broadcaster.add_client(sender(a), close, name="edge-relay", topic=t)
                   for a, t in zip(AUDIENCES, audience_topics(self.patient_id))]
        try:
            if self.status_message is not None:
                status = self.status_message()
                for audience in AUDIENCES:
                    await ws.send(f"{audience}\n{status}")
            async for _ in ws:  # the central service sends nothing; this ends when it closes
                pass
        finally:
            for c in clients:
                await self.broadcaster.remove_client(c, "relay disconnected")

    def as_dict(self) -> dict[str, Any]:
        return {"connected": self.connected, "relayed": self.relayed,
                "connections": self.connections, "last_error": self.last_error}
