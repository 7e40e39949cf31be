"""Access matrix: EVERY route of the app (enumerated from the app itself, so a new route cannot be
forgotten) and the WebSocket, tried as nobody, as another patient and as another therapist.

World: therapist A with patient A (who has a stored recording and a live session running during
the whole module), therapist B with patient B. Patient A's "markers" (id, username, display
name, session ids) must never appear in an answer to anyone but patient A and therapist A.

- nobody: every non-public route answers 401 (API), a redirect to /login (pages) or a refused
  WebSocket handshake; the public routes are exactly the middleware's list;
- patient B and therapist B: never a 500 and never a marker; a route that names patient A in
  its path answers 403 or 404; patient A's live session is neither stopped nor retargeted and
  patient A's account is unchanged afterwards;
- patient A and therapist A (control): the GET routes naming patient A are not refused;
- `/ws/live`: refused without a sign-in or from another Origin; B's viewers never receive A's
  frames; A's patient and therapist do.

In-process (Starlette's TestClient: real ASGI, lifespan, WebSockets), deterministic: waits are
on messages and on the session's own completion, never on time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, WebSocketRoute
from starlette.testclient import WebSocketDenialResponse

from api.app import create_app
from api.auth.middleware import COOKIE_NAME, PUBLIC_ROUTES
from api.settings import Settings

BASE = "http://lumbo.test"
WS_BASE = "http://testserver"  # the Host of the TestClient's WebSockets
LIVE_A = {"script": "demo", "realtime": True, "loop": True, "speed": 1.0, "level": 3}
SHORT_A = {"script": "flexion_reps", "n_reps": 2, "realtime": False, "level": 6}

# Public (method, path): reviewed on purpose; the middleware's list must be exactly this.
EXPECTED_PUBLIC = {
    ("GET", "/login"), ("GET", "/login/link"), ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token"), ("POST", "/api/auth/logout"), ("GET", "/api/health"),
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
# Request bodies that pass validation, so that an answer is about access, not about the body.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/auth/login"): {"username": "alice-patient", "password": "not-the-password"},
    ("POST", "/api/auth/token"): {"username": "alice-patient", "password": "not-the-password"},
    ("POST", "/api/patients"): {"username": "made-by-{who}"},
    ("PATCH", "/api/patients/{patient_id}"): {"display_name": "Renamed by {who}",
                                              "active": False},
    ("POST", "/api/patients/{patient_id}/login-link"): {"next": "/"},
    ("POST", "/api/session/start"): {"script": "flexion_reps", "realtime": False},
    ("PUT", "/api/session/target"): {"level": 9},
    ("PUT", "/api/sensors/roles"): {"upper": "AA:BB:CC:DD:EE:01", "lower": "AA:BB:CC:DD:EE:02"},
    ("POST", "/api/practice/pain"): {"when": "before", "value": 3},
    ("POST", "/api/practice/self-estimate"): {"estimate": "on_target"},
    ("PUT", "/api/practice/patients/{patient_id}/program"): {
        "items": [{"exercise_id": "{exercise}"}]},
    ("PUT", "/api/practice/patients/{patient_id}/levels/{exercise_id}"): {"level": 2},
    ("POST", "/api/practice/patients/{patient_id}/baselines"): {"ranges_deg": {"flexion": 40.0}},
    ("POST", "/api/practice/patients/{patient_id}/rmdq"): {"answers": [False] * 24},
    ("POST", "/api/recordings/{session_id}/reports"): {"kind": "pain_nrs_before", "value": 2},
}
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/sensors/scan"): {"timeout_s": "0.05"},
    ("GET", "/login/link"): {"token": "not-a-token"},
}


@dataclass
class World:
    app: Any
    client: TestClient
    accounts: dict[str, Any]
    values: dict[str, str]  # path parameter -> patient A's value
    markers: list[str]
    live_session_id: str
    notes: list[str] = field(default_factory=list)

    def token(self, who: str) -> str:
        return self.app.state.auth.open_session(self.accounts[who])[0]

    def call(self, method: str, path: str, who: str | None, *, origin: str | None = BASE,
             **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if origin:
            headers["Origin"] = origin
        if who is not None:  # a fresh sign-in per request: a sign-out cannot spoil the others
            headers["Cookie"] = f"{COOKIE_NAME}={self.token(who)}"
        resp = self.client.request(method, path, headers=headers, follow_redirects=False, **kw)
        self.client.cookies.clear()
        return resp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("access"), heartbeat_s=0.05))
    auth = app.state.auth
    ta = auth.create_therapist("alice-therapist", None, "Therapist Alpha")
    pa = auth.create_patient("alice-patient", ta.id, None, "Patientina Secretname")
    tb = auth.create_therapist("bob-therapist", None, "Therapist Beta")
    pb = auth.create_patient("bob-patient", tb.id, None, "Bob Patient")
    accounts = {"ta": ta, "pa": pa, "tb": tb, "pb": pb}
    with TestClient(app, base_url=BASE) as client:
        w = World(app, client, accounts, {}, [], "")
        # patient A's data: one stored recording, then a live session running all along
        first = w.call("POST", "/api/session/start", "ta", json=SHORT_A)
        assert first.status_code == 200, first.text
        client.portal.call(app.state.manager.current.wait)
        recordings = getattr(app.state, "recordings", None)
        if recordings is not None and hasattr(recordings, "wait_closed"):
            client.portal.call(recordings.wait_closed)
        live = w.call("POST", "/api/session/start", "ta", json=LIVE_A)
        assert live.status_code == 200, live.text
        w.live_session_id = live.json()["session_id"]
        library = w.call("GET", "/api/practice/library", "ta")
        exercise = library.json()[0]["id"] if library.status_code == 200 else "flexion"
        w.values = {"patient_id": pa.id, "session_id": first.json()["session_id"],
                    "exercise_id": exercise, "name": "frame"}
        w.markers = [pa.id, pa.username, pa.display_name, first.json()["session_id"],
                     w.live_session_id]
        yield w


def routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, `WS` for WebSockets, one file for a Mount."""
    import fastapi.routing as fr

    contexts = fr.iter_route_contexts(app.routes) if hasattr(fr, "iter_route_contexts") else [
        type("C", (), {"route": r, "path": r.path, "methods": getattr(r, "methods", None)})
        for r in app.routes]
    out = set()
    for ctx in contexts:
        route = ctx.route
        if isinstance(route, Mount):
            out.add(("GET", ctx.path + "/live.js"))
        elif isinstance(route, (fr.APIWebSocketRoute, WebSocketRoute)):
            out.add(("WS", ctx.path))
        else:
            out.update((m, ctx.path) for m in (ctx.methods or ()) if m != "HEAD")
    return sorted(out)


