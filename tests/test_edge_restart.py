"""Edge mode across edge crashes: `lumbo edge` as a real process, killed with SIGKILL and started
again, against a real central service (uvicorn) behind a proxy.

Offline, one session is recorded to its end (a backlog) and a second one is running; then the
link comes back and the edge is killed in the middle of the upload, with a chunk in flight
that central has stored but whose answer never came, and in the middle of the live session (a
power cut at home). Started again, the edge resumes from central's cursors, its store marks
the dead session interrupted, and central ends up with exactly the edge's two sessions (the
second `interrupted` there too), nothing twice.

Waits poll observable state (the proxy, the stores, HTTP) with deadlines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_support import CuttableProxy, assert_same_session, free_port, wait_for, write_token

from api.auth.service import AuthService
from api.settings import Settings
from recordings.accounts import AccountStore
from recordings.errors import SessionNotFound
from recordings.store import RecordingStore

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 120.0
BACKLOG = {"script": "flexion_reps", "n_reps": 2, "realtime": True, "speed": 20.0, "level": 1}
LIVE = {"script": "flexion_reps", "n_reps": 10, "realtime": True, "speed": 5.0, "level": 1}


class EdgeProcess:
    """`lumbo edge` in a subprocess on a free port."""

    def __init__(self, data_dir: Path, central_url: str, token_file: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("LUMBO_DB",)}
        env["LUMBO_DATA_DIR"] = str(data_dir)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "edge", "--central", central_url,
             "--token-file", str(token_file), "--port", str(self.port), "--poll", "0.05",
             "--chunk-items", "2", "--retry-max", "0.3", "--no-relay",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(self._up, "the edge to start", DEADLINE_S, every_s=0.05)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"lumbo edge exited: {err[-2000:]}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def edges() -> Iterator[list[EdgeProcess]]:
    started: list[EdgeProcess] = []
    yield started
    for e in started:
        e.stop()


def _bearer(data_dir: Path) -> dict[str, str]:
    auth = AuthService(AccountStore(data_dir))
    patient = auth.store.by_username("home-patient")
    assert patient is not None, "lumbo edge creates its local patient"
    token, _ = auth.open_session(patient, "bearer")
    auth.close()
    return {"Authorization": f"Bearer {token}"}


def _state(central: Any, sid: str) -> Any:
    ingest = getattr(central.app.state, "ingest", None)
    try:
        return None if ingest is None else ingest.state(sid, None)
    except Exception:  # noqa: BLE001 - not announced yet
        return None


def _start(edge: EdgeProcess, headers: dict[str, str], request: dict[str, Any]) -> str:
    resp = httpx.post(f"{edge.url}/api/session/start", json=request, headers=headers,
                      timeout=DEADLINE_S)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["session_id"])


def test_edge_killed_mid_upload_and_mid_session_resumes_without_loss_or_duplicates(
        live_server, edges: list[EdgeProcess], tmp_path: Path) -> None:
    central = live_server(Settings(data_dir=tmp_path / "central"))
    token, _ = central.app.state.auth.devices.create(central.accounts.patient, "home")
    token_file = write_token(tmp_path / "device-token", token)
    proxy = CuttableProxy(int(central.url.rsplit(":", 1)[1]))
    edge_dir = tmp_path / "edge"
    try:
        # offline: one session recorded to the end (a backlog), a second one running
        proxy.cut()
        edges.append(edge := EdgeProcess(edge_dir, proxy.url, token_file))
        headers = _bearer(edge_dir)
        done = _start(edge, headers, BACKLOG)
        local = RecordingStore(edge_dir)
        wait_for(lambda: _local_status(local, done) == "completed",
                 "the offline session to end", DEADLINE_S)
        live = _start(edge, headers, LIVE)
        wait_for(lambda: _local_status(local, live) == "live" and
                 local.session(live).samples > 500, "the second session to run", DEADLINE_S)

        # the link returns; the edge dies mid-upload, a chunk in flight (stored, unanswered)
        proxy.stall_after(5)
        proxy.restore()
        wait_for(proxy.stalled.is_set, "the upload to be in flight", DEADLINE_S)
        edge.kill()
        mid = [s for s in (_state(central, done), _state(central, live)) if s is not None]
        assert sum(c.next_seq for s in mid for c in s.streams.values()) == 6
        assert all(s.state == "uploading" and s.status == "live" for s in mid)
        assert local.session(live).status == "live"  # nobody has marked it yet
        proxy.drop_connections()

        # started again: it resumes from central's cursors; the dead session is interrupted
        edges.append(EdgeProcess(edge_dir, proxy.url, token_file))
        for sid in (done, live):
            wait_for(lambda: (s := _state(central, sid)) is not None and s.state == "ended",
                     f"the upload of {sid} to end", DEADLINE_S)
        assert local.session(live).status == "interrupted"
        first = assert_same_session(local, central.app.state.recordings.store, done)
        assert first["angle_frames"] > 0 and first["calibrations"] == 1
        second = assert_same_session(local, central.app.state.recordings.store, live)
        assert second["samples"] > 500
        assert _state(central, done).edge_status == "completed"
        assert _state(central, live).edge_status == "interrupted"
        local.close()
    finally:
        proxy.close()


def _local_status(store: RecordingStore, sid: str) -> str | None:
    try:
        return store.session(sid).status
    except SessionNotFound:  # its first commit has not happened yet
        return None
