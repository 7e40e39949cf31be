"""Several patients' live sessions in one process: each runs on its own, on its own topic."""

from __future__ import annotations

import asyncio
import json

import pytest

from api import schema
from api.fanout import Broadcaster
from api.live import SessionConflict, SessionManager
from api.sources import make_source


class _Recorder:
    """A broadcaster stand-in that keeps what was published on each topic."""

    def __init__(self) -> None:
        self.broadcaster = Broadcaster()
        self.by_topic: dict[str | None, list[dict]] = {}
        self.broadcaster.publish = self.publish  # type: ignore[method-assign]

    def publish(self, message: str, topic: str | None = None) -> None:
        self.by_topic.setdefault(topic, []).append(json.loads(message))

    def frames(self, topic: str) -> list[dict]:
        return [m for m in self.by_topic.get(topic, []) if m["type"] == "frame"]


def _sim(n_reps: int, seed: int) -> schema.StartSessionRequest:
    return schema.StartSessionRequest(script="flexion_reps", n_reps=n_reps, seed=seed,
                                      realtime=False, level=6)


def _reps(session) -> int:
    """Repetitions done over the whole session (completed sets and the running one)."""
    sets = [*session.completed_sets, session.summary() or {"reps": 0}]
    return sum(int(s["reps"]) for s in sets)


async def test_two_patients_run_at_once_each_on_their_own_topic() -> None:
    rec = _Recorder()
    manager = SessionManager(rec.broadcaster)
    a = await manager.start(_sim(3, seed=1), patient_id="pa")
    b = await manager.start(_sim(5, seed=2), patient_id="pb")
    assert {s.session_id for s in manager.live_sessions()} == {a.session_id, b.session_id}
    await asyncio.gather(a.wait(), b.wait())
    fa, fb = rec.frames("pa"), rec.frames("pb")
    assert fa and fb
    assert {f["session_id"] for f in fa} == {a.session_id}
    assert {f["session_id"] for f in fb} == {b.session_id}
    # each saw its own movement: 3 and 5 repetitions
    assert _reps(a) == 3 and _reps(b) == 5
    assert manager.status_for("pa").session_id == a.session_id
    assert manager.status_for("pb").session_id == b.session_id
    assert manager.live_sessions() == []


async def test_same_patient_cannot_start_twice_but_others_can() -> None:
    manager = SessionManager(_Recorder().broadcaster)
    slow = schema.StartSessionRequest(script="flexion_reps", n_reps=2, realtime=True)
    a = await manager.start(slow, patient_id="pa")
    with pytest.raises(SessionConflict, match="stop it first"):
        await manager.start(slow, patient_id="pa")
    b = await manager.start(slow, patient_id="pb")
    await manager.by_patient["pa"].stop()
    assert not a.active and b.active  # stopping one patient's session leaves the other's
    again = await manager.start(slow, patient_id="pa")
    assert again.active and manager.by_patient["pa"] is again
    await manager.shutdown()
    assert manager.live_sessions() == []


async def test_limit_on_live_sessions_and_one_ble_session_per_host() -> None:
    made: list[str] = []

    def factory(req: schema.StartSessionRequest):
        made.append(req.source)
        return make_source(schema.StartSessionRequest(script="flexion_reps", realtime=True))

    manager = SessionManager(_Recorder().broadcaster, source_factory=factory,
                             max_live_sessions=2)
    await manager.start(schema.StartSessionRequest(source="ble", upper="AA:AA:AA:AA:AA:01",
                                                   lower="AA:AA:AA:AA:AA:02"), patient_id="p1")
    with pytest.raises(SessionConflict, match="Bluetooth sensors of this host are in use"):
        await manager.start(schema.StartSessionRequest(source="ble", upper="AA:AA:AA:AA:AA:03",
                                                       lower="AA:AA:AA:AA:AA:04"),
                            patient_id="p2")
    await manager.start(schema.StartSessionRequest(script="flexion_reps"), patient_id="p2")
    with pytest.raises(SessionConflict, match="already runs 2 live sessions"):
        await manager.start(schema.StartSessionRequest(script="flexion_reps"), patient_id="p3")
    assert made == ["ble", "simulated"]
    await manager.shutdown()


async def test_ended_sessions_are_forgotten_beyond_the_limit() -> None:
    manager = SessionManager(_Recorder().broadcaster, max_live_sessions=2)
    for i in range(4):
        s = await manager.start(_sim(1, seed=i), patient_id=f"p{i}")
        await s.wait()
    # pruned as each session starts: the two newest ended ones stay, plus the one just started
    assert list(manager.by_patient) == ["p1", "p2", "p3"]
    assert set(manager.sessions) == {s.session_id for s in manager.by_patient.values()}


def test_demo_companions_practise_alongside_the_demo_patient() -> None:
    """`lumbo demo` (two companions by default): three demo patients of the one demo therapist
    are live at once, each on its own topic."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.auth.config import AuthSettings
    from api.settings import Settings

    settings = Settings(autostart=schema.StartSessionRequest(script="demo", realtime=True),
                        auth=AuthSettings(demo_accounts=True), demo_companions=2)
    app = create_app(settings)
    with TestClient(app):
        live = app.state.manager.live_sessions()
        auth = app.state.auth
        therapist = auth.store.by_username("demo-therapist")
        names = sorted(auth.store.get(s.patient_id).username for s in live)
        assert names == ["demo-patient", "demo-patient-2", "demo-patient-3"]
        assert {p.id for p in auth.patients_of(therapist)} >= {s.patient_id for s in live}
    assert app.state.manager.live_sessions() == []
