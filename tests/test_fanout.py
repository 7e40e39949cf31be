"""The broadcaster: a slow client loses its oldest frames (counted), never delays anyone else,
and is evicted when it stays stuck; heartbeats flow when no frames do. Deterministic: fake
senders, an injected clock, synchronisation on asyncio events only."""

from __future__ import annotations

import asyncio

import pytest

from api.fanout import EVICT_CLOSE_CODE, Broadcaster


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FastPeer:
    def __init__(self) -> None:
        self.got: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send(self, msg: str) -> None:
        self.got.append(msg)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class BlockedPeer(FastPeer):
    """A peer whose sends hang until released (a client that stopped reading)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.sending = asyncio.Event()

    async def send(self, msg: str) -> None:
        self.sending.set()
        await self.release.wait()
        self.got.append(msg)


async def drain(*peers_and_counts: tuple[FastPeer, int]) -> None:
    """Let the sender tasks run until every peer has received its count (bounded turns)."""
    for _ in range(10_000):
        if all(len(p.got) >= n for p, n in peers_and_counts):
            return
        await asyncio.sleep(0)
    raise AssertionError("senders did not deliver")


async def test_slow_client_drops_oldest_and_fast_client_gets_everything() -> None:
    b = Broadcaster(queue_size=4, evict_after_s=1e9, clock=FakeClock())
    fast, slow = FastPeer(), BlockedPeer()
    c_fast = b.add_client(fast.send, fast.close, "fast")
    c_slow = b.add_client(slow.send, slow.close, "slow")

    b.publish("m0")
    await slow.sending.wait()  # the slow client holds m0 in a send that does not complete
    for i in range(1, 20):
        b.publish(f"m{i}")  # publish never awaits: the producer is never held up
        await asyncio.sleep(0)
    await drain((fast, 20))

    assert fast.got == [f"m{i}" for i in range(20)]
    assert c_fast.dropped == 0
    # m0 is in flight, the queue holds the newest 4 of m1..m19: 15 dropped, oldest first
    assert c_slow.dropped == 15
    assert b.dropped_total == 15
    assert c_slow.queue.qsize() == 4

    slow.release.set()
    await drain((slow, 5))
    assert slow.got == ["m0", "m16", "m17", "m18", "m19"]
    assert c_slow.sent == 5


async def test_publish_does_not_wait_for_any_client() -> None:
    b = Broadcaster(queue_size=2, evict_after_s=1e9, clock=FakeClock())
    peers = [BlockedPeer() for _ in range(3)]
    clients = [b.add_client(p.send, p.close) for p in peers]
    for i in range(100):
        b.publish(str(i))  # synchronous: would deadlock if it awaited a blocked send
    assert all(c.queue.qsize() == 2 for c in clients)
    assert all(c.dropped == 98 for c in clients)
    assert b.published == 100
    for c in clients:
        await b.remove_client(c)


async def test_stuck_client_is_evicted_others_stay() -> None:
    clock = FakeClock()
    b = Broadcaster(queue_size=4, evict_after_s=5.0, clock=clock)
    fast, slow = FastPeer(), BlockedPeer()
    c_fast = b.add_client(fast.send, fast.close)
    c_slow = b.add_client(slow.send, slow.close)
    b.publish("a")
    await slow.sending.wait()
    await drain((fast, 1))

    clock.now += 4.0
    await b.tick()
    assert c_slow in b.clients  # slow, but not yet stuck for long enough

    clock.now += 2.0
    await b.tick()
    assert c_slow not in b.clients
    assert c_slow.closed
    assert slow.closed == (EVICT_CLOSE_CODE, "client too slow")
    assert b.evicted_total == 1
    assert c_fast in b.clients and fast.closed is None

    b.publish("b")
    await drain((fast, 2))
    assert fast.got == ["a", "b"]


async def test_heartbeat_only_when_no_frames() -> None:
    clock = FakeClock()
    beats = iter(range(1000))
    b = Broadcaster(queue_size=8, heartbeat_s=1.0, clock=clock, heartbeat=lambda: f"hb{next(beats)}")
    peer = FastPeer()
    b.add_client(peer.send, peer.close)
    b.publish("f0")
    clock.now += 0.5
    await b.tick()  # a frame 0.5 s ago: no heartbeat
    clock.now += 0.6
    await b.tick()  # 1.1 s without frames: heartbeat
    clock.now += 0.2
    await b.tick()  # heartbeat 0.2 s ago: none
    clock.now += 1.0
    await b.tick()
    await drain((peer, 3))
    assert peer.got == ["f0", "hb0", "hb1"]


async def test_failed_send_removes_client_without_affecting_others() -> None:
    b = Broadcaster(queue_size=4, clock=FakeClock())

    async def broken(msg: str) -> None:
        raise ConnectionResetError("peer gone")

    good = FastPeer()
    c_bad = b.add_client(broken)
    b.add_client(good.send)
    b.publish("x")
    b.publish("y")
    await drain((good, 2))
    for _ in range(100):
        if c_bad not in b.clients:
            break
        await asyncio.sleep(0)
    assert c_bad not in b.clients and c_bad.closed
    assert good.got == ["x", "y"]


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Broadcaster(queue_size=0)


async def test_taps_see_what_is_published_here_not_what_is_delivered_from_elsewhere() -> None:
    b = Broadcaster(queue_size=8, evict_after_s=1e9, clock=FakeClock())
    peer = BlockedPeer()
    client = b.add_client(peer.send, peer.close, topic="p1")
    tapped: list[tuple[str, str | None]] = []
    b.taps.append(lambda message, topic: tapped.append((message, topic)))
    b.publish("local", topic="p1")
    b.deliver("relayed", topic="p1")  # e.g. from another instance: must not go back out
    assert tapped == [("local", "p1")]
    assert client.queue.qsize() == 2  # the topic's clients get both
    await b.remove_client(client)
