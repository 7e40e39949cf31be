"""Fan-out of live messages to WebSocket clients without letting one slow client stall anyone.

A loop that awaits each client's send in turn is held up by its slowest client. Here `publish`
never awaits: every client has a bounded queue and its own sender task. When a client's queue is
full, its oldest message is dropped (the display wants the newest angle, not a backlog) and the
drop is counted. A client whose send has not completed for `evict_after_s` while messages wait is
evicted (its connection closed), so a dead peer that TCP has not noticed yet cannot pin memory.

`tick()` drives the application heartbeat and eviction; `run_heartbeat()` calls it every
`heartbeat_s`. Both take an injectable clock so tests are deterministic.

Topics keep live sessions apart: a client added with `topic=T` receives only what is published
with `topic=T`, and its own heartbeat (`heartbeat(T)`) whenever nothing was published on T for
`heartbeat_s`. Clients and messages without a topic form one more topic, `None`. Clients are
indexed by topic, so a publish costs one queue put per client of that topic, whatever else is
connected.

Topic names (api/live.py publishes, api/routes/live.py subscribes), one pair per patient:

- `"<patient_id>"` (`audience_topic(pid, "therapist")`): the therapist's clients: full frames;
- `"<patient_id>/patient"` (`audience_topic(pid, "patient")`): the patient's own clients: each
  frame's patient view (api/audience.py: no therapist-only fields, no position the current
  practice block hides).

Each frame is serialised once per audience, not once per client; status messages go to both
topics, heartbeats to each topic with clients. `topic_patient(topic)` gives the patient of
either topic. A relay between service instances relays both topics of a patient.

Public API (kept stable for such relays): `add_client(send, close, name=, topic=)`,
`publish(message, topic=)`, `topic_clients(topic)`, `offer(client, message)`,
`remove_client(client)`, `clients`, `tick()`, `run_heartbeat()`, `close_all()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]

EVICT_CLOSE_CODE = 1013  # "try again later": the client fell too far behind

Audience = Literal["therapist", "patient"]
PATIENT_TOPIC_SUFFIX = "/patient"  # patient ids never contain "/" (api/auth, recordings)


def audience_topic(patient_id: str, audience: Audience) -> str:
    """The topic of one patient's live frames for one audience (see the module docstring)."""
    return patient_id + PATIENT_TOPIC_SUFFIX if audience == "patient" else patient_id


def audience_topics(patient_id: str) -> tuple[str, str]:
    """Both topics of a patient: (therapist, patient)."""
    return patient_id, patient_id + PATIENT_TOPIC_SUFFIX


def topic_patient(topic: str | None) -> str | None:
    """The patient whose live topic `topic` is (either audience); None for topic None."""
    if topic is not None and topic.endswith(PATIENT_TOPIC_SUFFIX):
        return topic[: -len(PATIENT_TOPIC_SUFFIX)]
    return topic


@dataclass(eq=False)
class Client:
    """One subscriber: its queue, its sender task and its counters."""

    id: int
    name: str
    queue: asyncio.Queue[str]
    send: Send
    close: Close | None
    sent: int = 0
    dropped: int = 0
    last_send_done_s: float = 0.0
    sending_since_s: float | None = None  # set while a send is in flight
    closed: bool = False
    close_reason: str = ""
    topic: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def stats(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "queued": self.queue.qsize(),
            "sent": self.sent,
            "dropped": self.dropped,
            "closed": self.closed,
            "topic": self.topic,
        }


