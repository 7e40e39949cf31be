"""Live fan-out across two real service instances through a real Redis (api/broker.py).

Instance B runs the patients' sessions (the simulated patient, in real time); therapists and
patients watch from instance A. Both instances share one data directory (accounts, sign-ins,
recordings) and one `redis-server` started here on a free loopback port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from broker_support import (
    Instance,
    Viewer,
    await_for,
    make_people,
    start_instance,
    start_redis,
    start_session,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Redis, instances A and B on it, the accounts; p1 and q already streaming into B."""
    base = tmp_path_factory.mktemp("broker")
    redis = start_redis(base / "redis")
    data = base / "data"
    instances: list[Instance] = []
    try:
        a = start_instance("A", data, redis.url)
        instances.append(a)
        b = start_instance("B", data, redis.url)
        instances.append(b)
        people = make_people(a.app)
        sessions = {"p1": start_session(b, people, "t1", "p1", seed=1),
                    "q": start_session(b, people, "t2", "q", seed=2)}
        yield {"redis": redis, "a": a, "b": b, "people": people, "sessions": sessions}
    finally:
        for inst in instances:
            inst.stop()
        redis.stop()


def _increasing(frames: list[dict[str, Any]]) -> bool:
    seqs = [f["seq"] for f in frames]
    times = [f["t_s"] for f in frames]
    return all(x < y for x, y in zip(seqs, seqs[1:])) and all(
        x <= y for x, y in zip(times, times[1:]))


async def test_therapist_on_a_watches_a_patient_streaming_into_b(cluster: dict) -> None:
    a, b, people, sessions = cluster["a"], cluster["b"], cluster["people"], cluster["sessions"]
    p1_session, q_session = sessions["p1"], sessions["q"]
    assert a.manager.by_patient.get(people.ids["p1"]) is None  # nothing of p1 runs on A
    async with Viewer(a, people, "t1", "p1") as t1, Viewer(a, people, "t2", "q") as t2, \
            Viewer(a, people, "p1", None) as own:
        await await_for(lambda: len(t1.frames(p1_session)) >= 100
                        and len(t2.frames(q_session)) >= 100
                        and len(own.frames(p1_session)) >= 50, "frames relayed from B to A")
        # each audience's topic of p1 is relayed on its own (api/fanout.py audience_topic)
        assert {people.ids["p1"], people.ids["p1"] + "/patient"} <= set(
            a.relay.stats()["watched_topics"])
        assert {people.ids["p1"], people.ids["p1"] + "/patient"} <= set(
            b.relay.stats()["relayed_topics"])
    # the status comes from B, the instance running the session
    statuses = [m["session"] for m in t1.of_type("status")]
    assert any(s["session_id"] == p1_session and s["state"] in ("calibrating", "running")
               for s in statuses), statuses
    frames = t1.frames()
    assert {f["session_id"] for f in frames} == {p1_session}  # p1's session only, never q's
    assert _increasing(frames)
    assert {f["session_id"] for f in t2.frames()} == {q_session}
    assert _increasing(t2.frames())
    # the patient's own page on A gets their session too (the patient's view of each frame)
    assert {f["session_id"] for f in own.frames()} == {p1_session}
    assert _increasing(own.frames())
    # another therapist's patient is not visible through A either
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with Viewer(a, people, "t1", "q"):
            pass
    assert refused.value.response.status_code == 404


