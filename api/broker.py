"""Live fan-out across service instances through Redis pub/sub (`lumbo serve --broker URL`).

A therapist connected to instance A watches a patient whose session runs on instance B. Each
instance keeps serving its own WebSocket clients from its own `Broadcaster` (bounded queues,
drop-oldest, heartbeats, eviction: api/fanout.py); this relay only moves messages between the
instances' broadcasters, one Redis channel per broadcaster topic (`lumbo:live:<topic>`), so
whatever topics exist (a patient's, or per-audience variants of it) are relayed the same way.

Viewer side (A): the first local viewer of topic T subscribes A to T's channel; messages from
other instances are published into A's broadcaster on T, as if produced locally. The last
viewer leaving unsubscribes. A's subscription confirmed, A sends a `watch` nudge on the control
channel: the instance hosting T answers at once with its status message for T and starts
relaying, without waiting for its next interest poll.

Host side (B): every message B's own sessions publish is offered to the relay. It goes to Redis
only while some other instance listens on T's channel: B polls `PUBSUB NUMSUB` for its live
topics every `poll_s` (the subscription count is exact and disappears with a crashed viewer
instance's connection, so interest needs no keys that could go stale). Without remote interest
a frame costs one dict write; nothing crosses the network. Offering never awaits: messages wait
in a bounded deque (oldest dropped, counted) that one writer task flushes in pipelined batches,
so a slow or absent broker never slows or stops a session.

Status and heartbeats: the hosting instance's status messages are relayed, and remembered on
the viewer side, so a remote viewer sees the patient's session state (not "idle" from its own
instance); heartbeats for a remote topic carry the remote session's id and state, and the host
sends one over the broker every `poll_s` while nothing else flows, so a viewer instance can
tell the host went silent. Broker lost: each remote view gets a status saying so, the relay
reconnects with exponential backoff (`backoff_min_s` .. `backoff_max_s`), resubscribes, and
the hosts answer the renewed nudges with fresh status; frames resume.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from api import schema
from api.fanout import Broadcaster, topic_patient

log = logging.getLogger(__name__)

PublishMode = Literal["on_interest", "always"]
ACTIVE_STATES = {"starting", "calibrating", "running", "stopping"}

BROKER_DOWN = ("Live view interrupted: this server lost its connection to the message broker "
               "that carries the patient's session from another server. Reconnecting…")
RECONNECTED = ("Reconnected to the message broker; waiting for the server that runs the "
               "patient's session…")
HOST_SILENT = ("Live view interrupted: no data from the server that runs the patient's session "
               "for {s:.0f} s.")


class LiveHost(Protocol):
    """What the relay needs from the local live sessions, per broadcaster topic."""

    def is_live(self, topic: str) -> bool:
        """A session producing this topic's messages is active on this instance."""

    def status_message(self, topic: str) -> str:
        """This instance's status message for the topic (JSON)."""

    def heartbeat_message(self, topic: str) -> str:
        """This instance's heartbeat message for the topic (JSON)."""


class ManagerHost:
    """`LiveHost` over the SessionManager: a topic (either audience of a patient, api/fanout.py)
    belongs to the patient `topic_patient(topic)`."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def is_live(self, topic: str) -> bool:
        session = self.manager.by_patient.get(topic_patient(topic))
        return session is not None and session.active

    def status_message(self, topic: str) -> str:
        return str(self.manager.status_message(topic_patient(topic)))

    def heartbeat_message(self, topic: str) -> str:
        return str(self.manager.heartbeat_message(topic))


@dataclass
class RemoteView:
    """What the viewer side knows of a topic hosted elsewhere."""

    status: str | None = None  # the host's latest status message (JSON)
    state: str = "idle"
    session_id: str | None = None
    origin: str | None = None  # instance id of the host
    last_s: float = float("-inf")  # monotonic time of the last message from the host
    notice: str | None = None  # "broker_down", "reconnected", "silent": a status said so


def _reraise_cancel() -> None:
    """Raise CancelledError if this task was cancelled while a redis-py call swallowed it.

    Seen with redis-py 8.1: a pipeline `execute()` cancelled mid-flight can return normally with
    the cancellation pending (`Task.cancelling()`), and the task would then wait forever,
    holding up the shutdown (or a reconnect, whose task group waits for its tasks)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def with_message(status_json: str, text: str) -> str:
    """The same status message with `session.message` replaced by `text`."""
    msg = json.loads(status_json)
    msg.setdefault("session", {})["message"] = text
    return json.dumps(msg, separators=(",", ":"))


