"""The BLE side of the REST API in-process: the start request's `ble` source (validation 422s,
remembered and command-line sensors, the server's default source), the per-host sensor roles
file, `GET /api/sensors/scan` (against the simulated BlueZ, and when Bluetooth is missing), and
the command line's BLE options."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import sources
from api.app import create_app
from api.sensor_roles import FILENAME, SensorRoleStore
from api.settings import Settings
from sensors.simbluez import SimBluez
from sensors.simbluez.demo import peripheral_spec

UPPER, LOWER = "C0:1D:B0:00:00:01", "C0:1D:B0:00:00:02"

Client = Callable[..., Any]


@pytest.fixture
async def client(sign_in, tmp_path: Path) -> AsyncIterator[Client]:
    """`await client(**settings)`: an in-process app (signed in as the test therapist) whose
    sensor roles live in `tmp_path` unless `data_dir` says otherwise."""
    stack: list[Any] = []

    async def make(**overrides: Any) -> tuple[Any, httpx.AsyncClient]:
        overrides.setdefault("data_dir", tmp_path)
        app = create_app(Settings(**overrides))
        accounts = sign_in(app)
        life = app.router.lifespan_context(app)
        await life.__aenter__()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 cookies=accounts.cookies(), headers={"Origin": "http://test"})
        stack.append((life, http))
        return app, http

    yield make
    for life, http in reversed(stack):
        await http.aclose()
        await life.__aexit__(None, None, None)


class Captured:
    """Stands in for the BLE source factory: records the request, streams nothing."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, req: Any, **context: Any) -> tuple[Any, dict[str, Any]]:
        self.requests.append(req)
        store = context.get("store")
        if store is not None:
            store.assign(req.upper, req.lower, req.rate_hz)
        return Idle(), {}


class Idle:
    async def batches(self):  # noqa: ANN201
        if False:  # pragma: no cover
            yield
        return

    async def stop(self) -> None:
        pass

    def health(self) -> dict:
        return {}


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    cap = Captured()
    monkeypatch.setitem(sources.FACTORIES, "ble", cap)
    return cap


def message(resp: httpx.Response) -> str:
    body = resp.json()
    return str(body.get("message") or body.get("detail"))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"upper": UPPER, "lower": LOWER}, ["source 'ble' only"]),
        ({"source": "simulated", "rate_hz": 50}, ["rate_hz", "'ble' only"]),
        ({"source": "ble", "upper": UPPER}, ["both upper and lower"]),
        ({"source": "ble", "upper": UPPER, "lower": UPPER.lower()}, ["two different sensors"]),
        ({"source": "ble", "upper": "nonsense", "lower": LOWER}, ["upper", "pattern"]),
        ({"source": "ble", "upper": UPPER, "lower": LOWER, "rate_hz": 5}, ["rate_hz"]),
        ({"source": "ble", "upper": UPPER, "lower": LOWER, "script": "demo"},
         ["script", "'simulated' only"]),
        ({"source": "ble"}, ["none are remembered", "lumbo scan"]),
        ({"source": "bluetooth"}, ["source"]),
    ],
)
async def test_ble_start_request_validation(client, captured, body, words) -> None:
    _, http = await client()
    resp = await http.post("/api/session/start", json=body)
    assert resp.status_code == 422, resp.text
    for w in words:
        assert w.lower() in message(resp).lower(), (w, message(resp))
    assert captured.requests == []
    assert (await http.get("/api/session")).json()["state"] == "idle"


async def test_ble_start_remembers_the_roles_and_the_next_session_uses_them(
        client, captured, tmp_path: Path) -> None:
    app, http = await client()
    assert (await http.get("/api/sensors/roles")).json()["upper"] is None
    resp = await http.post("/api/session/start", json={
        "source": "ble", "upper": UPPER.lower(), "lower": LOWER, "rate_hz": 104, "level": 2})
    assert resp.status_code == 200, resp.text
    assert resp.json()["source"] == "ble"
    req = captured.requests[-1]
    assert (req.upper, req.lower, req.rate_hz, req.level) == (UPPER, LOWER, 104.0, 2)
    assert (await http.post("/api/session/stop")).status_code == 200

    roles = (await http.get("/api/sensors/roles")).json()
    assert roles["upper"]["address"] == UPPER and roles["lower"]["address"] == LOWER
    assert roles["rate_hz"] == 104.0 and roles["default_source"] == "simulated"

    # the file is per host, in the data directory; a new service (a restart) preselects them
    doc = json.loads((tmp_path / FILENAME).read_text())
    host = SensorRoleStore(tmp_path).host
    assert doc["hosts"][host]["roles"] == {"upper": UPPER, "lower": LOWER}
    _, http2 = await client()
    assert (await http2.get("/api/sensors/roles")).json()["lower"]["address"] == LOWER
    resp = await http2.post("/api/session/start", json={"source": "ble"})
    assert resp.status_code == 200, resp.text
    req = captured.requests[-1]
    assert (req.upper, req.lower, req.rate_hz) == (UPPER, LOWER, 104.0)


async def test_roles_can_be_assigned_without_a_session(client) -> None:
    _, http = await client()
    resp = await http.put("/api/sensors/roles", json={"upper": LOWER, "lower": UPPER})
    assert resp.status_code == 200, resp.text
    assert resp.json()["upper"]["address"] == LOWER
    bad = await http.put("/api/sensors/roles", json={"upper": UPPER, "lower": UPPER})
    assert bad.status_code == 422 and "different" in message(bad)


