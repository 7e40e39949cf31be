"""Live frames per audience (api/audience.py, api/fanout.py topics, api/routes/live.py).

The patient's own clients get the patient's view of every frame: no therapist-only fields (the
engine's full state, therapist events, the trace, the decisions' reasons) and no position while
the practice block withholds it (retention, no concurrent feedback, the baseline assessment);
the therapist's clients get the full frame. Each variant is serialised once per frame: every
client of an audience receives the very same string. Deterministic: the simulated patient
unpaced, synchronisation on messages and on the session's end only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema
import websockets

from api import schema
from api.audience import hides_position, patient_frame
from api.fanout import Broadcaster, audience_topic, audience_topics, topic_patient
from api.live import SessionManager
from api.settings import Settings
from test_practice_live_support import sign_in

PROGRAM = [{"exercise_id": "flexion_to_target", "level": 1, "sets": 1, "rest_after_s": 5}]


class Peer:
    """A client that keeps every message it is sent."""

    def __init__(self) -> None:
        self.got: list[str] = []

    async def send(self, message: str) -> None:
        self.got.append(message)


def frames(messages: list[str]) -> list[dict[str, Any]]:
    return [json.loads(m) for m in messages if m.startswith('{"type":"frame"')]


def retention_active(f: dict[str, Any]) -> bool:
    """A therapist frame inside a retention block's movement (no feedback to the patient)."""
    p = f["program"]
    return p.get("stage_kind") == "retention" and (p["exercise"] or {}).get("phase") == "active"


def check_patient_frames(full: list[dict], mine: list[dict]) -> None:
    """The patient's frames against the therapist's frames of the same session."""
    assert [f["seq"] for f in mine] == [f["seq"] for f in full] and len(full) > 100
    by_seq = {f["seq"]: f for f in full}
    for p in mine:
        t = by_seq[p["seq"]]
        assert p["session_id"] == t["session_id"] and p["server_time_s"] == t["server_time_s"]
        assert p["program"]["exercise"] is None
        assert p["trace"] == {"t_s": [], "flexion_deg": [], "pelvic_tilt_deg": [], "gaps": []}
        assert all(e["audience"] == "patient" for e in p["program_events"])
        assert p["program_events"] == [e for e in t["program_events"]
                                       if e["audience"] == "patient"]
        if p["program"]["patient"] is None or p["program"]["patient"]["value_deg"] is None:
            assert p["angles"] == dict.fromkeys(p["angles"]) and p["velocity"] == {
                "flexion_deg_s": None}
    # the retention block: the therapist sees the position, the patient does not
    retention = [f for f in full if retention_active(f)]
    assert retention and any(f["angles"]["flexion_deg"] is not None for f in retention)
    assert any(f["program"]["exercise"]["value_deg"] is not None for f in retention)
    for f in retention:
        p = next(x for x in mine if x["seq"] == f["seq"])
        assert p["angles"]["flexion_deg"] is None and p["program"]["patient"]["value_deg"] is None
    # therapist-only events reach the therapist alone
    recorded = [e for f in full for e in f["program_events"] if e["type"] == "repetition_recorded"]
    assert recorded and all(e["audience"] == "therapist" for e in recorded)
    assert not [e for p in mine for e in p["program_events"] if e["type"] == "repetition_recorded"]
    # with concurrent feedback the patient does see the position: hiding is not blanket
    assert any(p["angles"]["flexion_deg"] is not None and p["program"]["patient"]["value_deg"]
               is not None for p in mine)


# ---------------------------------------------------------------------------- topics


def test_audience_topic_names() -> None:
    assert audience_topic("p-1", "therapist") == "p-1"
    assert audience_topic("p-1", "patient") == "p-1/patient"
    assert audience_topics("p-1") == ("p-1", "p-1/patient")
    assert [topic_patient(t) for t in ("p-1", "p-1/patient", None)] == ["p-1", "p-1", None]


