"""Several service instances on one database (issue 8 goes multi-instance): each sees the others'
sessions, none marks another's live session interrupted, a killed instance's session is marked
by the instances still running; on PostgreSQL also the periodic sweep of the live service and a
writer that loses its connection to the server and gets it back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from db_support import WAIT_S, wait_writer_gone
from recordings import CommitPolicy, RecordingStore, SensorInfo, SessionInfo, StorageError
from recordings.testing import simulated_recording, simulated_stream

REPO = Path(__file__).resolve().parents[1]
INFO = SessionInfo(source="instances", sensors=(SensorInfo("upper"), SensorInfo("lower")))

# another instance, in its own process: records a session, says so, then waits to be killed
RECORDER = r"""
import sys, threading
from recordings import RecordingStore
from recordings.testing import simulated_recording, simulated_stream

store = RecordingStore(sys.argv[1])
w = store.begin_session()
for b in simulated_stream(simulated_recording(1, seed=3), 2)[:400]:
    w.append_batch(b)
assert w.flush()
print(w.session_id, flush=True)
threading.Event().wait()
"""


def _stream() -> list:
    return simulated_stream(simulated_recording(1, seed=8), 2)


def _killed_instance(location: str) -> str:
    """Run RECORDER, kill -9 it once it has committed; the id of its (still live) session."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, location], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    guard = threading.Timer(60, proc.kill)  # never hang the suite
    guard.start()
    try:
        assert proc.stdout is not None
        session_id = proc.stdout.readline().strip()
        assert session_id, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
    wait_writer_gone(location, session_id)
    return session_id


def _status(store: RecordingStore, session_id: str) -> str:
    return store.session(session_id).status


def test_instances_share_sessions_and_only_dead_ones_are_interrupted(store_url) -> None:
    stream = _stream()
    a, b = RecordingStore(store_url), RecordingStore(store_url)  # two running instances
    wa, wb = a.begin_session(INFO), b.begin_session(INFO)
    for x in stream[:100]:
        wa.append_batch(x)
        wb.append_batch(x)
    assert wa.flush() and wb.flush()
    for s in (a, b):  # each sees both, live
        assert {r.id: r.status for r in s.sessions()} == {wa.session_id: "live",
                                                          wb.session_id: "live"}
    # a third instance starts, and the running ones look for dead writers: nothing is dead
    c = RecordingStore(store_url)
    assert c.recovered == [] and a.recover_interrupted() == [] and b.recover_interrupted() == []
    assert _status(c, wa.session_id) == _status(c, wb.session_id) == "live"

    dead = _killed_instance(store_url)  # a fourth instance dies mid-session
    assert _status(a, dead) == "live"  # nobody has looked yet
    assert b.recover_interrupted() == [dead]  # a running instance marks it, once
    assert a.recover_interrupted() == [] and RecordingStore(store_url).recovered == []
    rec = a.session(dead)
    assert rec.status == "interrupted" and rec.samples == 800 and rec.ended_at is not None
    assert _status(a, wa.session_id) == _status(b, wb.session_id) == "live"  # untouched

    for x in stream[100:]:  # the live ones go on recording and end normally
        wa.append_batch(x)
    assert wa.close() and wb.close()
    total = sum(len(x) for x in stream)
    assert {r.id: (r.status, r.samples) for r in c.sessions()} == {
        wa.session_id: ("completed", total), wb.session_id: ("completed", 200),
        dead: ("interrupted", 800)}
    for s in (a, b, c):
        s.close()


def test_live_service_marks_a_dead_instances_session_while_running(pg_url) -> None:
    """On a shared PostgreSQL database the service looks again every `recovery_interval_s`."""
    import asyncio

    from api.recording import Recordings

    recs = Recordings(pg_url, recovery_interval_s=0.05)
    store = recs.open()
    assert store is not None and recs.recovered == []
    dead = _killed_instance(pg_url)  # another instance dies after this one started
    deadline = time.monotonic() + WAIT_S
    while _status(store, dead) != "interrupted":  # the sweep's effect, bounded
        assert time.monotonic() < deadline, "the running service never marked the session"
        time.sleep(0.01)
    assert dead in recs.recovered
    asyncio.run(recs.aclose())


def test_writer_that_loses_the_server_reconnects_and_stays_live(pg_url) -> None:
    """The writer's connection ends (server restart, network): its lock goes with it, another
    instance marks the session interrupted; the writer reconnects on its next commit, takes the
    lock again, sets the session live again and loses nothing."""
    import psycopg

    stream = _stream()
    a = RecordingStore(pg_url)
    w = a.begin_session(INFO, policy=CommitPolicy(retry_s=0.05))
    for x in stream[:100]:
        w.append_batch(x)
    assert w.flush()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        (n,) = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE application_name = %s",
                             (f"lumbo writer {w.session_id}",)).fetchone()
    assert n == 1
    wait_writer_gone(pg_url, w.session_id)
    b = RecordingStore(pg_url)  # another instance: the lock is free, so it looks dead
    assert b.recovered == [w.session_id] and _status(b, w.session_id) == "interrupted"
    for x in stream[100:]:
        w.append_batch(x)
    # a commit on the dead connection fails (said, data kept); the next reconnects: whether the
    # first failure is this flush's or the writer's own interval commit's depends on timing
    assert w.flush() or w.flush()
    assert w.healthy and _status(b, w.session_id) == "live"
    assert b.recover_interrupted() == []  # its lock is held again
    assert w.close()
    rec = b.session(w.session_id)
    assert rec.status == "completed" and rec.samples == sum(len(x) for x in stream)
    # the store's own connection too: the call that finds it gone fails, the next reconnects
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'lumbo store' AND pid <> pg_backend_pid()")
    with pytest.raises(StorageError):
        a.sessions()
    assert a.session(w.session_id).status == "completed"
    a.close()
    b.close()