async def test_server_started_for_ble_starts_ble_sessions(client, captured) -> None:
    """`lumbo serve --upper A --lower B`: a start without `source` (the pages' Start) uses
    them; naming the simulated patient still works."""
    _, http = await client(default_source="ble", ble_upper=UPPER, ble_lower=LOWER,
                           ble_rate_hz=52.0)
    roles = (await http.get("/api/sensors/roles")).json()
    assert roles["default_source"] == "ble" and roles["upper"]["address"] == UPPER
    # the therapist page's simulator options do not apply to a BLE session and are dropped
    resp = await http.post("/api/session/start", json={"script": "demo", "speed": 2, "level": 3})
    assert resp.status_code == 200, resp.text
    req = captured.requests[-1]
    assert (req.source, req.upper, req.lower, req.rate_hz, req.level) == (
        "ble", UPPER, LOWER, 52.0, 3)
    await http.post("/api/session/stop")
    resp = await http.post("/api/session/start", json={
        "source": "simulated", "script": "flexion_reps", "n_reps": 1, "realtime": False})
    assert resp.status_code == 200 and resp.json()["source"] == "simulated"
    assert len(captured.requests) == 1


def test_unreadable_roles_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_text("{not json")
    store = SensorRoleStore(tmp_path, host="clinic-laptop")
    assert store.roles() == {}
    assert (tmp_path / (FILENAME + ".bad")).exists()
    store.assign(UPPER, LOWER, 100.0)
    store.note_sensor(UPPER, name="WT901BLE68", family="witmotion", battery_pct=71)
    other = SensorRoleStore(tmp_path, host="home-pc")  # same data dir, another host
    assert other.roles() == {}
    again = SensorRoleStore(tmp_path, host="clinic-laptop")
    assert again.roles() == {"upper": UPPER, "lower": LOWER}
    assert again.sensor(UPPER)["battery_pct"] == 71
    assert SensorRoleStore(None).roles() == {}  # no data dir: memory only, nothing written


async def add_family(fake: SimBluez, family: str, address: str) -> str:
    added = await fake.call("add_device", peripheral=peripheral_spec(family),
                            kwargs={"address": address}, address=address)
    return added["name"]


async def test_scan_lists_the_simulated_sensors_with_role_and_battery(
        client, fake: SimBluez, tmp_path: Path) -> None:
    wit = await add_family(fake, "witmotion", UPPER)
    move = await add_family(fake, "movesense", LOWER)
    store = SensorRoleStore(tmp_path)
    store.assign(UPPER, LOWER, 100.0)
    store.note_sensor(UPPER, battery_pct=64)
    _, http = await client()
    resp = await http.get("/api/sensors/scan", params={"timeout_s": 0.5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    found = {s["address"]: s for s in body["sensors"]}
    assert set(found) == {UPPER, LOWER}
    assert found[UPPER]["name"] == wit and found[UPPER]["family"] == "witmotion"
    assert found[LOWER]["name"] == move and found[LOWER]["family"] == "movesense"
    assert found[UPPER]["role"] == "upper" and found[LOWER]["role"] == "lower"
    assert found[UPPER]["battery_pct"] == 64 and found[UPPER]["battery_from"] == "last_session"
    assert found[LOWER]["battery_pct"] is None
    assert all(-90 < s["rssi"] < -30 for s in body["sensors"])
    assert body["roles"]["upper"]["address"] == UPPER
    bad = await http.get("/api/sensors/scan", params={"timeout_s": 0})
    assert bad.status_code == 422


async def test_scan_without_bluetooth_is_a_clear_503(client, monkeypatch) -> None:
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

    import sensors.ble

    async def off(timeout_s: float, **_: Any) -> list:
        raise BleakBluetoothNotAvailableError("powered off",
                                              BleakBluetoothNotAvailableReason.POWERED_OFF)

    monkeypatch.setattr(sensors.ble, "scan", off)
    _, http = await client()
    resp = await http.get("/api/sensors/scan")
    assert resp.status_code == 503
    assert "turn bluetooth on" in message(resp).lower()


# ---- command line -------------------------------------------------------------------------------

def test_demo_ble_without_dbus_daemon_says_how_to_install_it(monkeypatch, capsys) -> None:
    import sensors.simbluez
    from api.cli import main

    monkeypatch.setattr(sensors.simbluez, "find_dbus_daemon", lambda: None)
    code = main(["demo", "--ble", "--port", "0"])
    err = capsys.readouterr().err
    assert code != 0
    assert "apt-get install dbus-daemon" in err


@pytest.mark.parametrize(
    "argv",
    [["serve", "--upper", "C0:1D:B0:00:00:01"],
     ["serve", "--upper", "C0:1D:B0:00:00:01", "--lower", "c0:1d:b0:00:00:01"],
     ["serve", "--upper", "not-an-address", "--lower", "C0:1D:B0:00:00:02"],
     ["serve", "--rate", "1000", "--ble"],
     ["demo", "--ble", "--families", "witmotion,thingy"]],
)
def test_cli_ble_options_are_checked(argv: list[str], capsys) -> None:
    from api.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err


def test_serve_options_become_settings() -> None:
    from api.ble_commands import serve_settings, serve_title
    from api.cli import build_parser

    args = build_parser().parse_args(["serve", "--upper", "c0:1d:b0:00:00:01", "--lower",
                                      "C0:1D:B0:00:00:02", "--rate", "52"])
    overrides = serve_settings(args)
    assert overrides == {"default_source": "ble", "ble_rate_hz": 52.0,
                         "ble_upper": UPPER, "ble_lower": LOWER}
    assert "BLE sensors" in serve_title(overrides)
    plain = build_parser().parse_args(["serve"])
    assert serve_settings(plain) == {}
    only_ble = serve_settings(build_parser().parse_args(["serve", "--ble"]))
    assert only_ble["default_source"] == "ble" and "ble_upper" not in only_ble