def fill(w: World, method: str, path: str, who: str) -> tuple[str, dict[str, Any]]:
    """The concrete URL (patient A's ids in the path; `patient_id=A` where the route takes
    that query parameter) and request keywords."""
    names = re.findall(r"{(\w+)}", path)
    missing = [n for n in names if n not in w.values]
    assert not missing, (f"{method} {path}: the access matrix needs patient A's value for the "
                         f"path parameter(s) {missing}: add them to World.values")
    url = path
    for n in names:
        url = url.replace("{" + n + "}", w.values[n])
    kw: dict[str, Any] = {}
    params = dict(QUERIES.get((method, path), {}))
    if "patient_id" in query_params(w, method, path):
        params["patient_id"] = w.values["patient_id"]
    if params:
        kw["params"] = params
    if (method, path) in BODIES:
        body = json.dumps(BODIES[(method, path)]).replace("{who}", who).replace(
            "{exercise}", w.values["exercise_id"])
        kw["content"] = body
        kw["headers"] = {"Content-Type": "application/json"}
    elif method in ("POST", "PUT", "PATCH"):
        kw["json"] = {}
    return url, kw


def query_params(w: World, method: str, path: str) -> set[str]:
    doc = w.app.openapi()
    op = doc["paths"].get(path, {}).get(method.lower(), {})
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}


