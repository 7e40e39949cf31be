"""kill -9 the real service (`lumbo serve` in its own process) while it records a session:
after a restart on the same data directory the session is there, marked interrupted, with the
samples up to within about a second of stream time before the kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from recordings import RecordingStore

REPO = Path(__file__).resolve().parents[1]
SPEED = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bearer(data_dir: Path) -> str:
    """A therapist with one patient in the data directory's accounts, and a bearer token."""
    from api.auth.service import AuthService
    from recordings.accounts import AccountStore

    auth = AuthService(AccountStore(data_dir))
    try:
        t = auth.create_therapist("crash-therapist", None, "Crash Therapist")
        auth.create_patient("crash-patient", t.id, None, "Crash Patient")
        return auth.open_session(t, "bearer")[0]
    finally:
        auth.close()


def _wait_for(cond: Callable[[], Any], proc: subprocess.Popen, what: str,
              attempts: int = 3000) -> Any:
    """Poll a condition (bounded: ~30 s), failing early if the server died."""
    for _ in range(attempts):
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"the service exited ({proc.returncode}) while waiting for "
                                 f"{what}: {proc.stderr.read() if proc.stderr else ''}")
        threading.Event().wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Service:
    def __init__(self, data_dir: Path, token: str) -> None:
        self.port = _free_port()
        env = {**os.environ, "LUMBO_DATA_DIR": str(data_dir),
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10.0,
                                   headers={"Authorization": f"Bearer {token}"})
        _wait_for(self._healthy, self.proc, "the service to answer")

    def _healthy(self) -> bool:
        try:
            return self.client.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        s.stop()


def test_kill_9_of_the_service_keeps_the_session_up_to_the_last_second(tmp_path,
                                                                       services) -> None:
    token = _bearer(tmp_path)
    svc = Service(tmp_path, token)
    services.append(svc)
    r = svc.client.post("/api/session/start", json={
        "source": "simulated", "script": "flexion_reps", "n_reps": 20, "speed": SPEED,
        "realtime": True, "level": 1})
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]

    first: list[float] = []

    def stored_3s() -> dict | None:
        st = svc.client.get("/api/session").json()["storage"]
        if not st or st["stored_until_s"] is None:
            return None
        first[:] = first or [st["stored_until_s"]]
        return st if st["stored_until_s"] - first[0] >= 3.0 else None

    _wait_for(stored_3s, svc.proc, "3 s of stream time stored")
    last = svc.client.get("/api/session").json()["storage"]  # right before the kill
    assert last["healthy"] and last["recording_id"] == sid
    seen_t = last["received_until_s"]
    os.kill(svc.proc.pid, signal.SIGKILL)
    svc.proc.wait(30)
    assert svc.proc.returncode == -signal.SIGKILL

    again = Service(tmp_path, token)  # a restart on the same data directory
    services.append(again)
    rec = again.client.get(f"/api/recordings/{sid}").json()
    assert rec["status"] == "interrupted" and rec["ended_at"] is not None
    assert {s["role"] for s in rec["sensors"]} == {"upper", "lower"}
    for s in rec["sensors"]:  # at most ~1 s of stream time lost, per sensor
        assert seen_t - 1.0 <= s["t_last"], (s, seen_t)
        print(f"{s['role']}: last stored sample {seen_t - s['t_last']:+.3f} s before the last "
              "one seen")
    types = rec["events"]
    assert types.get("session_started") == 1 and "session_ended" not in types
    # the service records again next to it
    r = again.client.post("/api/session/start", json={
        "source": "simulated", "script": "flexion_reps", "n_reps": 1, "realtime": False})
    assert r.status_code == 200, r.text
    _wait_for(lambda: again.client.get("/api/session").json()["storage"]["closed"], again.proc,
              "the second session to be stored")
    again.stop()
    # what survived is whole: contiguous counters, increasing times, both sensors
    store = RecordingStore(tmp_path)
    got = store.read_recording(sid)
    for role, b in got.items():
        assert np.all(np.diff(b.counter) == 1) and np.all(np.diff(b.time_s) > 0), role
        assert abs(float(b.time_s[-1]) - seen_t) < 1.0 + 0.5 * SPEED
    assert [s.status for s in store.sessions()] == ["completed", "interrupted"]
