"""A day's program end to end: the real uvicorn server, the simulated patient performing the
program (unpaced), a real WebSocket client, and the REST inputs around it.

Checks what the pages and the therapist rely on: every practice event reaches the frames (in
order, with the exercise transitions: practice, then the delayed retention blocks), the frames
validate against the served schema, pain entered via REST around the session, and at the end one
progression decision per exercise with its rule, inputs and reason, stored per patient and in the
trends."""

from __future__ import annotations

import asyncio
import json

import httpx
import jsonschema
import websockets

from api.settings import Settings
from feedback.progression import ExerciseProgress
from test_practice_live_support import sign_in

PROGRAM = {"items": [
    {"exercise_id": "flexion_to_target", "level": 1, "sets": 1, "rest_after_s": 5},
    {"exercise_id": "lateral_bend_left", "level": 1, "sets": 1, "rest_after_s": 5},
], "reason": "first session"}
RULES = {"locked", "missing_pain", "pain_rise", "no_retention", "advance", "top_level",
         "pain_worse", "hold_on_failure", "step_back_repeated_failure", "bottom_level"}


async def test_program_end_to_end_with_pain_and_progression(live_server) -> None:
    srv = live_server(Settings(queue_size=100_000))  # this test wants every frame
    access = sign_in(srv.app)
    pid, T, P = access.patient_id, access.therapist_headers, access.patient_headers
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        frame_schema = (await http.get("/api/schema/frame", headers=P)).json()
        assert {"program", "program_events"} <= set(frame_schema["properties"])
        assert frame_schema["schema_version"] == 1
        validator = jsonschema.Draft202012Validator(frame_schema)
        r = await http.post(f"/api/practice/patients/{pid}/baselines", headers=T,
                            json={"ranges_deg": {"flexion": 40, "lateral_bend_left": 25}})
        assert r.status_code == 200, r.text
        r = await http.put(f"/api/practice/patients/{pid}/program", headers=T, json=PROGRAM)
        assert r.status_code == 200, r.text
        listed = r.json()["patient"]["program"]["items"]
        assert [(i["exercise_id"], i["level"]) for i in listed] == [
            ("flexion_to_target", 1), ("lateral_bend_left", 1)]
        assert all(i["instructions"] for i in listed)

        # the therapist's live view: the full frames (the patient's own view of the same
        # frames is tested in test_fanout_audience.py)
        async with websockets.connect(f"{srv.ws_url}/ws/live", additional_headers=T,
                                      max_size=2**24) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "status"
            r = await http.post("/api/practice/start", headers=P,
                                json={"session": {"realtime": False, "seed": 3}})
            assert r.status_code == 200, r.text
            assert r.json()["practice"]["program"]["phase"] == "calibrating"
            r = await http.post("/api/practice/pain", headers=P, json={"when": "before",
                                                                        "value": "4"})
            assert r.status_code == 200, r.text
            frames: list[dict] = []

            async def receive() -> None:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "frame":
                        frames.append(msg)
                    elif msg["type"] == "status" and msg["session"]["state"] in (
                            "ended", "failed", "stopped"):
                        assert msg["session"]["state"] == "ended", msg["session"]
                        return

            await asyncio.wait_for(receive(), timeout=180)  # a bound, not a measurement

        # frames: valid, with the program state and its events
        for f in frames[::50] + [f for f in frames if f["program_events"]]:
            validator.validate(f)
        assert all(f["program"] is not None for f in frames)
        assert all(f["target"] is None and f["feedback"] is None for f in frames)
        events = [e for f in frames for e in f["program_events"]]
        started = [(e["exercise_id"], e["kind"], e["level"]) for e in events
                   if e["type"] == "exercise_started"]
        assert started == [("flexion_to_target", "practice", 1), ("lateral_bend_left", "practice", 1),
                           ("flexion_to_target", "retention", 1),
                           ("lateral_bend_left", "retention", 1)]
        recorded = [e for e in events if e["type"] == "repetition_recorded"]
        assert len(recorded) == 8 + 6 + 5 + 5
        assert all(e["audience"] == "therapist" for e in recorded)
        shown = [e for e in events if e["type"] == "repetition_feedback"]
        assert len(shown) == 8 + 6  # continuous practice: every repetition; retention: none
        assert all(e["cue"]["text"] and "°" not in e["cue"]["audio"] for e in shown)
        kinds = [e["type"] for e in events]
        assert kinds.count("rest_started") == 3 and kinds.count("block_completed") == 4
        assert kinds.index("program_completed") > max(i for i, k in enumerate(kinds)
                                                      if k == "repetition_recorded")
        pains = [e for e in events if e["type"] == "pain_recorded"]
        assert [(e["when"], e["value"]) for e in pains] == [("before", 4)]
        # the patient does not see the position in blocks without concurrent feedback
        retention = [f["program"] for f in frames if f["program"].get("stage_kind") == "retention"
                     and (f["program"]["exercise"] or {}).get("phase") == "active"]
        assert retention and all(p["patient"]["value_deg"] is None for p in retention)
        assert any(p["exercise"]["value_deg"] is not None for p in retention)
        last = frames[-1]["program"]
        assert last["phase"] == "done" and last["awaiting"] == ["pain_after"]
        assert [i["status"] for i in last["items"]] == ["done", "done"]

        # pain after, via REST: the progression decisions follow at once
        r = await http.post("/api/practice/pain", headers=P, json={"when": "after", "value": 3})
        assert r.status_code == 200, r.text
        summary = r.json()["practice"]["program"]["summary"]
        decisions = summary["decisions"]
        assert summary["pain_before"] == 4 and summary["pain_after"] == 3
        assert [d["exercise_id"] for d in decisions] == ["flexion_to_target", "lateral_bend_left"]
        for d in decisions:
            assert d["rule_id"] in RULES and d["reason"] and d["actor"] == "rules"
            assert d["inputs"]["pain"] == {"before": 4, "after": 3, "change": -1}
            assert d["inputs"]["retention"]["reps"] == 5
            if d["inputs"]["retention"]["criterion_met"]:
                assert (d["rule_id"], d["to_level"]) == ("advance", 2)
            else:
                assert (d["rule_id"], d["to_level"]) == ("hold_on_failure", 1)
        assert any(d["rule_id"] == "advance" for d in decisions)

        # stored per patient: the log, the levels, the trends
        log = (await http.get(f"/api/practice/patients/{pid}/decisions", headers=T)).json()
        assert [d["rule_id"] for d in log[-2:]] == [d["rule_id"] for d in decisions]
        view = (await http.get(f"/api/practice/patients/{pid}", headers=P)).json()
        levels = {lv["exercise_id"]: lv for lv in view["levels"]}
        for d in decisions:
            assert levels[d["exercise_id"]]["level"] == d["to_level"]
            ExerciseProgress.from_dict(levels[d["exercise_id"]])
        assert [i["level"] for i in view["program"]["items"]] == [d["to_level"]
                                                                 for d in decisions]
        trends = (await http.get(f"/api/practice/patients/{pid}/trends", headers=P)).json()
        assert trends["pain"] == [{**trends["pain"][0], "before": 4, "after": 3, "change": -1,
                                   "completed": True}]
        # a second rating after the decisions does not decide again
        r = await http.post("/api/practice/finish", headers=T)
        assert r.status_code == 200 and r.json()["decisions"] == decisions