class Broadcaster:
    """Bounded per-client queues, drop-oldest, eviction of stuck clients, heartbeat."""

    def __init__(
        self,
        *,
        queue_size: int = 64,
        evict_after_s: float = 10.0,
        heartbeat_s: float = 1.0,
        heartbeat: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = queue_size
        self.evict_after_s = evict_after_s
        self.heartbeat_s = heartbeat_s
        self.heartbeat_message = heartbeat
        # called with (message, topic) after every `publish` (not `deliver`); must not block
        self.taps: list[Callable[[str, str | None], None]] = []
        self._clock = clock
        self._ids = itertools.count(1)
        self._clients: dict[int, Client] = {}
        self._by_topic: dict[str | None, dict[int, Client]] = {}  # the same clients, by topic
        self.last_publish_s = clock()  # of topic None
        self._topic_last_s: dict[str, float] = {}
        self.published = 0
        self.dropped_total = 0
        self.evicted_total = 0

    # ------------------------------------------------------------------ clients

    @property
    def clients(self) -> list[Client]:
        return list(self._clients.values())

    def add_client(
        self, send: Send, close: Close | None = None, name: str = "", topic: str | None = None
    ) -> Client:
        """Register a client and start its sender task (needs a running event loop)."""
        client = Client(
            id=next(self._ids),
            name=name,
            queue=asyncio.Queue(maxsize=self.queue_size),
            send=send,
            close=close,
            last_send_done_s=self._clock(),
            topic=topic,
        )
        client.task = asyncio.get_running_loop().create_task(
            self._sender(client), name=f"lumbo-ws-sender-{client.id}"
        )
        self._clients[client.id] = client
        self._by_topic.setdefault(topic, {})[client.id] = client
        return client

    def _forget(self, client: Client) -> None:
        self._clients.pop(client.id, None)
        members = self._by_topic.get(client.topic)
        if members is not None:
            members.pop(client.id, None)
            if not members:
                del self._by_topic[client.topic]

    async def remove_client(self, client: Client, reason: str = "disconnected") -> None:
        self._forget(client)
        if not client.closed:
            client.closed = True
            client.close_reason = reason
        task = client.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close_all(self) -> None:
        for client in self.clients:
            await self._evict(client, 1001, "server shutting down")

    # ------------------------------------------------------------------ publishing

    def publish(self, message: str, topic: str | None = None) -> None:
        """Queue `message` for every client of `topic`, then hand it to every tap (`taps`: e.g.
        the broker relay, api/broker.py); never awaits, never blocks the producer."""
        self.deliver(message, topic)
        for tap in self.taps:
            tap(message, topic)

    def deliver(self, message: str, topic: str | None = None) -> None:
        """Queue `message` for this broadcaster's own clients of `topic` only, without the taps:
        for messages that came from elsewhere (another instance's session, via the broker)."""
        if topic is None:
            self.last_publish_s = self._clock()
        else:
            self._topic_last_s[topic] = self._clock()
        self.published += 1
        members = self._by_topic.get(topic)
        if members:
            for client in list(members.values()):
                self.offer(client, message)

    def topic_clients(self, topic: str | None) -> list[Client]:
        return list(self._by_topic.get(topic, {}).values())

    def offer(self, client: Client, message: str) -> None:
        """Queue one message for one client, dropping its oldest queued message if full."""
        if client.closed:
            return
        while True:
            try:
                client.queue.put_nowait(message)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    client.queue.get_nowait()
                    client.dropped += 1
                    self.dropped_total += 1

    # ------------------------------------------------------------------ heartbeat, eviction

    def stuck_clients(self) -> list[Client]:
        """Clients whose current send has been in flight for longer than `evict_after_s`."""
        now = self._clock()
        return [
            c
            for c in self._clients.values()
            if c.sending_since_s is not None and now - c.sending_since_s > self.evict_after_s
        ]

    async def tick(self) -> None:
        """Evict stuck clients; send a heartbeat when nothing was published for a while."""
        for client in self.stuck_clients():
            log.warning("evicting live client %s: stuck for > %.1f s", client.id, self.evict_after_s)
            self.evicted_total += 1
            await self._evict(client, EVICT_CLOSE_CODE, "client too slow")
        if (
            self.heartbeat_message is not None
            and self._clock() - self.last_publish_s >= self.heartbeat_s
        ):
            msg = self.heartbeat_message()
            self.last_publish_s = self._clock()
            for client in self.topic_clients(None):
                self.offer(client, msg)
        if self.heartbeat_message is not None:
            self._topic_heartbeats()

    def _topic_heartbeats(self) -> None:
        """A heartbeat per topic that has clients and published nothing for `heartbeat_s`."""
        assert self.heartbeat_message is not None
        now = self._clock()
        topics = {t for t in self._by_topic if t is not None}
        for topic in topics:
            if now - self._topic_last_s.get(topic, -float("inf")) < self.heartbeat_s:
                continue
            msg = self.heartbeat_message(topic)  # type: ignore[call-arg]
            self._topic_last_s[topic] = now
            for client in self.topic_clients(topic):
                self.offer(client, msg)
        for topic in [t for t in self._topic_last_s if t not in topics]:
            del self._topic_last_s[topic]  # bounded by the topics with clients

    async def run_heartbeat(self) -> None:
        """Call `tick()` periodically; run as a task for the application's lifetime."""
        period = min(self.heartbeat_s, self.evict_after_s) / 2
        while True:
            await asyncio.sleep(period)
            try:
                await self.tick()
            except Exception:  # pragma: no cover - keep the heartbeat alive whatever happens
                log.exception("heartbeat tick failed")

    # ------------------------------------------------------------------ internals

    async def _sender(self, client: Client) -> None:
        try:
            while True:
                message = await client.queue.get()
                client.sending_since_s = self._clock()
                await client.send(message)
                client.sending_since_s = None
                client.sent += 1
                client.last_send_done_s = self._clock()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away: stop sending, let the endpoint clean up
            log.debug("live client %s send failed: %r", client.id, exc)
            client.closed = True
            client.close_reason = f"send failed: {exc!r}"
            self._forget(client)

    async def _evict(self, client: Client, code: int, reason: str) -> None:
        await self.remove_client(client, reason)
        if client.close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(code, reason), timeout=1.0)