async def test_b_relays_only_while_a_has_viewers(cluster: dict) -> None:
    a, b, people = cluster["a"], cluster["b"], cluster["people"]
    p1 = people.ids["p1"]
    session = b.manager.by_patient[p1]
    relay_b = b.relay
    start = session.seq
    await await_for(lambda: session.seq >= start + 50, "B's session to make 50 frames")
    # nobody elsewhere watches p1 (the previous test's viewers left): nothing goes to Redis
    await await_for(lambda: not relay_b.has_interest(p1), "B to see no remote interest")
    before = relay_b.queued_by_topic[p1]
    seq0 = session.seq
    await await_for(lambda: session.seq >= seq0 + 50, "50 more frames")
    assert relay_b.queued_by_topic[p1] == before
    async with Viewer(a, people, "t1", "p1") as t1:
        await await_for(lambda: len(t1.frames()) >= 25, "frames on A")
        assert relay_b.has_interest(p1)
        assert relay_b.queued_by_topic[p1] > before
    # the viewer left: A unsubscribes, B's next interest poll stops the relay
    await await_for(lambda: p1 not in a.relay.stats()["watched_topics"], "A to unsubscribe")
    await await_for(lambda: not relay_b.has_interest(p1), "B to stop relaying p1")
    stopped_at = relay_b.queued_by_topic[p1]
    seq1 = session.seq
    await await_for(lambda: session.seq >= seq1 + 100, "100 more frames")
    assert relay_b.queued_by_topic[p1] == stopped_at
    # q's topic (also live on B) was never relayed while nobody watched it remotely
    assert not relay_b.has_interest(people.ids["q"])


async def test_broker_killed_and_restarted_mid_stream(cluster: dict) -> None:
    a, b, people, redis = cluster["a"], cluster["b"], cluster["people"], cluster["redis"]
    p1 = people.ids["p1"]
    session = b.manager.by_patient[p1]
    connects_a, connects_b = a.relay.connects, b.relay.connects
    async with Viewer(a, people, "t1", "p1") as remote, Viewer(b, people, "t1", "p1") as local:
        await await_for(lambda: len(remote.frames()) >= 25, "frames on A before the outage")
        redis.kill()
        await await_for(lambda: any("message broker" in m["session"]["message"]
                                    for m in remote.of_type("status")),
                        "A's viewer to be told the broker is lost")
        assert not a.relay.connected
        seq_down = session.seq
        frames_down = len(remote.frames())
        redis.start()
        await await_for(lambda: len([f for f in remote.frames()[frames_down:]
                                     if f["seq"] > seq_down]) >= 25,
                        "frames on A again after the broker restarted")
        assert a.relay.connects > connects_a and b.relay.connects > connects_b
        seq_up = session.seq
    # B's session ran on throughout: its local viewer got every frame, no gap, none dropped
    seqs = [f["seq"] for f in local.frames()]
    assert seqs[0] < seq_down < seq_up <= seqs[-1] + 1
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert session.active
    # and A's viewer got the host's status again once reconnected
    later = remote.of_type("status")[-1]["session"]
    assert later["session_id"] == session.session_id


def test_broker_url_is_checked(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from api.broker import check_broker_url
    from api.cli import build_parser
    from api.settings import Settings

    assert check_broker_url("redis://127.0.0.1:6379/0")
    with pytest.raises(ValueError, match="must start with redis://"):
        check_broker_url("http://127.0.0.1:6379")
    with pytest.raises(ValidationError):
        Settings(broker="nats://127.0.0.1:4222")
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["serve", "--broker", "127.0.0.1:6379"])
    assert exit_.value.code == 2
    args = build_parser().parse_args(["serve", "--broker", "redis://127.0.0.1:1/0"])
    assert args.broker == "redis://127.0.0.1:1/0"


async def test_viewer_is_told_when_the_hosting_instance_goes_silent(cluster: dict) -> None:
    a, b, people = cluster["a"], cluster["b"], cluster["people"]
    session = b.manager.by_patient[people.ids["p1"]]
    b_loop = b.relay._task.get_loop()  # B's event loop runs in B's server thread

    def on_b(coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, b_loop).result(timeout=30)

    async with Viewer(a, people, "t1", "p1") as remote:
        await await_for(lambda: len(remote.frames()) >= 25, "frames on A")
        await asyncio.to_thread(on_b, b.relay.aclose())  # B stops relaying; its session goes on
        await await_for(lambda: any("no data from the server" in m["session"]["message"]
                                    for m in remote.of_type("status")),
                        "A's viewer to be told the host went silent")
        assert session.active
        seen = len(remote.frames())
        await asyncio.to_thread(on_b, b.relay.start())
        await await_for(lambda: len(remote.frames()) >= seen + 25, "frames again")
    assert remote.of_type("status")[-1]["session"]["session_id"] == session.session_id
