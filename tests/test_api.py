"""REST API in-process (httpx ASGITransport + the app's lifespan): session start/stop/target,
validation errors as clear 4xx, the OpenAPI document, the served message schemas, pages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import jsonschema
import pytest

from api import schema
from api.app import create_app
from api.settings import Settings

FAST = {"script": "flexion_reps", "n_reps": 3, "realtime": False, "level": 6}
SLOW = {"script": "flexion_reps", "n_reps": 3, "realtime": True, "speed": 1.0, "level": 6}


@pytest.fixture
async def app_client(sign_in) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = create_app(Settings())
    accounts = sign_in(app)  # signed in as the test therapist, from this site
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     cookies=accounts.cookies(),
                                     headers={"Origin": "http://test"}) as client:
            yield app, client


def assert_clear_error(resp: httpx.Response, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    text = (body.get("message") or body["detail"]) if isinstance(body, dict) else str(body)
    assert isinstance(text, str) and text
    for w in words:
        assert w.lower() in text.lower(), (w, text)


async def test_openapi_documents_routes_and_models(app_client) -> None:
    _, client = app_client
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    for path, method in [
        ("/api/session", "get"),
        ("/api/session/start", "post"),
        ("/api/session/stop", "post"),
        ("/api/session/target", "put"),
        ("/api/session/summary", "get"),
        ("/api/schema/{name}", "get"),
        ("/api/levels", "get"),
    ]:
        assert method in paths[path], path
        op = paths[path][method]
        assert op.get("summary") or op.get("description")
    start = paths["/api/session/start"]["post"]
    assert start["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SessionStatus"
    )
    assert {"409", "422"} <= set(start["responses"])
    for name in ("SessionStatus", "StartSessionRequest", "TargetRequest", "SessionSummary"):
        assert name in doc["components"]["schemas"]


async def test_schema_endpoint_serves_versioned_frame_schema(app_client) -> None:
    _, client = app_client
    resp = await client.get("/api/schema/frame")
    assert resp.status_code == 200
    frame_schema = resp.json()
    assert frame_schema["schema_version"] == schema.SCHEMA_VERSION == 1
    assert frame_schema["properties"]["schema_version"]["const"] == 1
    for key in ("session_id", "seq", "t_s", "angles", "velocity", "trace", "target", "feedback",
                "calibration", "sensors", "events"):
        assert key in frame_schema["properties"], key
    jsonschema.Draft202012Validator.check_schema(frame_schema)
    example = schema.LiveFrame(
        session_id="s", seq=0, t_s=1.0, angles=schema.Angles(flexion_deg=12.0),
        velocity=schema.Velocity(), trace=schema.Trace(t_s=[1.0], flexion_deg=[12.0]),
        calibration=schema.Calibration(phase="calibrated", progress=1.0), sensors=schema.Sensors(),
    ).model_dump(mode="json")
    jsonschema.validate(example, frame_schema)
    bad = dict(example, schema_version=2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, frame_schema)
    for name in ("heartbeat", "status"):
        assert (await client.get(f"/api/schema/{name}")).json()["schema_version"] == 1
    assert (await client.get("/api/schema/nope")).status_code == 422


async def test_levels(app_client) -> None:
    _, client = app_client
    levels = (await client.get("/api/levels")).json()
    assert [lv["level"] for lv in levels] == list(range(1, len(levels) + 1))
    assert all(0 < lv["share"] <= 1 and lv["reps_per_set"] >= 1 for lv in levels)


async def test_no_session_yet(app_client) -> None:
    _, client = app_client
    st = (await client.get("/api/session")).json()
    assert st["state"] == "idle" and st["session_id"] is None
    assert_clear_error(await client.post("/api/session/stop"), 404, "no session")
    assert_clear_error(await client.put("/api/session/target", json={"level": 2}), 404, "no session")
    assert_clear_error(await client.get("/api/session/summary"), 404, "no session")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"source": "ble"}, ["source"]),
        ({"speed": 0}, ["speed", "greater than 0"]),
        ({"speed": "fast"}, ["speed"]),
        ({"level": 0}, ["level"]),
        ({"n_reps": 1000}, ["n_reps"]),
        ({"bogus": 1}, ["bogus", "extra"]),
    ],
)
async def test_start_validation(app_client, body: dict, words: list[str]) -> None:
    _, client = app_client
    assert_clear_error(await client.post("/api/session/start", json=body), 422, *words)
    assert (await client.get("/api/session")).json()["state"] == "idle"


async def test_start_unknown_level_and_bad_json(app_client) -> None:
    _, client = app_client
    assert_clear_error(await client.post("/api/session/start", json={"level": 99}), 422,
                       "unknown level 99")
    resp = await client.post("/api/session/start", content=b"{not json",
                              headers={"content-type": "application/json"})
    assert resp.status_code == 422


async def test_session_runs_to_the_end_with_summary(app_client) -> None:
    app, client = app_client
    st = (await client.post("/api/session/start", json=FAST)).json()
    assert st["state"] in ("calibrating", "running", "ended")
    assert st["session_id"]
    assert_clear_error(await client.post("/api/session/start", json=FAST), 409, "stop it first")
    await app.state.manager.current.wait()
    st = (await client.get("/api/session")).json()
    assert st["state"] == "ended", st
    assert st["calibration"]["phase"] == "calibrated"
    assert st["target"]["level"] == 6
    assert st["feedback"]["rep_count"] == 3
    assert st["sensors"]["lower"]["nominal_rate_hz"] > 0
    summary = (await client.get("/api/session/summary")).json()
    assert summary["current"]["reps"] == 3 and summary["sets"] == []
    assert_clear_error(await client.put("/api/session/target", json={"level": 2}), 409,
                       "start a new session")
    # stopping an ended session is fine; a new one may start
    assert (await client.post("/api/session/stop")).json()["state"] == "ended"
    st2 = (await client.post("/api/session/start", json=FAST)).json()
    assert st2["session_id"] != st["session_id"]
    await app.state.manager.current.wait()


async def test_target_changes_and_validation(app_client) -> None:
    _, client = app_client
    st = (await client.post("/api/session/start", json=SLOW)).json()
    assert st["state"] == "calibrating"
    # before calibration a level is pending; it applies once calibrated
    st = (await client.put("/api/session/target", json={"level": 3})).json()
    assert st["pending_level"] == 3 and st["target"] is None
    # an explicit target applies at once
    st = (await client.put("/api/session/target",
                           json={"target_deg": 20, "tolerance_deg": 4, "hold_s": 1.5})).json()
    assert st["target"] == {"target_deg": 20.0, "tolerance_deg": 4.0, "hold_s": 1.5, "level": None,
                            "share": None, "source": "explicit"}
    for body, words in [
        ({}, ["give level"]),
        ({"level": 2, "target_deg": 20}, ["not both"]),
        ({"target_deg": 20}, ["tolerance_deg"]),
        ({"target_deg": 20, "tolerance_deg": 40}, ["tolerance_deg", "less than or equal"]),
        ({"target_deg": -5, "tolerance_deg": 4}, ["target_deg"]),
        ({"level": 99}, ["unknown level"]),
        ({"target_deg": 8, "tolerance_deg": 5}, ["rest zone"]),  # valid numbers, invalid band
    ]:
        assert_clear_error(await client.put("/api/session/target", json=body), 422, *words)
    st = (await client.get("/api/session")).json()
    assert st["target"]["target_deg"] == 20.0  # failed requests changed nothing
    st = (await client.post("/api/session/stop")).json()
    assert st["state"] == "stopped"
    assert st["sensors"]["lower"]["status"] == "stopped"


async def test_pages_and_assets(app_client) -> None:
    _, client = app_client
    for path, needle in [("/", "Repetitions"), ("/therapist", "Sensors")]:
        resp = await client.get(path)
        assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
        assert needle in resp.text and "/static/live.js" in resp.text
        assert "http://" not in resp.text and "https://" not in resp.text  # no CDN
    for asset in ("live.js", "patient.js", "therapist.js", "trace.js", "lumbo.css"):
        assert (await client.get(f"/static/{asset}")).status_code == 200
    assert (await client.get("/api/health")).json()["status"] == "ok"


async def test_websocket_status_on_connect_and_origin_check(live_server) -> None:
    import websockets

    srv = live_server(Settings())
    async with httpx.AsyncClient(base_url=srv.url, cookies=srv.cookies) as http:
        status_schema = (await http.get("/api/schema/status")).json()
    async with websockets.connect(f"{srv.ws_url}/ws/live",
                                  additional_headers=srv.ws_headers()) as ws:
        msg = json.loads(await ws.recv())
        assert msg["type"] == "status" and msg["schema_version"] == 1
        jsonschema.validate(msg, status_schema)
    cookie = {"Cookie": srv.ws_headers()["Cookie"]}
    same = srv.url  # a page served by this very server
    async with websockets.connect(f"{srv.ws_url}/ws/live", origin=same,
                                  additional_headers=cookie) as ws:
        assert json.loads(await ws.recv())["type"] == "status"
    with pytest.raises(websockets.exceptions.InvalidStatus) as exc:  # refused at the handshake
        async with websockets.connect(f"{srv.ws_url}/ws/live", origin="http://evil.example",
                                      additional_headers=cookie):
            pass
    assert exc.value.response.status_code == 403
