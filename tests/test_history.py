"""A patient's history: the aggregation (api/history.py), `GET /api/patients/{id}/history`, its
CSV, the report page's access, and the live overview (`GET /api/live/sessions`, `/ws/overview`).

The history is seeded through the real code paths (tests/history_support.py): two simulated
sessions imported into the store with dates two weeks and one week ago and analysed offline
(the simulated patient bent less back then), then today an unpaced single-exercise session and a
day's program with pain before and after, over HTTP. What the history says is checked against
independent sources: the simulated patient's script, the calibration's measure, the practice
record's own block results. In-process (Starlette's TestClient: real ASGI, lifespan, WebSockets);
waits are on sessions ending and on messages, never on time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from api.app import create_app
from api.auth.middleware import COOKIE_NAME
from api.history import (
    ExerciseInfo,
    StoredSession,
    build_history,
    history_csv,
    robust_peak_deg,
    session_metrics,
)
from api.settings import Settings
from history_support import days_ago, import_simulated, run_flexion, start_program

BASE = "http://testserver"
LUMBAR_SHARE = 0.5  # PatientParams().lumbar_share: the lumbar part of the simulated trunk bend
OLD = ((14, 60.0, 30.0, 6), (7, 70.0, 35.0, 5))  # (days ago, calibration bend, bends, pain)


@dataclass
class Seeded:
    app: Any
    client: TestClient
    acc: dict[str, Any]
    imported: list[str] = field(default_factory=list)
    flexion: str = ""
    program: str = ""

    def h(self, who: str | None, origin: bool = True) -> dict[str, str]:
        headers = {"Origin": BASE} if origin else {}
        if who is not None:
            token = self.app.state.auth.open_session(self.acc[who])[0]
            headers["Cookie"] = f"{COOKIE_NAME}={token}"
        return headers

    def get(self, path: str, who: str | None = "t", **kw: Any) -> Any:
        r = self.client.get(path, headers=self.h(who), follow_redirects=False, **kw)
        self.client.cookies.clear()
        return r


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("history"), heartbeat_s=0.05))
    auth = app.state.auth
    t = auth.create_therapist("hist-therapist", None, "History Therapist")
    a = auth.create_patient("hist-anna", t.id, None, "Anna Progress")
    a2 = auth.create_patient("hist-bert", t.id, None, "Bert Second")
    a3 = auth.create_patient("hist-cleo", t.id, None, "Cleo Third")
    u = auth.create_therapist("hist-other", None, "Other Therapist")
    b = auth.create_patient("hist-carl", u.id, None, "Carl Elsewhere")
    acc = {"t": t, "a": a, "a2": a2, "a3": a3, "u": u, "b": b}
    with TestClient(app, base_url=BASE) as client:
        s = Seeded(app, client, acc)
        store = app.state.recordings.store
        for days, cal, amp, pain in OLD:
            sid = import_simulated(store, a.id, started_at=days_ago(days), seed=days,
                                   calibration_deg=cal, amplitude_deg=amp)
            s.imported.append(sid)
            r = client.post(f"/api/recordings/{sid}/reports", headers=s.h("a"),  # the patient
                            json={"kind": "pain_nrs_before", "value": pain})
            assert r.status_code == 201, r.text
        s.flexion = run_flexion(client, s.h("t"), a.id, n_reps=3)
        client.portal.call(app.state.manager.by_patient[a.id].wait)
        s.program = start_program(client, s.h("t"), a.id, pain_before=4)
        client.portal.call(app.state.manager.by_patient[a.id].wait)
        r = client.post(f"/api/practice/pain?patient_id={a.id}", headers=s.h("a"),
                        json={"when": "after", "value": 3})
        assert r.status_code == 200, r.text
        client.portal.call(app.state.recordings.wait_closed)
        client.cookies.clear()
        yield s


# ------------------------------------------------------------------------------ the document
def test_history_of_stored_and_live_recorded_sessions(seeded: Seeded) -> None:
    s = seeded
    r = s.get(f"/api/patients/{s.acc['a'].id}/history")
    assert r.status_code == 200, r.text
    h = r.json()
    sessions = h["sessions"]
    assert [x["session_id"] for x in sessions] == [*s.imported, s.flexion, s.program]
    assert [x["kind"] for x in sessions] == ["recording", "recording", "flexion", "program"]
    assert [x["week"] for x in sessions] == [0, 1, 2, 2]  # the programme began 14 days ago
    assert h["programme_start"] == days_ago(14)[:10]
    assert [x["number"] for x in sessions] == [1, 2, 3, 4]
    assert all(x["recorded"] and x["status"] == "completed" for x in sessions)

    # range of motion: the simulated patient bent 60°, 70°, then 80° of trunk in the
    # calibration, the lumbar spine taking half: the furthest lumbar flexion follows
    peaks = [x["peak_deg"]["flexion"] for x in sessions]
    for x, cal in zip(sessions, (60.0, 70.0, 80.0, 80.0)):
        assert x["peak_deg"]["flexion"] == pytest.approx(LUMBAR_SHARE * cal, abs=2.0)
        assert x["comfortable_flexion_deg"] == pytest.approx(x["peak_deg"]["flexion"], abs=2.0)
        assert x["practised"] == ["flexion"]
    assert peaks[0] < peaks[1] < peaks[2]
    # the imported sessions: the offline segmentation found the calibration bend and 3 bends
    for x in sessions[:2]:
        assert x["repetitions"] == 4 and x["mean_abs_error_deg"] is None
        assert x["exercises"][0]["exercise_id"] == "movement_flexion"

    # precision and smoothness
    flex, prog = sessions[2], sessions[3]
    assert flex["repetitions"] == 3 and flex["levels"] == {"flexion_classic": 1}
    assert 0 < flex["mean_abs_error_deg"] < 8 and flex["in_tolerance_share"] == 1.0
    assert flex["retention_mean_abs_error_deg"] is None
    assert prog["levels"] == {"flexion_to_target": 1}
    assert prog["repetitions"] == 8 + 5 and prog["exercises"][0]["retention_repetitions"] == 5
    record = s.app.state.practice.record(s.acc["a"].id)
    entry = next(e for e in record["sessions"] if e["session_id"] == s.program)
    retention = entry["outcome"]["retention"]["flexion_to_target"]
    # two independent sources agree: the stored events and the practice record's block
    assert prog["retention_mean_abs_error_deg"] == pytest.approx(
        retention["mean_abs_error_deg"], abs=0.006)
    assert prog["retention_in_tolerance_share"] == pytest.approx(
        retention["reps_in_tolerance"] / retention["reps"], abs=1e-3)
    for x in sessions:  # SPARC and LDLJ are negative; closer to 0 is smoother
        assert x["sparc"] is not None and x["sparc"] < 0
        assert x["ldlj"] is not None and x["ldlj"] < 0

    # pain: reported on the stored sessions, rated around the program (after: after its end)
    assert [(x["pain_before"], x["pain_after"]) for x in sessions] == [
        (6, None), (5, None), (None, None), (4, 3)]
    assert [d["exercise_id"] for d in prog["decisions"]] == ["flexion_to_target"]
    assert prog["decisions"][0]["rule_id"] in {"advance", "hold_on_failure"}
    assert [d["session_id"] for d in h["decisions"]] == [s.program]

    # weeks: the furthest bend per week grows; pain before falls
    weeks = h["weeks"]
    assert [(w["week"], w["sessions"]) for w in weeks] == [(0, 1), (1, 1), (2, 2)]
    assert [w["peak_deg"]["flexion"] for w in weeks] == [peaks[0], peaks[1], max(peaks[2:])]
    assert [w["pain_before"] for w in weeks] == [6.0, 5.0, 4.0]
    assert weeks[2]["repetitions"] == 3 + 13
    summary = h["summary"]
    assert summary["sessions"] == 4 and summary["weeks"] == 3 and summary["repetitions"] == 24
    assert summary["peak_flexion_deg"]["change"] == pytest.approx(
        max(peaks[2:]) - peaks[0], abs=0.11)
    assert summary["pain_before"] == {"first": 6.0, "last": 4.0, "change": -2.0, "values": 3}
    assert h["directions_practised"] == ["flexion"]
    assert h["recordings"] == {"available": True, "note": None}


def test_a_period_selects_sessions_weeks_and_decisions(seeded: Seeded) -> None:
    s = seeded
    pid = s.acc["a"].id
    week_ago = days_ago(7)[:10]
    h = s.get(f"/api/patients/{pid}/history", params={"from": week_ago, "to": week_ago}).json()
    assert [x["session_id"] for x in h["sessions"]] == [s.imported[1]]
    assert h["period"] == {"from": week_ago, "to": week_ago}
    assert h["decisions"] == [] and [w["week"] for w in h["weeks"]] == [1]
    r = s.get(f"/api/patients/{pid}/history", params={"from": "2026-02-30"})
    assert r.status_code == 422
    r = s.get(f"/api/patients/{pid}/history", params={"from": "2030-01-02", "to": "2030-01-01"})
    assert r.status_code == 422 and "after it ends" in r.json()["message"]


def test_csv_has_units_in_its_columns_and_the_json_values(seeded: Seeded) -> None:
    s = seeded
    pid = s.acc["a"].id
    h = s.get(f"/api/patients/{pid}/history").json()
    r = s.get(f"/api/patients/{pid}/history.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        'attachment; filename="lumbo-history-hist-anna-sessions.csv"')
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(h["sessions"]) == 4
    header = next(csv.reader(io.StringIO(r.text)))
    for col in ("peak_flexion_deg", "comfortable_flexion_deg", "duration_s",
                "retention_mean_abs_error_deg", "pain_before_nrs_0_10", "sparc_median"):
        assert col in header
    for row, x in zip(rows, h["sessions"]):
        assert row["session_id"] == x["session_id"] and row["date"] == x["date"]
        assert float(row["peak_flexion_deg"]) == x["peak_deg"]["flexion"]
        assert row["peak_lateral_bend_left_deg"] == ""  # not practised: left empty
        assert row["pain_before_nrs_0_10"] == ("" if x["pain_before"] is None
                                               else str(x["pain_before"]))
    assert rows[3]["exercises_and_levels"] == "flexion_to_target=1"
    assert rows[3]["decisions"].startswith("flexion_to_target:")
    weeks = list(csv.DictReader(io.StringIO(
        s.get(f"/api/patients/{pid}/history.csv", params={"table": "weeks"}).text)))
    assert [w["programme_week"] for w in weeks] == ["0", "1", "2"]
    assert [float(w["pain_before_mean_nrs_0_10"]) for w in weeks] == [6.0, 5.0, 4.0]
    assert s.get(f"/api/patients/{pid}/history.csv", params={"table": "x"}).status_code == 422


# ------------------------------------------------------------------------------ access
def test_who_may_read_a_history(seeded: Seeded) -> None:
    s = seeded
    pid = s.acc["a"].id
    own = s.get(f"/api/patients/{pid}/history", who="a")
    assert own.status_code == 200 and len(own.json()["sessions"]) == 4
    assert own.json()["decisions"] == [] and all(x["decisions"] == []
                                                 for x in own.json()["sessions"])
    assert s.get(f"/api/patients/{pid}/history.csv", who="a").status_code == 200
    for who in ("b", "u", "a2"):  # another patient (also of the same therapist), therapist
        for path in (f"/api/patients/{pid}/history", f"/api/patients/{pid}/history.csv"):
            r = s.get(path, who=who)
            assert r.status_code == 404, (who, path, r.text)
            assert "Anna" not in r.text and s.program not in r.text
    assert s.get(f"/api/patients/{pid}/history", who=None).status_code == 401
    # another therapist's own patient: nothing of A's
    other = s.get(f"/api/patients/{s.acc['b'].id}/history", who="u").json()
    assert other["sessions"] == [] and other["patient"]["username"] == "hist-carl"
    # the report page: the therapist only
    page = s.get(f"/therapist/report/{pid}")
    assert page.status_code == 200 and "Progress report" in page.text
    assert s.get(f"/therapist/report/{pid}", who="a").status_code == 403
    assert s.get(f"/therapist/report/{pid}", who="u").status_code == 404
    assert s.get(f"/therapist/report/{pid}", who=None).status_code == 303


def test_a_report_added_later_shows_in_the_history(seeded: Seeded) -> None:
    s = seeded
    pid = s.acc["a"].id
    first = s.get(f"/api/patients/{pid}/history").json()["sessions"][0]
    assert first["pain_after"] is None  # read once: its metrics are cached now
    r = s.client.post(f"/api/recordings/{s.imported[0]}/reports", headers=s.h("a"),
                      json={"kind": "pain_nrs_after", "value": 5})
    assert r.status_code == 201, r.text
    again = s.get(f"/api/patients/{pid}/history").json()["sessions"][0]
    assert (again["session_id"], again["pain_before"], again["pain_after"]) == (
        s.imported[0], 6, 5)


# ------------------------------------------------------------------------------ pure parts
def test_robust_peak_ignores_a_spike_but_keeps_a_held_end() -> None:
    t = np.arange(0, 10, 0.01)
    v = 20 * np.sin(np.pi * t / 10)  # a slow bend to 20°, held briefly at the top
    v[300] = 90.0  # one bad sample
    assert robust_peak_deg(t, v) == pytest.approx(20.0, abs=0.05)
    assert robust_peak_deg(t, v, min_time_s=0.0) == 90.0
    assert robust_peak_deg(t, np.full_like(t, np.nan)) is None
    v[np.arange(0, 1000, 7)] = np.nan  # lost samples do not matter
    assert robust_peak_deg(t, v) == pytest.approx(20.0, abs=0.05)


def test_session_metrics_from_the_store_match_the_route(seeded: Seeded) -> None:
    s = seeded
    reader = s.app.state.history
    store = s.app.state.recordings.store
    rec = store.session(s.flexion)
    stored = reader._read(store, rec, store.analyses(rec.id))
    m = session_metrics(stored, reader.catalog)
    via_route = next(x for x in s.get(f"/api/patients/{s.acc['a'].id}/history").json()[
        "sessions"] if x["session_id"] == s.flexion)
    for key in ("repetitions", "peak_deg", "mean_abs_error_deg", "sparc", "ldlj"):
        assert m[key] == via_route[key]
    # the single exercise scores no smoothness: SPARC comes from the stored angular speed
    scores = [p["score"] for _, k, p in stored.events if k == "repetition_scored"]
    assert len(scores) == 3 and all("sparc" not in sc for sc in scores)


def test_build_history_merges_the_practice_record() -> None:
    """A practice session without a recording (e.g. a server without a data directory) shows
    what its record says; cached metrics are not changed by building a history."""
    record = {
        "start_date": "2026-01-05",
        "sessions": [
            {"session_id": "s-rec", "date": "2026-01-05", "started_at": "2026-01-05T09:00:00+00:00",
             "completed": True, "pain_before": 5, "pain_after": 4,
             "exercises": [{"exercise_id": "lateral_bend_left", "level": 2}],
             "outcome": {"blocks": [
                 {"exercise_id": "lateral_bend_left", "kind": "set", "reps": 6,
                  "reps_in_tolerance": 3, "mean_abs_error_deg": 4.0},
                 {"exercise_id": "lateral_bend_left", "kind": "retention", "reps": 4,
                  "reps_in_tolerance": 4, "mean_abs_error_deg": 1.5}]}},
        ],
        "decisions": [{"at": "2026-01-05T09:20:00+00:00", "session_id": "s-rec",
                       "exercise_id": "lateral_bend_left", "rule_id": "advance",
                       "outcome": "advance", "from_level": 2, "to_level": 3, "actor": "rules",
                       "reason": "retention met"}],
        "rmdq": [{"date": "2026-01-19", "week": 2, "score": 9, "at": "2026-01-19T08:00:00"}],
    }
    catalog = {"lateral_bend_left": ExerciseInfo("Side bend to the left", "lateral_bend_left")}
    stored = StoredSession("s-live", "2026-01-12T09:00:00+00:00", None, "completed", "simulated",
                           30.0, events=(
                               (1.0, "exercise_started", {"exercise_id": "lateral_bend_left",
                                                          "level": 3}),
                               (5.0, "repetition_recorded", {
                                   "exercise_id": "lateral_bend_left", "level": 3, "kind": "set",
                                   "result": {"abs_error_deg": 2.0, "in_tolerance": True,
                                              "sparc": -2.0, "ldlj": -8.0}})))
    metrics = session_metrics(stored, catalog)
    before = json.dumps(metrics, sort_keys=True)
    h = build_history({"id": "p", "username": "p", "display_name": "P"}, [metrics], record,
                      catalog)
    assert json.dumps(metrics, sort_keys=True) == before
    first, second = h["sessions"]
    assert (first["session_id"], first["recorded"], first["week"]) == ("s-rec", False, 0)
    assert first["mean_abs_error_deg"] == pytest.approx(3.0)  # (6·4 + 4·1.5) / 10
    assert first["retention_mean_abs_error_deg"] == 1.5 and first["in_tolerance_share"] == 0.7
    assert first["practised"] == ["lateral_bend_left"] and first["decisions"][0]["to_level"] == 3
    assert (second["week"], second["levels"], second["practised"]) == (
        1, {"lateral_bend_left": 3}, ["lateral_bend_left"])
    assert [(w["week"], w["sessions"], w["rmdq_score"]) for w in h["weeks"]] == [
        (0, 1, None), (1, 1, None), (2, 0, 9)]
    assert h["summary"]["rmdq_score"]["last"] == 9
    hidden = build_history({"id": "p", "username": "p", "display_name": "P"}, [metrics], record,
                           catalog, include_decisions=False, date_from=date(2026, 1, 10))
    assert [x["session_id"] for x in hidden["sessions"]] == ["s-live"]
    assert hidden["decisions"] == [] and hidden["rmdq"][0]["score"] == 9
    text = history_csv(h, "sessions")
    assert text.splitlines()[2].split(",")[0:3] == ["2", "2026-01-12", "1"]
    with pytest.raises(ValueError):
        history_csv(h, "months")


# ------------------------------------------------------------------------------ live overview
def test_live_overview_shows_only_the_therapists_own_sessions(seeded: Seeded) -> None:
    s = seeded
    c = s.client
    live = {"script": "demo", "loop": True, "realtime": True, "speed": 5.0}
    started = {}
    for who, patient in (("t", "a2"), ("t", "a3"), ("u", "b")):
        r = c.post(f"/api/session/start?patient_id={s.acc[patient].id}", headers=s.h(who),
                   json=live)
        assert r.status_code == 200, r.text
        started[patient] = r.json()["session_id"]
    c.cookies.clear()
    try:
        snap = s.get("/api/live/sessions").json()
        assert snap["patients"] == 3
        assert {t["patient_name"] for t in snap["sessions"]} == {"Bert Second", "Cleo Third"}
        assert {t["session_id"] for t in snap["sessions"]} == {started["a2"], started["a3"]}
        other = s.get("/api/live/sessions", who="u").json()
        assert [t["session_id"] for t in other["sessions"]] == [started["b"]]
        assert s.get("/api/live/sessions", who="a").status_code == 403
        assert s.get("/api/live/sessions", who=None).status_code == 401

        with c.websocket_connect("/ws/overview", headers=s.h("t")) as ws:
            msgs = []
            while len(msgs) < 6 or not all(
                    t["frames"] > 0 and t["angles"]["flexion_deg"] is not None
                    for t in msgs[-1]["sessions"]):
                msgs.append(json.loads(ws.receive_text()))
                assert msgs[-1]["type"] == "overview"
                assert {t["patient_id"] for t in msgs[-1]["sessions"]} == {
                    s.acc["a2"].id, s.acc["a3"].id}
                assert "Carl" not in json.dumps(msgs[-1])
        tile = msgs[-1]["sessions"][0]
        assert tile["state"] in ("calibrating", "running") and tile["source"] == "simulated"
        assert set(tile["sensors"]) == {"upper", "lower"} and tile["sensors"]["lower"]["connected"]
        assert tile["calibration"]["phase"] and tile["viewers"] == 0
        frames = [m["sessions"][0]["frames"] for m in msgs]
        assert frames[-1] > frames[0]  # the tiles follow the sessions
        with pytest.raises(WebSocketDenialResponse) as denied:
            with c.websocket_connect("/ws/overview", headers=s.h("a")):
                pass
        assert denied.value.status_code == 403
    finally:
        for who, patient in (("t", "a2"), ("t", "a3"), ("u", "b")):
            c.post(f"/api/session/stop?patient_id={s.acc[patient].id}", headers=s.h(who))
        c.cookies.clear()


def test_a_tile_reads_the_running_program_and_the_frame_clock() -> None:
    from api import schema
    from api.overview import FrameClock, _exercise

    program = {"mode": "program", "stage": 2, "stages": 4, "awaiting": ["self_estimate"],
               "items": [{"exercise_id": "neutral_hold", "name": "Hold", "level": 1,
                          "status": "done"},
                         {"exercise_id": "flexion_to_target", "name": "Bend", "level": 3,
                          "status": "current"}],
               "exercise": {"block_kind": "retention", "phase": "active", "rep_count": 2,
                            "reps_in_block": 5}}
    ex, done, planned, awaiting = _exercise(schema.SessionStatus(state="running"), program)
    assert (ex.exercise_id, ex.level, ex.block, ex.stage, ex.stages) == (
        "flexion_to_target", 3, "retention", 2, 4)
    assert (done, planned, awaiting) == (2, 5, ["self_estimate"])
    now = [100.0]
    clock = FrameClock(lambda: now[0])
    assert clock.age_s("s1", 10) is None  # first seen: age unknown
    now[0] = 100.5
    assert clock.age_s("s1", 12) == 0.0  # new frames
    now[0] = 103.0
    assert clock.age_s("s1", 12) == 2.5  # none since
    clock.keep_only(["s2"])
    assert clock.age_s("s1", 12) is None