async def test_publish_reaches_only_its_topic_and_heartbeats_follow_each_topic() -> None:
    now = [0.0]
    b = Broadcaster(queue_size=8, heartbeat_s=1.0, clock=lambda: now[0],
                    heartbeat=lambda topic=None: f"hb:{topic}")
    peers = {t: Peer() for t in ("a", "a/patient", "b")}
    clients = {t: b.add_client(p.send, topic=t) for t, p in peers.items()}
    b.publish("to-a", topic="a")
    b.publish("to-a-patient", topic="a/patient")
    now[0] = 1.5
    await b.tick()  # "b" had nothing for 1.5 s: a heartbeat; "a" and "a/patient" too
    for _ in range(100):
        await asyncio.sleep(0)
    assert peers["a"].got == ["to-a", "hb:a"]
    assert peers["a/patient"].got == ["to-a-patient", "hb:a/patient"]
    assert peers["b"].got == ["hb:b"]
    await b.remove_client(clients["a"])
    assert b.topic_clients("a") == [] and b.topic_clients("b") == [clients["b"]]
    b.publish("to-a", topic="a")  # nobody left on "a": nothing is queued anywhere
    assert all(c.queue.qsize() == 0 for c in b.clients)
    for c in b.clients:
        await b.remove_client(c)


# ---------------------------------------------------------------------------- the variant


def _frame(program: dict[str, Any] | None) -> schema.LiveFrame:
    return schema.LiveFrame(
        session_id="s", seq=1, t_s=2.0, server_time_s=3.0,
        angles=schema.Angles(flexion_deg=20.0, lateral_bend_deg=1.0),
        velocity=schema.Velocity(flexion_deg_s=5.0),
        trace=schema.Trace(t_s=[1.99, 2.0], flexion_deg=[19.0, 20.0], pelvic_tilt_deg=[1.0, 1.0]),
        calibration=schema.Calibration(phase="done", progress=1.0), sensors=schema.Sensors(),
        program=program)


def test_patient_frame_of_a_baseline_assessment_and_a_finished_program() -> None:
    baseline = {"patient_id": "p", "mode": "baseline", "phase": "running",
                "baseline": {"step": "flexion", "value_deg": 31.0, "guide_on": None},
                "summary": {"review": {"exercise_id": "baseline", "rule_id": "baseline_mdc",
                                       "reason": "within the MDC", "inputs": {"x": 1},
                                       "patient_message": "Well done."}}}
    full = _frame(baseline)
    mine = patient_frame(full)
    assert hides_position(full.program)
    assert mine.angles == schema.Angles() and mine.velocity == schema.Velocity()
    assert mine.trace == schema.Trace()
    assert mine.program.baseline["value_deg"] is None  # no guide: no live value
    assert mine.program.summary["review"] == {"exercise_id": "baseline",
                                              "patient_message": "Well done."}
    # the full frame is untouched
    assert full.angles.flexion_deg == 20.0 and full.program.baseline["value_deg"] == 31.0
    assert len(full.trace.t_s) == 2 and full.program.summary["review"]["reason"]

    done = {"patient_id": "p", "mode": "program", "phase": "done", "exercise": None,
            "patient": None, "summary": {"decisions": [
                {"exercise_id": "flexion_to_target", "rule_id": "advance", "outcome": "advance",
                 "from_level": 1, "to_level": 2, "reason": "retention met", "inputs": {},
                 "patient_message": "Next time: level 2."}]}}
    mine = patient_frame(_frame(done)).model_dump(mode="json")
    assert mine["program"]["summary"]["decisions"] == [{
        "exercise_id": "flexion_to_target", "outcome": "advance", "from_level": 1,
        "to_level": 2, "patient_message": "Next time: level 2."}]
    assert mine["angles"]["flexion_deg"] is None  # no exercise runs: no position shown
    # the single flexion exercise (no program) gives concurrent feedback: the angles stay
    plain = patient_frame(_frame(None))
    assert plain.angles.flexion_deg == 20.0 and plain.trace == schema.Trace()


# ---------------------------------------------------------------------------- a real session