def ok_status(status: int) -> bool:
    """Never a server error; 503 is an answer (no Bluetooth on this machine)."""
    return status < 500 or status == 503


def assert_no_markers(w: World, resp: Any, what: str, asked: str = "") -> None:
    """No marker of patient A's in the answer, other than one the request itself named (a
    404 may repeat the id it was asked for)."""
    text = resp.text + " " + " ".join(f"{k}: {v}" for k, v in resp.headers.items())
    leaked = [m for m in w.markers if m in text and m not in asked]
    assert not leaked, f"{what} leaked patient A's {leaked}: {resp.status_code} {text[:300]}"


# --------------------------------------------------------------------------------------------

def test_the_public_routes_are_exactly_the_reviewed_ones(world: World) -> None:
    assert set(PUBLIC_ROUTES) == EXPECTED_PUBLIC
    served = set(routes(world.app))
    assert EXPECTED_PUBLIC <= served, EXPECTED_PUBLIC - served


def test_nobody_gets_nothing(world: World) -> None:
    w = world
    for method, path in routes(w.app):
        if method == "WS":
            continue
        url, kw = fill(w, method, path, "nobody")
        resp = w.call(method, url, None, **kw)
        what = f"nobody {method} {path}"
        assert ok_status(resp.status_code), f"{what}: {resp.status_code} {resp.text[:200]}"
        assert_no_markers(w, resp, what, asked=url + str(kw))
        if (method, path) in EXPECTED_PUBLIC or path.startswith("/static"):
            assert "sign in first" not in resp.text.lower(), what  # not refused for want of one
        elif path.startswith("/api/"):
            assert resp.status_code == 401, f"{what}: {resp.status_code} {resp.text[:200]}"
            assert "sign in" in resp.json()["detail"].lower()
        else:  # a page: to the login page, and back here afterwards
            assert resp.status_code == 303, what
            assert resp.headers["location"].startswith("/login?next="), what


@pytest.mark.parametrize("who", ["pb", "tb"])
def test_another_patient_or_therapist_never_gets_patient_a(world: World, who: str) -> None:
    w = world
    before = w.app.state.auth.account(w.accounts["pa"].id)
    for method, path in routes(w.app):
        if method == "WS":
            continue
        url, kw = fill(w, method, path, who)
        resp = w.call(method, url, who, **kw)
        what = f"{who} {method} {path}"
        assert ok_status(resp.status_code), f"{what}: {resp.status_code} {resp.text[:300]}"
        assert_no_markers(w, resp, what, asked=url + str(kw))
        if re.search(r"{(patient_id|session_id)}", path):
            assert resp.status_code in (403, 404), f"{what}: {resp.status_code} {resp.text[:300]}"
        elif "patient_id" in query_params(w, method, path):
            assert resp.status_code in (403, 404) or resp.status_code < 300 or \
                resp.status_code == 409, f"{what}: {resp.status_code} {resp.text[:300]}"
    # nothing of patient A's changed
    session = w.app.state.manager.by_patient[w.accounts["pa"].id]
    assert session.session_id == w.live_session_id and session.active
    assert session.level == LIVE_A["level"] or session.pending_level == LIVE_A["level"]
    assert w.app.state.auth.account(w.accounts["pa"].id) == before


