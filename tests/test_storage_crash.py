"""kill -9 a process that is recording: everything it reported committed must survive, and the
next store to open the database marks the session interrupted (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from db_support import wait_writer_gone
from recordings import RecordingStore
from recordings.testing import simulated_recording, simulated_stream

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, threading, time
from recordings import RecordingStore, SensorInfo, SessionInfo
from recordings.testing import simulated_recording, simulated_stream

out = threading.Lock()
def say(line):
    with out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def committed(status):  # runs in the writer thread after each commit returned
    c = status.committed_samples
    say(f"C {c.get('upper', 0)} {c.get('lower', 0)}")

stream = simulated_stream(simulated_recording(8, seed=5), 2)
store = RecordingStore(sys.argv[1])
w = store.begin_session(SessionInfo(source="crash-test", sensors=(SensorInfo("upper"),
                                    SensorInfo("lower"))), on_commit=committed)
say(f"S {w.session_id}")
for i, b in enumerate(stream):
    w.append_batch(b)
    if i % 4 == 3:
        time.sleep(0.001)  # ~10x real time: keeps the kill mid-stream
say("A all appended")
threading.Event().wait()  # stay live (never close) until killed
"""


def test_kill_9_loses_nothing_that_was_committed(store_url) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, store_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    guard = threading.Timer(60, proc.kill)  # never hang the suite
    guard.start()
    committed = {"upper": 0, "lower": 0}
    commits = 0
    session_id = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            kind, *rest = line.split()
            if kind == "S":
                session_id = rest[0]
            elif kind == "C":
                commits += 1
                committed = {"upper": int(rest[0]), "lower": int(rest[1])}
                if commits >= 3:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        # lines already in the pipe were printed after their commit returned: count them too
        for line in proc.stdout:
            if line.startswith("C "):
                _, u, lo = line.split()
                committed = {"upper": int(u), "lower": int(lo)}
        proc.wait(30)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert session_id is not None and commits >= 3

    wait_writer_gone(store_url, session_id)
    store = RecordingStore(store_url)
    assert store.recovered == [session_id]
    rec = store.session(session_id)
    assert rec.status == "interrupted" and rec.ended_at is not None
    stored = {s.role: s.samples for s in rec.sensors}
    sent = simulated_stream(simulated_recording(8, seed=5), 2)
    total = {r: sum(len(b) for b in sent if b.sensor == r) for r in ("upper", "lower")}
    for role in ("upper", "lower"):
        assert committed[role] <= stored[role] <= total[role], (role, committed, stored)
    # what is there is exactly the beginning of what was sent, bit for bit
    got = list(store.iter_batches(session_id, order="arrival"))
    assert len(got) >= 1
    for a, b in zip(sent, got):
        assert a.sensor == b.sensor
        assert a.time_s.tobytes() == b.time_s.tobytes() and a.acc.tobytes() == b.acc.tobytes()
    # and the database is healthy: new sessions can be written next to it
    w = store.begin_session()
    w.append_batch(sent[0])
    assert w.close()


EXITS = r"""
import sys
from recordings import RecordingStore
from recordings.testing import simulated_recording, simulated_stream

store = RecordingStore(sys.argv[1])
w = store.begin_session()
for b in simulated_stream(simulated_recording(1, seed=5), 2)[:300]:
    w.append_batch(b)
print(w.session_id, flush=True)
# the program ends without close(): the writer's exit hook stores the rest
"""


def test_normal_exit_without_close_keeps_everything(store_url) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", EXITS, store_url], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    rec = RecordingStore(store_url).session(done.stdout.strip())
    assert rec.status == "interrupted" and rec.samples == 600