def check_broker_url(url: str) -> str:
    """`redis://[:password@]host:port/db` (or rediss://, unix://); ValueError otherwise."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"broker URL must start with redis://, rediss:// or unix://, not {url!r}")
    return url


def new_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class BrokerRelay:
    """Relays a `Broadcaster`'s topics between instances through Redis. `install()` once (it
    hooks the broadcaster), `start()` in the app's lifespan, `aclose()` at shutdown."""

    def __init__(
        self,
        url: str,
        broadcaster: Broadcaster,
        host: LiveHost,
        *,
        instance_id: str | None = None,
        publish_mode: PublishMode = "on_interest",
        prefix: str = "lumbo",
        poll_s: float = 1.0,
        silent_after_s: float = 3.5,
        local_forget_s: float = 30.0,
        out_queue: int = 4096,
        batch: int = 512,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_broker_url(url)
        self.broadcaster = broadcaster
        self.host = host
        self.instance_id = instance_id or new_instance_id()
        if "\n" in self.instance_id:
            raise ValueError("instance id must not contain a newline")
        self.publish_mode: PublishMode = publish_mode
        self.poll_s = poll_s
        self.silent_after_s = silent_after_s
        self.local_forget_s = local_forget_s
        self.batch = batch
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._chan_prefix = f"{prefix}:live:"
        self._control = f"{prefix}:ctl"
        self._envelope = self.instance_id + "\n"
        # host side
        self._local_last: dict[str, float] = {}  # topic -> last local publish (monotonic)
        self._interest: dict[str, bool] = {}  # topics some other instance listens to
        self._grace: dict[str, float] = {}  # interest kept until then after a watch nudge
        self._sent_last: dict[str, float] = {}  # topic -> last relayed to the broker
        self._out: collections.deque[tuple[str, str]] = collections.deque(maxlen=out_queue)
        self._ctl: collections.deque[tuple[str, str]] = collections.deque(maxlen=1024)
        self._wake = asyncio.Event()
        # viewer side
        self._watch: dict[str, int] = {}  # topic -> local viewers
        self._subscribed: set[str] = set()
        self._sync = asyncio.Event()
        self.remote: dict[str, RemoteView] = {}
        # connection
        self._installed = False
        self._heartbeat_local: Callable[..., str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self.connected = False
        self._closing = False
        self.connected_event = asyncio.Event()
        self.last_error: str | None = None
        # counters
        self.connects = 0
        self.published = 0
        self.published_bytes = 0
        self.queued_by_topic: collections.Counter[str] = collections.Counter()  # for the broker
        self.dropped = 0
        self.received = 0
        self.received_bytes = 0

    # ------------------------------------------------------------------ wiring

    def install(self) -> None:
        """Hook the broadcaster: every local publish on a topic is offered to the relay, and
        heartbeats of remote topics describe the remote session. Call after the broadcaster's
        heartbeat factory is set, before any session starts."""
        if self._installed:
            return
        self._installed = True
        self._heartbeat_local = self.broadcaster.heartbeat_message
        self.broadcaster.taps.append(self._tap)
        if self._heartbeat_local is not None:
            self.broadcaster.heartbeat_message = self._heartbeat  # type: ignore[assignment]

    async def start(self) -> None:
        """Connect in the background (never fails: a missing broker is retried)."""
        self.install()
        self._closing = False
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name="lumbo-broker")

    async def aclose(self) -> None:
        self._closing = True  # no "broker lost" notices for a shutdown
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ host side

    def _tap(self, message: str, topic: str | None = None) -> None:
        if topic is not None:
            self.offer(message, topic)

    def offer(self, message: str, topic: str) -> None:
        """Queue one locally produced message for the broker if another instance wants it.
        Never awaits; a full queue drops its oldest message."""
        self._local_last[topic] = self._clock()
        if not self.connected:
            return
        if self.publish_mode == "always" or self._interest.get(topic, False):
            if len(self._out) == self._out.maxlen:
                self.dropped += 1
            self._out.append((topic, message))
            self.queued_by_topic[topic] += 1
            self._wake.set()

    def has_interest(self, topic: str) -> bool:
        """Whether this instance currently relays `topic`'s messages to the broker."""
        return self.connected and (self.publish_mode == "always"
                                   or self._interest.get(topic, False))

    # ------------------------------------------------------------------ viewer side

    @contextlib.asynccontextmanager
    async def watching(self, topic: str) -> AsyncIterator[None]:
        """While open, messages for `topic` from other instances reach the local broadcaster."""
        self._watch[topic] = self._watch.get(topic, 0) + 1
        if self._watch[topic] == 1:
            self._sync.set()
        try:
            yield
        finally:
            left = self._watch.get(topic, 1) - 1
            if left <= 0:
                self._watch.pop(topic, None)
                self.remote.pop(topic, None)
                self._sync.set()
            else:
                self._watch[topic] = left

    def status_message(self, topic: str) -> str:
        """The status a new viewer of `topic` gets first: the local session's if it is live
        here, else what the hosting instance last said (with any interruption notice), else
        this instance's own (idle) status."""
        if self.host.is_live(topic):
            return self.host.status_message(topic)
        view = self.remote.get(topic)
        if not self.connected:
            base = view.status if view is not None and view.status else self.host.status_message(
                topic)
            return with_message(base, BROKER_DOWN)
        if view is not None and view.status:
            return view.status
        return self.host.status_message(topic)

    def _heartbeat(self, topic: str | None = None) -> str:
        assert self._heartbeat_local is not None
        if topic is None:
            return self._heartbeat_local()
        view = self.remote.get(topic)
        if view is not None and view.session_id is not None and not self.host.is_live(topic):
            return schema.Heartbeat(
                session_id=view.session_id, state=view.state,  # type: ignore[arg-type]
                server_time_s=round(time.monotonic(), 4),
            ).model_dump_json()
        return self._heartbeat_local(topic)

    def _deliver(self, topic: str, message: str) -> None:
        self.broadcaster.deliver(message, topic)

    def _notice(self, topic: str, kind: str, text: str) -> None:
        """Tell the topic's local viewers, with a status message, what happened to the view."""
        view = self.remote.setdefault(topic, RemoteView())
        view.notice = kind
        base = view.status or self.host.status_message(topic)
        self._deliver(topic, with_message(base, text))

    def _on_message(self, channel: str, data: str) -> None:
        topic = channel[len(self._chan_prefix):]
        origin, sep, message = data.partition("\n")
        if not sep or origin == self.instance_id or topic not in self._watch:
            return
        self.received += 1
        self.received_bytes += len(data)
        if self.host.is_live(topic):  # a session of this topic runs here: it wins
            return
        view = self.remote.setdefault(topic, RemoteView())
        view.last_s = self._clock()
        view.origin = origin
        if message.startswith('{"type":"status"'):
            session = json.loads(message).get("session", {})
            view.status, view.notice = message, None
            view.state = session.get("state", "idle")
            view.session_id = session.get("session_id")
        else:
            if message.startswith('{"type":"heartbeat"'):
                hb = json.loads(message)
                view.state, view.session_id = hb.get("state", view.state), hb.get("session_id")
            if view.notice is not None:  # data again after an interruption: restore the status
                view.notice = None
                if view.status:
                    self._deliver(topic, view.status)
        self._deliver(topic, message)

    def _on_control(self, data: str) -> None:
        kind, _, rest = data.partition("\n")
        origin, _, topic = rest.partition("\n")
        if kind != "watch" or origin == self.instance_id or not topic:
            return
        if self.host.is_live(topic):  # a viewer elsewhere wants one of ours: relay from now on
            now = self._clock()
            self._local_last[topic] = now
            self._interest[topic] = True
            self._grace[topic] = now + 2 * self.poll_s + 1.0
            self.offer(self.host.status_message(topic), topic)

    # ------------------------------------------------------------------ connection

    def _chan(self, topic: str) -> str:
        return self._chan_prefix + topic

    async def _supervise(self) -> None:
        backoff = self.backoff_min_s
        while True:
            was_up = False
            try:
                was_up = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                was_up = was_up or self.connected
                text = f"{type(exc).__name__}: {exc}"
                if self.connected or self.last_error != text:
                    log.warning("message broker %s: %s; reconnecting", self.url, text)
                self.last_error = text
            finally:
                self._went_down()
            if was_up:
                backoff = self.backoff_min_s
            await asyncio.sleep(backoff)  # retry delay, not a synchronisation
            backoff = min(backoff * 2, self.backoff_max_s)

    def _went_down(self) -> None:
        was = self.connected
        self.connected = False
        self.connected_event.clear()
        self._client = None
        self._out.clear()
        self._ctl.clear()
        self._interest.clear()
        self._subscribed.clear()
        if was and not self._closing:
            for topic in list(self._watch):
                if not self.host.is_live(topic):
                    self._notice(topic, "broker_down", BROKER_DOWN)

    async def _session(self) -> bool:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = aioredis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0), client_name=f"lumbo-{self.instance_id}"[:60],
        )
        pubsub = client.pubsub()
        try:
            await client.ping()
            await pubsub.subscribe(self._control)
            self._client = client
            self.connected = True
            self.connected_event.set()
            self.connects += 1
            self.last_error = None
            log.info("message broker %s connected (instance %s)", self.url, self.instance_id)
            for topic, view in list(self.remote.items()):
                if view.notice == "broker_down" and topic in self._watch:
                    self._notice(topic, "reconnected", RECONNECTED)
            self._sync.set()
            tasks = [self._reader(pubsub), self._writer(client), self._poller(client),
                     self._subscriber(pubsub)]
            async with asyncio.TaskGroup() as group:
                for coro in tasks:
                    group.create_task(coro)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()
        return True  # pragma: no cover - the task group only ends by an exception

    async def _reader(self, pubsub: Any) -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            _reraise_cancel()
            if msg is None:
                continue
            kind, channel = msg["type"], msg["channel"]
            if kind == "message":
                if channel == self._control:
                    self._on_control(msg["data"])
                else:
                    self._on_message(channel, msg["data"])
            elif kind == "subscribe" and channel != self._control:
                # subscribed for sure now: ask the host to answer and relay at once
                topic = channel[len(self._chan_prefix):]
                self._ctl.append((self._control, f"watch\n{self.instance_id}\n{topic}"))
                self._wake.set()

    async def _writer(self, client: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._out or self._ctl:
                pipe = client.pipeline(transaction=False)
                n = 0
                now = self._clock()
                while self._ctl and n < self.batch:
                    pipe.publish(*self._ctl.popleft())
                    n += 1
                while self._out and n < self.batch:
                    topic, message = self._out.popleft()
                    payload = self._envelope + message
                    pipe.publish(self._chan_prefix + topic, payload)
                    self.published += 1
                    self.published_bytes += len(payload)
                    self._sent_last[topic] = now
                    n += 1
                await pipe.execute()
                _reraise_cancel()

    async def _subscriber(self, pubsub: Any) -> None:
        while True:
            await self._sync.wait()
            self._sync.clear()
            want = set(self._watch)
            add, drop = want - self._subscribed, self._subscribed - want
            if add:
                await pubsub.subscribe(*(self._chan(t) for t in sorted(add)))
                _reraise_cancel()
                self._subscribed |= add
            if drop:
                await pubsub.unsubscribe(*(self._chan(t) for t in sorted(drop)))
                _reraise_cancel()
                self._subscribed -= drop

    async def _poller(self, client: Any) -> None:
        while True:
            await self._poll_interest(client)
            self._keepalive()
            self._check_silent_hosts()
            await asyncio.sleep(self.poll_s)  # the poll period

    async def _poll_interest(self, client: Any) -> None:
        now = self._clock()
        for topic in [t for t, last in self._local_last.items() if now - last > self.local_forget_s]:
            del self._local_last[topic]
            self._interest.pop(topic, None)
            self._grace.pop(topic, None)
            self._sent_last.pop(topic, None)
            self.queued_by_topic.pop(topic, None)
        if self.publish_mode == "always":
            return
        topics = list(self._local_last)
        for i in range(0, len(topics), 500):
            chunk = topics[i:i + 500]
            counts = await client.pubsub_numsub(*(self._chan(t) for t in chunk))
            _reraise_cancel()
            now = self._clock()
            for topic, (_, count) in zip(chunk, counts, strict=True):
                others = int(count) - (1 if topic in self._subscribed else 0)
                if others > 0:
                    self._interest[topic] = True
                elif now >= self._grace.get(topic, 0.0):
                    self._interest.pop(topic, None)
                    self._grace.pop(topic, None)

    def _keepalive(self) -> None:
        """A heartbeat over the broker for relayed topics that sent nothing for `poll_s`."""
        now = self._clock()
        for topic in list(self._local_last):
            if (self.has_interest(topic) and now - self._sent_last.get(topic, -1e9) >= self.poll_s
                    and self.host.is_live(topic)):
                self.offer(self.host.heartbeat_message(topic), topic)

    def _check_silent_hosts(self) -> None:
        now = self._clock()
        for topic in list(self._watch):
            view = self.remote.get(topic)
            if (view is None or view.notice is not None or view.state not in ACTIVE_STATES
                    or self.host.is_live(topic)):
                continue
            if now - view.last_s > self.silent_after_s:
                self._notice(topic, "silent", HOST_SILENT.format(s=now - view.last_s))

    # ------------------------------------------------------------------ figures

    def stats(self) -> dict[str, object]:
        return {
            "instance_id": self.instance_id, "connected": self.connected,
            "connects": self.connects, "last_error": self.last_error,
            "publish_mode": self.publish_mode, "published": self.published,
            "published_bytes": self.published_bytes, "dropped": self.dropped,
            "received": self.received, "received_bytes": self.received_bytes,
            "relayed_topics": sorted(t for t in self._local_last if self.has_interest(t)),
            "watched_topics": sorted(self._watch),
        }


# ---------------------------------------------------------------------- app helpers


def relay_of(app: Any) -> BrokerRelay | None:
    return getattr(app.state, "broker", None)


def live_status_message(app: Any, topic: str) -> str:
    """The first status message for a new viewer of `topic` (remote-aware with a broker)."""
    relay = relay_of(app)
    if relay is None:
        return str(app.state.manager.status_message(topic_patient(topic)))
    return relay.status_message(topic)


def watching(app: Any, topic: str) -> contextlib.AbstractAsyncContextManager[None]:
    """Receive `topic` from other instances while open (nothing to do without a broker)."""
    relay = relay_of(app)
    return contextlib.nullcontext() if relay is None else relay.watching(topic)  # type: ignore[return-value]


def install_broker(app: Any, settings: Any) -> BrokerRelay | None:
    """Create and hook the relay when `settings.broker` is set (`app.state.broker`)."""
    url = getattr(settings, "broker", None)
    if not url:
        app.state.broker = None
        return None
    manager = app.state.manager
    relay = BrokerRelay(url, manager.broadcaster, ManagerHost(manager),
                        publish_mode=getattr(settings, "broker_publish", "on_interest"))
    relay.install()
    app.state.broker = relay
    return relay