@pytest.mark.parametrize("who", ["pa", "ta"])
def test_patient_a_and_therapist_a_are_let_in(world: World, who: str) -> None:
    w = world
    for method, path in routes(w.app):
        if method != "GET" or "patient_id" not in path + " ".join(query_params(w, method, path)) \
                and "{session_id}" not in path:
            continue
        url, kw = fill(w, method, path, who)
        resp = w.call(method, url, who, **kw)
        what = f"{who} {method} {path}"
        assert ok_status(resp.status_code), f"{what}: {resp.status_code} {resp.text[:300]}"
        therapist_only = who == "pa" and "only a therapist" in resp.text.lower()
        assert resp.status_code not in (401, 403) or therapist_only, \
            f"{what}: {resp.status_code} {resp.text[:300]}"
        assert "no such patient" not in resp.text.lower(), what


def test_patient_routes_are_therapist_only(world: World) -> None:
    w = world
    pa = w.accounts["pa"]
    assert w.call("GET", "/api/patients", "pa").status_code == 403
    assert w.call("POST", "/api/patients", "pa", json={"username": "sneaky"}).status_code == 403
    assert w.call("GET", f"/api/patients/{pa.id}", "pa").json()["id"] == pa.id  # themselves
    assert w.call("PUT", "/api/session/target", "pa", json={"level": 2}).status_code == 403
    listed = w.call("GET", "/api/patients", "ta").json()
    assert [p["id"] for p in listed] == [pa.id]
    assert w.call("GET", "/api/session", "ta").json()["session_id"] == w.live_session_id


# ------------------------------------------------------------------------------- WebSocket

def ws_headers(w: World, who: str | None, origin: str | None = WS_BASE) -> dict[str, str]:
    headers = {}
    if origin:
        headers["origin"] = origin
    if who:
        headers["cookie"] = f"{COOKIE_NAME}={w.token(who)}"
    return headers


def refused(w: World, url: str, headers: dict[str, str]) -> int:
    with pytest.raises(WebSocketDenialResponse) as exc:
        with w.client.websocket_connect(url, headers=headers):
            pass
    assert_no_markers(w, exc.value, f"WS {url}")
    return exc.value.status_code


def test_websocket_refuses_nobody_and_other_origins(world: World) -> None:
    w = world
    assert ("WS", "/ws/live") in routes(w.app)
    assert refused(w, "/ws/live", ws_headers(w, None)) == 401
    assert refused(w, "/ws/live", ws_headers(w, "pa", origin="http://evil.example")) == 403
    assert refused(w, "/ws/live", ws_headers(w, "pa", origin=None)) == 403  # cookie needs Origin
    pid = w.accounts["pa"].id
    assert refused(w, f"/ws/live?patient_id={pid}", ws_headers(w, "pb")) == 404
    assert refused(w, f"/ws/live?patient_id={pid}", ws_headers(w, "tb")) == 404


@pytest.mark.parametrize("who", ["pb", "tb"])
def test_websocket_never_delivers_patient_a_to_others(world: World, who: str) -> None:
    w = world
    own = w.accounts["pb"].id  # therapist B may have added patients meanwhile: name one
    with w.client.websocket_connect(f"/ws/live?patient_id={own}",
                                    headers=ws_headers(w, who)) as ws:
        seen: list[dict[str, Any]] = []
        while sum(m["type"] == "heartbeat" for m in seen) < 3:  # A's frames flow meanwhile
            text = ws.receive_text()
            assert not [m for m in w.markers if m in text], f"{who} got {text[:200]}"
            seen.append(json.loads(text))
    assert seen[0]["type"] == "status" and seen[0]["session"]["state"] == "idle"
    assert all(m["type"] != "frame" for m in seen)


@pytest.mark.parametrize("who", ["pa", "ta"])
def test_websocket_delivers_patient_a_to_patient_a_and_their_therapist(world: World,
                                                                       who: str) -> None:
    w = world
    with w.client.websocket_connect("/ws/live", headers=ws_headers(w, who)) as ws:
        first = json.loads(ws.receive_text())
        assert first["type"] == "status" and first["session"]["session_id"] == w.live_session_id
        while True:
            msg = json.loads(ws.receive_text())
            if msg["type"] == "frame":
                assert msg["session_id"] == w.live_session_id
                break