async def test_each_audience_gets_its_own_frames_each_built_once() -> None:
    b = Broadcaster(queue_size=100_000, evict_after_s=1e9)
    published: dict[str | None, int] = {}
    publish = b.publish

    def counting(message: str, topic: str | None = None) -> None:
        published[topic] = published.get(topic, 0) + 1
        publish(message, topic=topic)

    b.publish = counting  # type: ignore[method-assign]
    manager = SessionManager(b)
    t_topic, p_topic = audience_topics("pa")
    therapists, patients, other = [Peer(), Peer()], [Peer(), Peer()], Peer()
    for peer in therapists:
        b.add_client(peer.send, topic=t_topic)
    for peer in patients:
        b.add_client(peer.send, topic=p_topic)
    b.add_client(other.send, topic=audience_topic("pb", "therapist"))

    session = await manager.start(schema.StartSessionRequest(
        script="flexion_reps", n_reps=2, realtime=False, seed=3, level=6), patient_id="pa")
    assert manager.status_for("pa").clients == 4
    heartbeat = json.loads(manager.heartbeat_message(p_topic))
    assert heartbeat["session_id"] == session.session_id
    await session.wait()
    for _ in range(100_000):  # until the senders delivered everything published
        if all(len(p.got) == published.get(t, 0) for t, group in (
                (t_topic, therapists), (p_topic, patients)) for p in group):
            break
        await asyncio.sleep(0)

    assert other.got == []  # another patient's viewer gets nothing of this session
    # one serialisation per frame and audience: every client holds the very same strings
    for group in (therapists, patients):
        assert len(group[0].got) == len(group[1].got) > 0
        assert all(x is y for x, y in zip(group[0].got, group[1].got, strict=True))
    assert len(therapists[0].got) == published[t_topic]
    assert len(patients[0].got) == published[p_topic]
    full, mine = frames(therapists[0].got), frames(patients[0].got)
    assert len(full) == len(mine) == session.seq > 100
    stamps = [f["server_time_s"] for f in full]  # the publish time, on the server's clock
    assert all(isinstance(x, float) for x in stamps) and stamps == sorted(stamps)
    for t, p in zip(full, mine, strict=True):
        assert (p["seq"], p["server_time_s"]) == (t["seq"], t["server_time_s"])
        assert p["trace"]["t_s"] == [] and p["program"] is None
        # the single flexion exercise gives concurrent feedback: the patient sees the angle
        assert (p["angles"], p["feedback"], p["events"]) == (t["angles"], t["feedback"],
                                                            t["events"])
    assert any(f["trace"]["t_s"] for f in full)
    assert any(f["angles"]["flexion_deg"] is not None for f in mine)
    # status messages are the same for both audiences
    statuses = [m for m in therapists[0].got if m.startswith('{"type":"status"')]
    assert statuses and statuses == [m for m in patients[0].got
                                     if m.startswith('{"type":"status"')]
    validator = jsonschema.Draft202012Validator(schema.json_schema("frame"))
    for f in full[::25] + mine[::25]:
        validator.validate(f)
    for c in b.clients:
        await b.remove_client(c)


async def test_the_websocket_serves_each_viewer_its_audience(live_server) -> None:
    srv = live_server(Settings(queue_size=100_000))  # every frame, no drops
    access = sign_in(srv.app, "-audience")
    pid, T, P = access.patient_id, access.therapist_headers, access.patient_headers
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        r = await http.post(f"/api/practice/patients/{pid}/baselines", headers=T,
                            json={"ranges_deg": {"flexion": 40}})
        assert r.status_code == 200, r.text
        r = await http.put(f"/api/practice/patients/{pid}/program", headers=T,
                           json={"items": PROGRAM})
        assert r.status_code == 200, r.text

        async def receive(ws: Any) -> list[str]:
            out = []
            async for raw in ws:
                out.append(raw)
                msg = json.loads(raw)
                if msg["type"] == "status" and msg["session"]["state"] in (
                        "ended", "failed", "stopped"):
                    assert msg["session"]["state"] == "ended", msg["session"]
                    return out
            raise AssertionError("the WebSocket closed before the session ended")

        url = f"{srv.ws_url}/ws/live"
        async with websockets.connect(url, additional_headers=P, max_size=2**24) as pws, \
                websockets.connect(url, additional_headers=T, max_size=2**24) as tws:
            for ws in (pws, tws):
                assert json.loads(await ws.recv())["type"] == "status"
            r = await http.post("/api/practice/start", headers=P,
                                json={"session": {"realtime": False, "seed": 3}})
            assert r.status_code == 200, r.text
            got_p, got_t = await asyncio.wait_for(  # a bound, not a measurement
                asyncio.gather(receive(pws), receive(tws)), timeout=180)
    check_patient_frames(frames(got_t), frames(got_p))
    assert all('"exercise":null' in m for m in got_p if m.startswith('{"type":"frame"'))
