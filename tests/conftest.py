"""Shared fixtures: a real uvicorn server on a free loopback port, in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    ws_url: str  # ws://127.0.0.1:PORT
    app: object
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=30)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: `live_server(settings=None)` starts `create_app(settings)` under uvicorn on
    127.0.0.1 with an OS-chosen port and returns once it accepts connections."""
    import uvicorn

    from api.app import create_app

    started: list[LiveServer] = []

    def start(settings: object = None) -> LiveServer:
        app = create_app(settings)  # type: ignore[arg-type]
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
        live = LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", app, server, thread)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
