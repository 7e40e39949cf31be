"""Every live session is stored (api/recording.py): raw samples as received, angles, events,
calibration, reports; storage health in status and frames; replay through the service stores a
new analysis beside the original; a full disk, a read-only store or directory mid-session is
reported while live feedback goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import jsonschema
import numpy as np
import pytest

from fs_support import make_read_only

from api import schema
from api.app import create_app
from api.live import LiveSession
from api.recording import Recordings
from api.settings import Settings
from recordings import RecordingStore
from recordings.testing import simulated_recording, simulated_stream
from sensors.samples import SensorHealth

FAST = {"script": "flexion_reps", "n_reps": 3, "realtime": False, "level": 6, "seed": 4}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Iterator[dict]:
    """One simulated session through the real app (recorded), then its replay through it."""
    import asyncio

    import tests.conftest as conftest

    data = tmp_path_factory.mktemp("live-data")
    out: dict = {"data": data}

    async def run() -> None:
        app = create_app(Settings(data_dir=data))
        accounts = conftest.sign_in_test_accounts(app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://test", cookies=accounts.cookies(),
                                         headers={"Origin": "http://test"}) as c:
                frames: list[str] = []
                app.state.manager.broadcaster.publish = (  # type: ignore[method-assign]
                    lambda msg, topic=None: frames.append(msg))
                r = await c.post("/api/session/start", json=FAST)
                assert r.status_code == 200, r.text
                out["start_status"] = r.json()
                await app.state.manager.current.wait()
                await app.state.recordings.wait_closed()
                out["end_status"] = (await c.get("/api/session")).json()
                out["frames"] = [f for f in frames if '"type":"frame"' in f]
                sid = out["end_status"]["session_id"]
                out["report"] = await c.post(f"/api/recordings/{sid}/reports",
                                             json={"kind": "pain_nrs_after", "value": 3})
                out["list"] = (await c.get("/api/recordings")).json()
                out["frame_schema"] = (await c.get("/api/schema/frame")).json()
                r = await c.post("/api/session/start", json={
                    "source": "replay", "session_id": sid[:8], "realtime": False, "level": 6})
                assert r.status_code == 200, r.text
                await app.state.manager.current.wait()
                await app.state.recordings.wait_closed()
                out["replay_status"] = (await c.get("/api/session")).json()
                out["details"] = (await c.get(f"/api/recordings/{sid}")).json()
                out["unknown"] = await c.post("/api/session/start", json={
                    "source": "replay", "session_id": "nosuchsession", "realtime": False})
                out["bad"] = await c.post("/api/session/start", json={
                    "source": "replay", "session_id": sid, "seed": 3})

    asyncio.run(run())
    yield out


def test_live_session_is_stored_with_samples_angles_events_calibration(recorded) -> None:
    st = recorded["end_status"]
    sid = st["session_id"]
    assert st["state"] == "ended"
    assert st["storage"]["recording"] and st["storage"]["recording_id"] == sid
    assert st["storage"]["healthy"] and st["storage"]["closed"]
    store = RecordingStore(recorded["data"], read_only=True)
    rec = store.session(sid)
    assert rec.status == "completed" and rec.ended_at is not None and rec.source == "simulated"
    assert rec.patient_id is not None  # the signed-in therapist's patient
    # the raw samples as received, bit for bit, device time and counters included
    from sensors.simulation import (
        PatientParams,
        SimulatedPatient,
        calibration_then_flexion_reps,
    )

    truth = SimulatedPatient(calibration_then_flexion_reps(n_reps=3, amplitude_deg=40.0, seed=4),
                             PatientParams(seed=4)).record()
    got = store.read_recording(sid)
    for role in ("upper", "lower"):
        assert len(got[role]) == len(truth[role]) == rec.sensor(role).samples
        assert np.array_equal(got[role].acc, truth[role].acc)
        assert np.array_equal(got[role].gyr, truth[role].gyr)
        assert np.array_equal(got[role].counter, truth[role].counter)
        assert np.allclose(got[role].time_s - rec.time_origin_s, truth[role].time_s, atol=1e-9)
    # derived angles (the live analysis), calibration, events
    live = store.analyses(sid)[0]  # (the replay test's analysis follows it)
    assert live.kind == "live" and live.samples > 0.95 * rec.sensor("lower").samples
    assert store.calibrations(sid)[0].payload["comfortable_flexion_deg"] > 20
    types = [e.type for e in store.events(sid, analysis_id=None)]
    assert types[0] == "session_started" and types[-1] == "session_ended"
    for t in ("calibration_done", "target_changed", "repetition_started"):
        assert t in types
    assert types.count("repetition_scored") == 3
    ended = store.events(sid, "session_ended")[0].payload
    assert ended["state"] == "ended" and ended["frames"] == st["frames"]
    # the report sent after the session was written to the stored session
    assert recorded["report"].status_code == 201 and recorded["report"].json()["stored"] == "stored"
    (report,) = store.reports(sid)
    assert report.kind == "pain_nrs_after" and report.payload == {"value": 3.0}
    assert [r["id"] for r in recorded["list"]] == [sid]


def test_frames_carry_storage_health_and_validate_against_the_schema(recorded) -> None:
    import json

    frames = [json.loads(f) for f in recorded["frames"]]
    assert frames and all(f["storage"]["recording"] for f in frames)
    assert all(f["storage"]["healthy"] for f in frames)
    assert recorded["frame_schema"]["schema_version"] == schema.SCHEMA_VERSION == 1
    for f in (frames[0], frames[-1]):
        jsonschema.validate(f, recorded["frame_schema"])
    # stored_until_s follows the stream, never ahead of what was received
    pairs = [(f["storage"]["stored_until_s"], f["storage"]["received_until_s"]) for f in frames]
    assert all(s is None or s <= r + 1e-9 for s, r in pairs)


def test_replay_through_the_service_stores_a_new_analysis_beside_the_original(recorded) -> None:
    st = recorded["replay_status"]
    sid = recorded["end_status"]["session_id"]
    assert st["source"] == "replay" and st["state"] == "ended"
    assert st["storage"]["analysis_of"] == sid and not st["storage"]["recording"]
    aid = st["storage"]["analysis_id"]
    kinds = {a["id"]: a["kind"] for a in recorded["details"]["analyses"]}
    assert kinds == {1: "live", aid: "replay"}
    store = RecordingStore(recorded["data"], read_only=True)
    assert len(store.sessions()) == 1  # no new session: the samples are not stored again
    live = store.read_angles(sid, 1)
    replay = store.read_angles(sid, aid)
    # the same batches through the same pipeline: the same angles
    assert np.array_equal(live["time_s"], replay["time_s"])
    assert np.allclose(live["flexion_deg"], replay["flexion_deg"], atol=1e-9, equal_nan=True)
    scored = [e.payload["score"]["peak_deg"] for e in store.events(sid, "repetition_scored",
                                                                  analysis_id=None)]
    again = [e.payload["score"]["peak_deg"] for e in store.events(sid, "repetition_scored",
                                                                 analysis_id=aid)]
    assert scored == again and len(again) == 3
    assert len(store.calibrations(sid)) == 2  # the live one and the replay's, both kept


def test_replay_requests_are_checked(recorded) -> None:
    assert recorded["unknown"].status_code == 404
    assert "nosuchsession" in recorded["unknown"].json()["detail"]
    assert recorded["bad"].status_code == 422
    assert "seed" in recorded["bad"].json()["message"]


# --- storage failures mid-session -----------------------------------------------------------

class _ListSource:
    """Batches handed over by the test (no clock): the session sees what a sensor would send."""

    time_origin_s = 0.0

    def health(self) -> dict[str, SensorHealth]:
        return {r: SensorHealth(r, connected=True, device_name=f"test {r}", nominal_rate_hz=100.0)
                for r in ("upper", "lower")}

    async def stop(self) -> None:
        pass


@pytest.fixture(scope="module")
def stream() -> list:
    return simulated_stream(simulated_recording(2, seed=6), 2)


def _session(data: Path) -> tuple[LiveSession, object, Recordings]:
    recs = Recordings(data)
    session = LiveSession(_ListSource(), source_name="simulated", level=6)
    rec = recs.recorder_for(session, schema.StartSessionRequest(script="flexion_reps"))
    session.recorder = rec
    return session, rec, recs


async def _finish(session: LiveSession, recs: Recordings) -> None:
    session.state = "ended"
    session.recorder.on_change(session)  # type: ignore[union-attr]
    await recs.wait_closed()


async def test_full_disk_mid_session_is_reported_and_feedback_goes_on(tmp_path, stream) -> None:
    session, rec, recs = _session(tmp_path)
    half = len(stream) // 2
    for b in stream[:half]:
        session.process_batch(b)
    assert await rec.flush() and rec.health().healthy  # type: ignore[attr-defined]
    writer = rec.writer.writer  # type: ignore[attr-defined]
    # SQLite's page limit stands in for a full disk (the store's fault-simulation hook)
    writer.call_in_writer_thread(lambda c: c.execute("PRAGMA max_page_count = 1")).result(10)
    frames = [session.process_batch(b) for b in stream[half:half + 400]]
    assert not await rec.flush()
    h = rec.health()  # type: ignore[attr-defined]
    assert not h.healthy and h.error_kind == "full" and "Free disk space" in h.last_error
    assert h.pending_samples == sum(len(b) for b in stream[half:half + 400])
    # live feedback went on meanwhile: a frame per lower batch, with angles and feedback
    frames = [f for f in frames if f is not None]
    assert len(frames) == 200 and all(f.angles.flexion_deg is not None for f in frames)
    after = [session.process_batch(b) for b in stream[half + 400:half + 402]]
    after = next(f for f in after if f is not None)  # one lower batch, one upper
    assert after is not None and after.storage is not None and not after.storage.healthy
    assert "full" in session.status().storage.last_error  # type: ignore[union-attr]
    # space again: everything is stored, nothing lost
    writer.call_in_writer_thread(
        lambda c: c.execute("PRAGMA max_page_count = 1073741823")).result(10)
    for b in stream[half + 402:]:
        session.process_batch(b)
    assert await rec.flush() and rec.health().healthy  # type: ignore[attr-defined]
    await _finish(session, recs)
    store = RecordingStore(tmp_path)
    r = store.session(session.session_id)
    assert r.status == "completed" and r.samples == sum(len(b) for b in stream)
    await recs.aclose()


async def test_read_only_store_mid_session_is_reported(tmp_path, stream) -> None:
    session, rec, recs = _session(tmp_path)
    for b in stream[:100]:
        session.process_batch(b)
    assert await rec.flush()
    writer = rec.writer.writer  # type: ignore[attr-defined]
    writer.call_in_writer_thread(lambda c: c.execute("PRAGMA query_only = 1")).result(10)
    for b in stream[100:300]:
        session.process_batch(b)
    assert not await rec.flush()
    h = session.status().storage
    assert h is not None and not h.healthy and h.error_kind == "read_only"
    assert "read-only" in h.last_error
    writer.call_in_writer_thread(lambda c: c.execute("PRAGMA query_only = 0")).result(10)
    await _finish(session, recs)
    assert RecordingStore(tmp_path).session(session.session_id).samples == sum(
        len(b) for b in stream[:300])
    await recs.aclose()




async def test_unwritable_data_directory_session_runs_and_says_not_recorded(tmp_path,
                                                                            stream) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    for _ in make_read_only(ro):
        session, rec, recs = _session(ro / "lumbo")
        frames = [session.process_batch(b) for b in stream[:200]]
        assert sum(f is not None for f in frames) == 100  # the session runs
        h = session.status().storage
        assert h is not None and not h.recording and not h.healthy
        assert "NOT being recorded" in h.last_error and "not writable" in h.last_error
        assert frames[-1] is not None and frames[-1].storage.healthy is False
        await _finish(session, recs)
        await recs.aclose()


# --- the app in-process: import errors and exports over REST -------------------------------

@pytest.fixture
async def client(tmp_path, sign_in) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = create_app(Settings(data_dir=tmp_path))
    accounts = sign_in(app)
    app.state.test_accounts = accounts
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test", cookies=accounts.cookies(),
                                     headers={"Origin": "http://test"}) as c:
            yield app, c


async def test_access_therapists_see_their_patients_recordings_only(client) -> None:
    from recordings.make_samples import SAMPLES_DIR

    app, c = client
    accounts = app.state.test_accounts
    pid = accounts.patient.id
    r = await c.post("/api/recordings/import", params={"name": "p.csv.xz", "patient_id": pid},
                     content=(SAMPLES_DIR / "flexion_reps.csv.xz").read_bytes())
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    auth = app.state.auth
    other = auth.create_therapist("other-therapist", None, "Other")
    token = auth.open_session(other)[0]
    from api.auth.middleware import COOKIE_NAME

    headers = {"Origin": "http://test"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 cookies={COOKIE_NAME: token}, headers=headers) as o:
        assert (await o.get(f"/api/recordings/{sid}")).status_code == 404
        assert (await o.get(f"/api/recordings/{sid}/export")).status_code == 404
        assert (await o.get("/api/recordings")).json() == []
        r = await o.post("/api/recordings/import", params={"patient_id": pid}, content=b"x")
        assert r.status_code == 404
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 cookies=accounts.cookies("patient"), headers=headers) as p:
        assert (await p.get("/api/recordings")).status_code == 403
        r = await p.post(f"/api/recordings/{sid}/reports", json={"kind": "pain_nrs_before",
                                                                 "value": 4})
        assert r.status_code == 201 and r.json()["stored"] == "stored"
        r = await p.post(f"/api/recordings/{sid}/reports", json={"kind": "Bad Kind"})
        assert r.status_code == 422
    assert (await c.get(f"/api/recordings/{sid}")).json()["reports"] == 1


async def test_rest_import_errors_name_the_line_and_store_nothing(client) -> None:
    app, c = client
    good = "time_s,sensor,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n"
    rows = [f"{i * 0.01:.2f},{r},0,0,9.81,0,0,0" for i in range(300) for r in ("upper", "lower")]
    cases = {
        "truncated": (good + "\n".join(rows) + "\n0.5,lower,0,0", "line 602", "columns"),
        "duplicate": (good + "\n".join(rows[:10] + [rows[8]] + rows[10:]), "line 12", "repeats"),
        "unknown sensor": (good + "\n".join(rows).replace("0.05,upper", "0.05,middle"),
                           "line 12", "unknown sensor"),
        "units in g": (good + "\n".join(rows).replace(",9.81,", ",1.0,"), "line 2", " g"),
        "not a csv": ("hello\n", "line 1", "header"),
    }
    for name, (body, where, what) in cases.items():
        r = await c.post("/api/recordings/import", params={"name": f"{name}.csv"},
                         content=body.encode())
        assert r.status_code == 422, (name, r.text)
        detail = r.json()["detail"]
        assert where in detail and what in detail and "Nothing was imported" in detail, detail
    assert (await c.get("/api/recordings")).json() == []
    r = await c.post("/api/recordings/import", params={"name": "ok.csv"},
                     content=(good + "\n".join(rows) + "\n").encode())
    assert r.status_code == 201, r.text
    assert r.json()["recording"]["samples"] == 600


async def test_rest_export_formats_and_errors(client) -> None:
    from recordings.make_samples import SAMPLES_DIR

    app, c = client
    body = (SAMPLES_DIR / "flexion_reps.csv.xz").read_bytes()
    r = await c.post("/api/recordings/import", params={"name": "flexion_reps.csv.xz"},
                     content=body)
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    r = await c.get(f"/api/recordings/{sid}/export", params={"format": "angles-csv"})
    assert r.status_code == 200 and "no stored angles" in r.headers["x-lumbo-warning"]
    assert r.text.startswith("time_s,flexion_deg,")
    r = await c.post(f"/api/recordings/{sid}/analyses")
    assert r.status_code == 201 and r.json()["kind"] == "offline"
    aid = r.json()["id"]
    assert r.json()["events"]["repetition"] == 25
    r = await c.get(f"/api/recordings/{sid}/export",
                    params={"format": "repetitions-csv", "analysis": aid})
    assert r.status_code == 200 and len(r.text.splitlines()) == 26
    assert r.headers["content-disposition"].endswith('repetitions.csv"')
    r = await c.get(f"/api/recordings/{sid}/export", params={"format": "sto"})
    assert r.status_code == 200 and r.text.startswith("DataRate=")
    assert "time\tpelvis_imu\ttorso_imu" in r.text[:200]
    assert (await c.get("/api/recordings/nosuch/export")).status_code == 404
    r = await c.get(f"/api/recordings/{sid}/export", params={"format": "angles-csv",
                                                              "analysis": 99})
    assert r.status_code == 404 and "no analysis 99" in r.json()["detail"]
    r = await c.get(f"/api/recordings/{sid}/export", params={"format": "xls"})
    assert r.status_code == 422


async def test_patient_reports_join_the_live_recording(tmp_path, stream) -> None:
    session, rec, recs = _session(tmp_path)
    assert rec.add_report("pain_nrs_before", {"value": 4})  # type: ignore[attr-defined]
    for b in stream[:200]:
        session.process_batch(b)
    assert rec.add_report("comment", {"text": "stiff today"})  # type: ignore[attr-defined]
    await _finish(session, recs)
    assert not rec.add_report("late", {})  # type: ignore[attr-defined]
    reports = RecordingStore(tmp_path).reports(session.session_id)
    assert [(r.kind, r.payload) for r in reports] == [
        ("pain_nrs_before", {"value": 4}), ("comment", {"text": "stiff today"})]
    newest = max(float(b.time_s[-1]) for b in stream[:200])  # the stream time when reported
    assert reports[0].time_s is None and reports[1].time_s == pytest.approx(newest)
    await recs.aclose()
