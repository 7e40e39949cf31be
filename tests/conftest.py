"""Shared fixtures: a real uvicorn server on a free loopback port, in a background thread, with
a signed-in test therapist and patient (`sign_in_test_accounts`): every route needs a sign-in."""

from __future__ import annotations

import os

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from db_support import (  # noqa: F401 - the storage backends' fixtures (tests/db_support.py)
    blank_store_url,
    pg_cluster,
    pg_url,
    store,
    store_url,
)


@dataclass
class TestAccounts:
    """A therapist and their patient, each with a session cookie token (no passwords: no
    hashing cost), in one app's account store."""

    __test__ = False
    app: object
    therapist: object
    patient: object
    therapist_token: str
    patient_token: str

    def cookies(self, role: str = "therapist") -> dict[str, str]:
        from api.auth.middleware import COOKIE_NAME

        return {COOKIE_NAME: self.therapist_token if role == "therapist" else self.patient_token}

    def login_path(self, next_path: str = "/", role: str = "patient") -> str:
        """A one-time login link (what `lumbo demo` prints) for a page opened in a browser."""
        auth = self.app.state.auth  # type: ignore[attr-defined]
        token, _ = auth.make_link(self.therapist if role == "therapist" else self.patient,
                                  next_path)
        return f"/login/link?token={token}"


def sign_in_test_accounts(app: object) -> TestAccounts:
    auth = app.state.auth  # type: ignore[attr-defined]
    t = auth.store.by_username("test-therapist") or auth.create_therapist(
        "test-therapist", None, "Test Therapist")
    p = auth.store.by_username("test-patient") or auth.create_patient(
        "test-patient", t.id, None, "Test Patient")
    return TestAccounts(app, t, p, auth.open_session(t)[0], auth.open_session(p)[0])


@pytest.fixture
def sign_in() -> Callable[[object], TestAccounts]:
    """`sign_in(app)`: the test therapist and patient of `app`, signed in."""
    return sign_in_test_accounts


def with_test_patient(settings: object = None) -> object:
    """`settings` (default `Settings()`) whose autostarted session belongs to `test-patient`."""
    from api.settings import Settings

    settings = settings or Settings()
    auth = settings.auth.model_copy(update={"autostart_patient": "test-patient"})  # type: ignore[attr-defined]
    return settings.model_copy(update={"auth": auth})  # type: ignore[attr-defined]


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    ws_url: str  # ws://127.0.0.1:PORT
    app: object
    server: object
    thread: threading.Thread
    accounts: TestAccounts | None = None

    @property
    def cookies(self) -> dict[str, str]:
        """The test therapist's session cookie (for httpx clients)."""
        return self.accounts.cookies("therapist")  # type: ignore[union-attr]

    @property
    def headers(self) -> dict[str, str]:
        """What a page of this server sends: its Origin (state changes need it)."""
        return {"Origin": self.url}

    def ws_headers(self, role: str = "therapist") -> dict[str, str]:
        """Cookie and Origin for a WebSocket client, as a browser page of this server sends."""
        ((name, value),) = self.accounts.cookies(role).items()  # type: ignore[union-attr]
        return {"Cookie": f"{name}={value}", "Origin": self.url}

    def login_url(self, next_path: str = "/", role: str = "patient") -> str:
        return self.url + self.accounts.login_path(next_path, role)  # type: ignore[union-attr]

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=30)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: `live_server(settings=None)` starts `create_app(settings)` under uvicorn on
    127.0.0.1 with an OS-chosen port and returns once it accepts connections. Its `accounts`
    are a signed-in therapist and patient; an autostarted session belongs to the patient."""
    import uvicorn

    from api.app import create_app

    started: list[LiveServer] = []

    def start(settings: object = None) -> LiveServer:
        app = create_app(with_test_patient(settings))  # type: ignore[arg-type]
        accounts = sign_in_test_accounts(app)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                ws_ping_interval=5.0, ws_ping_timeout=10.0, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
        thread.start()
        for _ in range(3000):  # condition wait (server.started), bounded at ~30 s
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        live = LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", app, server, thread,
                          accounts)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


# ---- BLE: a private dbus-daemon as the system bus, the simulated bluetoothd on it ---------------

TESTS_DIR = __import__("pathlib").Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def system_bus() -> object:
    """One private dbus-daemon for the test process, exported as DBUS_SYSTEM_BUS_ADDRESS before
    any test touches bleak (fails under CI=true, skips otherwise, if dbus-daemon is missing)."""
    from sensors.simbluez.testing import shared_system_bus

    return shared_system_bus()


@pytest.fixture
async def fake(system_bus: object):  # noqa: ANN201 - AsyncIterator[SimBluez]
    """A fresh fake bluetoothd subprocess per test (bleak also gets a fresh manager per loop).
    It can import the tests' own peripherals (`test_simbluez:TinyPeripheral`)."""
    from sensors.simbluez import SimBluez

    sim = await SimBluez.start(system_bus.address, extra_paths=[TESTS_DIR])  # type: ignore[attr-defined]
    try:
        yield sim
    finally:
        await sim.close()


@pytest.fixture
def browser():
    """A headless Chromium (Debian's) for one test."""
    import shutil

    from browser_support import ARGS, CHROMIUM, unavailable

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        unavailable(f"Chromium not found at {CHROMIUM} (Debian package 'chromium')")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001 - report why the browser did not start
            unavailable(f"Chromium did not start: {exc}")
        yield b
        b.close()
