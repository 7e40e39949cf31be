"""Graded practice in the live session layer (no HTTP unless said): the baseline assessment as a
guided flow, stored and repeatable; targets from the baseline; the therapist changing a level
while an exercise runs; skipping a rest; programs that cannot run; the REST inputs' validation;
the per-patient store; `lumbo demo`. The simulated patient performs each program (unpaced)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest

from api import schema
from api.app import create_app
from api.fanout import Broadcaster
from api.live import LiveSession, SessionManager
from api.practice import PracticeError, PracticeService
from api.practice_models import PracticeStart, ProgramEdit
from api.practice_store import PatientStore
from api.settings import Settings
from test_practice_live_support import sign_in


class Rig:
    """A session manager with practice, capturing every published message."""

    def __init__(self, data_dir: Any = None) -> None:
        self.broadcaster = Broadcaster(queue_size=8)
        self.messages: list[str] = []
        self._frames: list[dict] = []
        self._events: list[dict] = []
        self.broadcaster.publish = lambda msg, **kw: self.messages.append(msg)  # type: ignore
        self.manager = SessionManager(self.broadcaster)
        self.svc = PracticeService(data_dir)
        self.manager.practice = self.svc

    async def start(self, pid: str = "p1", **practice: Any) -> LiveSession:
        req = schema.StartSessionRequest(realtime=False, seed=practice.pop("seed", 1),
                                         calibration_deg=practice.pop("calibration_deg", 80.0),
                                         practice=PracticeStart(patient_id=pid, **practice))
        return await self.manager.start(req)

    def frames(self) -> list[dict]:
        """The frames published so far (parsed once each)."""
        new, self.messages = self.messages, []
        for m in new:
            if m.startswith('{"type":"frame"'):
                f = json.loads(m)
                self._frames.append(f)
                self._events += f["program_events"]
        return self._frames

    def events(self) -> list[dict]:
        self.frames()
        return self._events


async def until(session: LiveSession, cond: Callable[[], bool]) -> None:
    """Yield to the session task until `cond()` (a condition, not a time); fail if it ends first."""
    while not cond():
        assert session.active, f"the session {session.state} before the condition held"
        await asyncio.sleep(0)


async def test_baseline_assessment_is_guided_stored_repeatable_and_sets_targets() -> None:
    rig = Rig()
    session = await rig.start(mode="baseline", directions=["flexion", "lateral_bend_left"])
    await session.wait()
    events = rig.events()
    kinds = [e["type"] for e in events]
    assert kinds.count("baseline_step_started") == 2 and kinds[-1] == "baseline_completed"
    assert kinds.count("baseline_movement_measured") == 6
    assert all(e["cue"]["text"] for e in events if e["type"] == "baseline_step_started")
    frames = rig.frames()
    steps = [f["program"]["baseline"]["step"] for f in frames if f["program"].get("baseline")]
    assert "flexion" in steps and "lateral_bend_left" in steps
    assert frames[-1]["program"]["phase"] == "done"
    # stored per patient; the simulated patient bends 80 deg x 0.5 forward, 30 deg x 0.85 left
    rec = rig.svc.record("p1")
    ranges = {k: v["range_deg"] for k, v in rec["baselines"][-1]["baseline"]["directions"].items()}
    assert ranges["flexion"] == pytest.approx(40.0, abs=4.0)
    assert ranges["lateral_bend_left"] == pytest.approx(25.5, abs=4.0)

    # repeatable: a second assessment is compared with the first against the MDC
    session = await rig.start(mode="baseline", directions=["flexion"], seed=2)
    await session.wait()
    rec = rig.svc.record("p1")
    assert len(rec["baselines"]) == 2
    review = rec["decisions"][-1]
    assert review["rule_id"] == "baseline_mdc" and "no measurable change" in review["reason"]

    # today's program takes its targets from the stored baseline (lateral from the first one,
    # forward from the latest)
    rig.svc.edit_program("p1", ProgramEdit(items=[{"exercise_id": "lateral_bend_left",
                                                    "level": 1}]))
    session = await rig.start(baseline_from="stored")
    await until(session, lambda: rig.svc.driver.runner is not None
                and rig.svc.driver.runner.engine is not None)
    targets = rig.svc.driver.runner.engine.targets
    assert targets.range_deg == pytest.approx(ranges["lateral_bend_left"])
    assert targets.target_deg == pytest.approx(0.4 * ranges["lateral_bend_left"])
    await session.stop()


async def test_therapist_level_change_restarts_the_running_exercise_between_movements() -> None:
    rig = Rig()
    rig.svc.edit_program("p1", ProgramEdit(items=[{"exercise_id": "flexion_to_target",
                                                    "level": 1, "sets": 2, "retention": False}]))
    session = await rig.start()
    driver = rig.svc.driver
    await until(session, lambda: driver.runner is not None and driver.runner.engine is not None
                and driver.runner.engine.state.rep_count >= 2)
    decisions, _ = rig.svc.set_level("p1", "flexion_to_target", 4, None, "ready", "t1")
    assert decisions[0]["rule_id"] == "therapist_set" and decisions[0]["to_level"] == 4
    assert driver.frame()["items"][0]["level"] == 4  # the list follows at once
    await until(session, lambda: any(e["type"] == "self_estimate_prompt"
                                     for e in rig.events()))
    # answer it through the driver as the REST route does
    await until(session, lambda: "self_estimate" in driver.frame()["awaiting"])
    answer = driver.submit_self_estimate("on_target")
    await session.stop()
    assert [e["type"] for e in answer] == ["self_estimate_result", "repetition_feedback"]
    events = rig.events()
    changed = next(i for i, e in enumerate(events) if e["type"] == "level_changed")
    assert events[changed]["restarted"] is True and events[changed]["level"] == 4
    assert events[changed - 1]["type"] in ("repetition_recorded", "repetition_feedback",
                                           "repetition_interrupted")  # between movements
    later = [e for e in events[changed:] if e["type"] == "repetition_recorded"]
    assert later and all(e["level"] == 4 for e in later)
    # the restarted exercise found its start standing, not at the peak of a bend
    found = [e for e in events[changed:] if e["type"] == "start_position_found"][0]
    assert abs(found["anchors_deg"]["flexion_deg"]) < 3.0
    assert all(abs(e["result"]["error_deg"]) < 15 for e in later)
    # at level 4 (terminal feedback) the patient view hides the live position
    hidden = [f["program"] for f in rig.frames() if (f["program"].get("exercise") or {}).get(
        "level") == 4 and f["program"]["exercise"]["phase"] == "active"]
    assert hidden and all(p["patient"]["value_deg"] is None and p["patient"]["target_deg"] is None
                          for p in hidden)
    validator = jsonschema.Draft202012Validator(schema.json_schema("frame"))
    for f in rig.frames()[::40]:
        validator.validate(f)


async def test_skipping_a_rest_starts_the_next_set_at_once() -> None:
    rig = Rig()
    rig.svc.edit_program("p1", ProgramEdit(items=[{"exercise_id": "flexion_to_target",
                                                    "level": 1, "sets": 2, "retention": False}]))
    session = await rig.start()
    driver = rig.svc.driver
    await until(session, lambda: driver.runner is not None and driver.runner.engine is not None
                and driver.runner.engine.state.phase == "rest")
    assert driver.frame()["patient"]["rest_remaining_s"] > 20
    driver.skip_rest()
    await until(session, lambda: any(e["type"] == "block_started" and e["index"] == 2
                                     for e in rig.events()))
    await session.stop()
    events = rig.events()
    rest = next(e for e in events if e["type"] == "rest_started")
    block = next(e for e in events if e["type"] == "block_started" and e["index"] == 2)
    assert rest["duration_s"] == 30 and block["time_s"] - rest["time_s"] < 1.0
    assert any(e["type"] == "rest_skipped" for e in events)


async def test_programs_that_cannot_run_are_refused_or_blocked_with_a_reason() -> None:
    rig = Rig()
    # a side bend needs a baseline side-bend range: refused before anything starts
    rig.svc.store.save({**rig.svc.record("p1"), "program": {"items": [
        {"exercise_id": "lateral_bend_left", "level": 1, "sets": None, "retention": True,
         "rest_after_s": 30}], "retention_at": "end"}})
    with pytest.raises(PracticeError, match="lateral_bend_left"):
        await rig.start()
    assert rig.manager.current is None
    with pytest.raises(PracticeError, match="no stored baseline"):
        await rig.start("p2", baseline_from="stored")
    # a stiff patient (48 deg calibration bend, ~24 deg lumbar): level 1's band would reach the
    # rest zone; the session runs, the program says why it waits
    session = await rig.start("p3", calibration_deg=48.0)
    driver = rig.svc.driver
    await until(session, lambda: driver.phase != "calibrating")
    assert driver.phase == "blocked" and "rest zone" in driver.message
    assert session.state == "running" and "cannot run" in session.message
    await session.stop()


async def test_rest_inputs_are_validated_with_clear_messages() -> None:
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        access = sign_in(app)
        pid, T, P = access.patient_id, access.therapist_headers, access.patient_headers
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            async def check(resp: httpx.Response, status: int, *words: str) -> None:
                assert resp.status_code == status, resp.text
                body = resp.json()
                text = body.get("message") or body.get("detail")
                assert isinstance(text, str) and text
                for w in words:
                    assert w.lower() in text.lower(), (w, text)

            # no session yet
            await check(await c.post("/api/practice/pain", headers=P,
                                     json={"when": "before", "value": 3}), 409, "start")
            r = await c.post("/api/practice/start", headers=P, json={"session": {
                "realtime": True, "speed": 1.0}})
            assert r.status_code == 200, r.text
            for bad in ("a lot", 11, -1, 3.5, True, None, "7.5", ""):
                await check(await c.post("/api/practice/pain", headers=P,
                                         json={"when": "before", "value": bad}),
                            422, "whole number from 0", "10")
            await check(await c.post("/api/practice/pain", headers=P,
                                     json={"when": "during", "value": 3}), 422, "before")
            await check(await c.post("/api/practice/pain", headers=P, json={"when": "after"}),
                        422, "value")
            r = await c.post("/api/practice/pain", headers=P, json={"when": "before", "value": "7"})
            assert r.status_code == 200 and r.json()["practice"]["program"]["pain_before"] == 7
            await check(await c.post("/api/practice/self-estimate", headers=P,
                                     json={"estimate": "on_target"}), 409, "no self-estimate")
            await check(await c.post("/api/practice/skip-rest", headers=P), 409, "no rest")
            await check(await c.post("/api/practice/request-feedback", headers=P), 409)
            await check(await c.post("/api/practice/start", headers=P, json={}), 409)
            # the therapist's side
            base = f"/api/practice/patients/{pid}"
            await check(await c.put(f"{base}/levels/flexion_to_target", headers=T,
                                    json={"level": 99}), 422, "levels 1-14")
            await check(await c.put(f"{base}/levels/nope", headers=T, json={"level": 2}),
                        404, "no exercise")
            await check(await c.put(f"{base}/levels/flexion_to_target", headers=T, json={}),
                        422, "level")
            await check(await c.put(f"{base}/program", headers=T, json={"items": [
                {"exercise_id": "nope"}, {"exercise_id": "neutral_hold", "level": 40}]}),
                422, "item 1", "nope", "item 2", "levels 1-8")
            await check(await c.put(f"{base}/program", headers=T, json={"items": [
                {"exercise_id": "extension_to_target", "level": 1}]}), 422, "extension range")
            await check(await c.put(f"{base}/program", headers=T, json={"items": []}), 422)
            await check(await c.post(f"{base}/baselines", headers=T,
                                     json={"ranges_deg": {"flexion": 500}}), 422, "flexion")
            await check(await c.post(f"{base}/baselines", headers=T,
                                     json={"ranges_deg": {"sideways": 20}}), 422, "unknown range")
            await check(await c.post(f"{base}/rmdq", headers=P, json={"answers": [True] * 23}),
                        422, "24")
            await check(await c.post(f"{base}/rmdq", headers=P,
                                     json={"answers": [False] * 23 + ["maybe"]}),
                        422, "item 24", "yes or no")
            r = await c.post(f"{base}/rmdq", headers=P, json={"answers": ["yes"] * 5 + [False] * 19})
            assert r.status_code == 200 and r.json()["score"] == 5
            rmdq = (await c.get(f"{base}/rmdq", headers=P)).json()
            assert rmdq["wording_included"] is False and "copyright" in rmdq["note"]
            assert len(rmdq["items"]) == 24 and rmdq["history"][0]["score"] == 5
            if access.patient_headers:  # with accounts: a patient cannot prescribe
                await check(await c.put(f"{base}/levels/flexion_to_target", headers=P,
                                        json={"level": 2}), 403)
                await check(await c.get(f"{base}/decisions", headers=P), 403)
            r = await c.put(f"{base}/levels/flexion_to_target", headers=T,
                            json={"level": 2, "locked": True, "reason": "steady"})
            assert [d["rule_id"] for d in r.json()["decisions"]] == ["therapist_set",
                                                                    "therapist_lock"]
            lib = (await c.get("/api/practice/library", headers=P)).json()
            assert {e["id"] for e in lib} >= {"flexion_to_target", "lateral_bend_left"}
            await c.post("/api/session/stop", headers=P)


def test_patient_store_persists_atomically_and_sets_damaged_files_aside(tmp_path) -> None:
    store = PatientStore(tmp_path)
    rec = store.load("p-1")
    rec["rmdq"].append({"week": 0, "score": 3})
    store.save(rec)
    assert PatientStore(tmp_path).load("p-1")["rmdq"] == [{"week": 0, "score": 3}]
    path = tmp_path / "practice" / "patients" / "p-1.json"
    path.write_text("{ not json")
    assert PatientStore(tmp_path).load("p-1")["rmdq"] == []  # a fresh record ...
    assert path.with_suffix(".json.bad").exists()  # ... and the damaged file kept aside
    with pytest.raises(ValueError, match="patient id"):
        store.load("../etc/passwd")


def test_lumbo_demo_runs_todays_program_unless_classic(monkeypatch) -> None:
    from api import cli

    seen: list[Settings] = []
    monkeypatch.setattr(cli, "_run", lambda settings, title, level: seen.append(settings) or 0)
    assert cli.main(["demo", "--port", "8999"]) == 0
    assert cli.main(["demo", "--classic"]) == 0
    program, classic = seen
    assert program.autostart.practice is not None and program.autostart.practice.mode == "program"
    assert classic.autostart.practice is None and classic.autostart.loop