def test_signing_out_closes_the_live_websocket(world: World) -> None:
    w = world
    token = w.token("pa")
    headers = {"origin": WS_BASE, "cookie": f"{COOKIE_NAME}={token}"}
    with w.client.websocket_connect("/ws/live", headers=headers) as ws:
        assert json.loads(ws.receive_text())["type"] == "status"
        out = w.client.post("/api/auth/logout", headers={**headers, "origin": BASE})
        w.client.cookies.clear()
        assert out.json() == {"signed_out": True}
        while True:  # messages already queued may still come; then the close
            msg = ws.receive()
            if msg["type"] == "websocket.close":
                assert msg["code"] == 1008
                break
    assert w.client.get("/api/session", headers=headers).status_code == 401


# ------------------------------------------------------------------ /ws/overview, the history

def test_overview_websocket_refuses_nobody_patients_and_other_origins(world: World) -> None:
    w = world
    assert ("WS", "/ws/overview") in routes(w.app)
    assert refused(w, "/ws/overview", ws_headers(w, None)) == 401
    assert refused(w, "/ws/overview", ws_headers(w, "ta", origin="http://evil.example")) == 403
    assert refused(w, "/ws/overview", ws_headers(w, "ta", origin=None)) == 403
    for patient in ("pa", "pb"):  # therapists only
        assert refused(w, "/ws/overview", ws_headers(w, patient)) == 403


def test_overview_websocket_shows_patient_a_to_therapist_a_only(world: World) -> None:
    w = world
    with w.client.websocket_connect("/ws/overview", headers=ws_headers(w, "tb")) as ws:
        for _ in range(3):
            text = ws.receive_text()
            assert not [m for m in w.markers if m in text], f"tb got {text[:200]}"
            assert json.loads(text)["sessions"] == []
    with w.client.websocket_connect("/ws/overview", headers=ws_headers(w, "ta")) as ws:
        msg = json.loads(ws.receive_text())
    assert msg["type"] == "overview"
    assert [t["session_id"] for t in msg["sessions"]] == [w.live_session_id]
    assert msg["sessions"][0]["patient_name"] == w.accounts["pa"].display_name


@pytest.mark.parametrize("who", ["pb", "tb"])
def test_history_report_and_csv_of_patient_a_are_refused_to_others(world: World,
                                                                   who: str) -> None:
    w = world
    pid = w.accounts["pa"].id
    for path in (f"/api/patients/{pid}/history", f"/api/patients/{pid}/history.csv",
                 f"/api/patients/{pid}/history.csv?table=weeks"):
        resp = w.call("GET", path, who)
        assert resp.status_code == 404, (who, path, resp.status_code)
        assert_no_markers(w, resp, f"{who} GET {path}", asked=path)
    page = w.call("GET", f"/therapist/report/{pid}", who)
    assert page.status_code == (403 if who == "pb" else 404)
    assert_no_markers(w, page, f"{who} report page", asked=pid)
    snapshot = w.call("GET", "/api/live/sessions", who)
    assert snapshot.status_code == (403 if who == "pb" else 200)
    assert_no_markers(w, snapshot, f"{who} GET /api/live/sessions")


def test_history_of_patient_a_for_patient_a_and_therapist_a(world: World) -> None:
    w = world
    pid = w.accounts["pa"].id
    for who in ("pa", "ta"):
        h = w.call("GET", f"/api/patients/{pid}/history", who).json()
        assert [s["session_id"] for s in h["sessions"]] == [w.values["session_id"],
                                                           w.live_session_id]
        text = w.call("GET", f"/api/patients/{pid}/history.csv", who).text
        assert w.values["session_id"] in text
    assert w.call("GET", f"/therapist/report/{pid}", "ta").status_code == 200
    assert w.call("GET", f"/therapist/report/{pid}", "pa").status_code == 403
    live = w.call("GET", "/api/live/sessions", "ta").json()
    assert [t["session_id"] for t in live["sessions"]] == [w.live_session_id]
