"""What the broker tests share: a real `redis-server` on a loopback port, service instances
(real uvicorn, each in its own thread and event loop) sharing one data directory and the broker,
accounts signed in on that shared store, WebSocket viewers. A missing redis-server fails under
CI=true and skips elsewhere (the rule of tests/browser_support.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ci_rule import missing_component

from api.broker_server import RedisServer, redis_server_path

LIMIT_S = 60.0  # a bound on waiting for a condition, never a measurement


def need_redis_server() -> str:
    path = redis_server_path()
    if path is None:
        missing_component("broker test", "redis-server not found (Debian package "
                          "'redis-server'; scripts/test installs it)")
    return path


def start_redis(tmp: Path) -> RedisServer:
    need_redis_server()
    return RedisServer(workdir=tmp).start()


@dataclass
class Instance:
    """One service instance: its app, its uvicorn server and thread, its URLs."""

    name: str
    app: Any
    server: Any
    thread: threading.Thread
    url: str = ""

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    @property
    def relay(self) -> Any:
        return self.app.state.broker

    @property
    def manager(self) -> Any:
        return self.app.state.manager

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_instance(name: str, data_dir: Path, broker_url: str | None, **overrides: Any
                   ) -> Instance:
    """`create_app` on 127.0.0.1 with an OS-chosen port; returns once it accepts connections
    and (with a broker) once its relay is connected."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(data_dir=data_dir, broker=broker_url, **overrides)
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            ws_ping_interval=5.0, ws_ping_timeout=10.0, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{name}", daemon=True)
    thread.start()
    inst = Instance(name, app, server, thread)
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    if not server.started:
        raise RuntimeError(f"instance {name} did not start")
    inst.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    if broker_url is not None:
        wait_for(lambda: app.state.broker.connected, f"instance {name} to reach the broker")
    return inst


def wait_for(cond: Any, what: str, limit_s: float = LIMIT_S) -> None:
    """Poll a condition from the test thread (servers run in their own threads), bounded."""
    ev = threading.Event()
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return
        ev.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def await_for(cond: Any, what: str, limit_s: float = LIMIT_S) -> None:
    """`wait_for` for async tests: yields to the test's event loop between checks."""
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class People:
    """Therapist t1 with patients p1 and p2, therapist t2 with patient q; cookie tokens."""

    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def cookie(self, who: str) -> str:
        from api.auth.middleware import COOKIE_NAME

        return f"{COOKIE_NAME}={self.tokens[who]}"


def make_people(app: Any) -> People:
    """Accounts in the store the instances share, each signed in (no passwords: no hashing)."""
    auth = app.state.auth
    people = People()
    t1 = auth.create_therapist("broker-t1", None, "Therapist One")
    t2 = auth.create_therapist("broker-t2", None, "Therapist Two")
    accounts = {
        "t1": t1, "t2": t2,
        "p1": auth.create_patient("broker-p1", t1.id, None, "Patient One"),
        "p2": auth.create_patient("broker-p2", t1.id, None, "Patient Two"),
        "q": auth.create_patient("broker-q", t2.id, None, "Patient Q"),
    }
    for who, acc in accounts.items():
        people.ids[who] = acc.id
        people.tokens[who] = auth.open_session(acc)[0]
    return people


def start_session(inst: Instance, people: People, therapist: str, patient: str,
                  seed: int = 0) -> str:
    """Start the simulated patient (real time, looping) for `patient` on `inst`; its id."""
    import httpx

    r = httpx.post(f"{inst.url}/api/session/start", params={"patient_id": people.ids[patient]},
                   json={"script": "demo", "loop": True, "realtime": True, "seed": seed},
                   headers={"Cookie": people.cookie(therapist), "Origin": inst.url}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["session_id"])


class Viewer:
    """A WebSocket client of `/ws/live` that keeps every message it receives."""

    def __init__(self, inst: Instance, people: People, who: str, patient: str | None) -> None:
        self.inst, self.people, self.who, self.patient = inst, people, who, patient
        self.messages: list[dict[str, Any]] = []
        self.ws: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Viewer:
        import websockets

        q = f"?patient_id={self.people.ids[self.patient]}" if self.patient else ""
        self.ws = await websockets.connect(
            f"{self.inst.ws_url}/ws/live{q}", max_size=None,
            additional_headers={"Cookie": self.people.cookie(self.who), "Origin": self.inst.url})
        self._task = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        import websockets

        try:
            async for raw in self.ws:
                self.messages.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        if self._task is not None:
            await self._task

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def frames(self, session_id: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.of_type("frame")
                if session_id is None or m["session_id"] == session_id]
