"""Recordings store: bit-exact round trips, WAL, migrations, interrupted sessions, the writer."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import fields

import numpy as np
import pytest

from recordings import (
    AsyncSessionWriter,
    CommitPolicy,
    RecordingStore,
    SchemaVersionError,
    SensorInfo,
    SessionInfo,
    SessionNotFound,
)
from recordings import sql
from recordings.blocks import encode_sample_block
from recordings.locks import SessionLock
from recordings.migrations import LATEST_VERSION, current_version, migrate
from recordings.testing import simulated_recording, simulated_stream, slice_batch
from sensors.samples import SampleBatch

INFO = SessionInfo(source="test", sensors=(SensorInfo("upper", "sim", "Sim U", "sim:u", 100.0),
                                           SensorInfo("lower", "sim", "Sim L", "sim:l", 100.0)))


def assert_same_batch(a: SampleBatch, b: SampleBatch) -> None:
    assert a.sensor == b.sensor and a.gap_before == b.gap_before
    for name in ("time_s", "acc", "gyr", "mag", "device_time_s", "counter"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
        else:
            assert y is not None and x.dtype == y.dtype and x.shape == y.shape, name
            assert x.tobytes() == y.tobytes(), name  # bit-exact, NaN and -0.0 included


@pytest.fixture(scope="module")
def stream() -> list[SampleBatch]:
    return simulated_stream(simulated_recording(1, seed=4), 2)


def test_writer_round_trip_is_bit_exact_and_keeps_batches(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    # odd batches too: a gap flag, one without mag/device time/counter, NaN and -0.0 values
    odd = slice_batch(stream[10], 0, 2, gap_before=True)
    bare = SampleBatch("lower", np.array([1e6, 1e6 + 0.01]), np.array([[np.nan, -0.0, 1e-300]] * 2),
                       np.zeros((2, 3)))
    sent = stream[:10] + [odd] + stream[12:] + [bare]
    w = store.begin_session(INFO)
    for b in sent:
        w.append_batch(b)
    assert w.close()
    got = list(store.iter_batches(w.session_id, order="arrival"))
    assert len(got) == len(sent)
    for a, b in zip(sent, got):
        assert_same_batch(a, b)
    rec = store.session(w.session_id)
    assert rec.status == "completed" and rec.ended_at is not None
    assert {s.role: s.samples for s in rec.sensors} == {
        r: sum(len(b) for b in sent if b.sensor == r) for r in ("upper", "lower")}
    assert rec.sensor("upper").device_name == "Sim U"  # type: ignore[union-attr]
    per_sensor = store.read_batches(w.session_id)
    for role, batches in per_sensor.items():
        for a, b in zip([x for x in sent if x.sensor == role], batches):
            assert_same_batch(a, b)


def test_import_round_trip_and_one_transaction(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    sid = store.import_recording(iter(stream), SessionInfo(source="import"))
    for a, b in zip(stream, store.iter_batches(sid, order="arrival")):
        assert_same_batch(a, b)

    def failing():
        yield from stream[:50]
        raise ValueError("bad line")

    with pytest.raises(ValueError):
        store.import_recording(failing(), SessionInfo(source="broken"))
    assert [s.id for s in store.sessions()] == [sid]  # nothing of the failed import remains


def test_wal_mode_and_durability_pragmas(tmp_path) -> None:
    store = RecordingStore(tmp_path)
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 1  # NORMAL
    w = store.begin_session(INFO)
    modes = w.call_in_writer_thread(
        lambda c: (c.execute("PRAGMA journal_mode").fetchone()[0],
                   c.execute("PRAGMA synchronous").fetchone()[0])).result(10)
    assert modes == ("wal", 1)
    assert w.close()


def test_angles_events_calibration_reports_round_trip(tmp_path) -> None:
    from processing.pipeline import AngleBatch

    store = RecordingStore(tmp_path)
    n = 5000  # more than one angle block
    rng = np.random.default_rng(0)
    angles = AngleBatch(**{f.name: (rng.uniform(size=n) > 0.9 if f.name == "gap_before"
                                    else rng.normal(size=n)) for f in fields(AngleBatch)})
    w = store.begin_session(INFO)
    w.append_angles(angles.take(slice(0, 3000)))
    w.append_angles(angles.take(slice(3000, n)))
    w.append_event(1.5, "repetition_scored", {"rep_number": 1, "score": {"peak_deg": np.float64(
        31.5), "bad": float("nan")}})
    w.append_event(None, "marker", None)
    w.append_calibration(0.0, {"lower": {"r": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}})
    w.append_report("pain_nrs", {"nrs": 4, "when": "before"})
    assert w.close()
    got = store.read_angles(w.session_id)
    assert list(got) == [f.name for f in fields(AngleBatch)]
    for f in fields(AngleBatch):
        assert np.array_equal(got[f.name], getattr(angles, f.name)), f.name
    assert got["gap_before"].dtype == bool
    (live,) = store.analyses(w.session_id)
    assert live.kind == "live" and live.samples == n
    # a re-analysis lives beside the original
    aid = store.create_analysis(w.session_id, "offline", "re-run", {"tau_acc_s": 3.0})
    store.write_angles(aid, {"time_s": np.arange(3.0), "flexion_deg": np.ones(3)})
    assert [a.id for a in store.analyses(w.session_id)] == [live.id, aid]
    assert list(store.read_angles(w.session_id)) == ["time_s", "flexion_deg"]  # newest
    assert np.array_equal(store.read_angles(w.session_id, live.id)["time_s"], angles.time_s)
    evs = store.events(w.session_id)
    assert [e.type for e in evs] == ["repetition_scored", "marker"]
    assert evs[0].payload == {"rep_number": 1, "score": {"peak_deg": 31.5, "bad": None}}
    (cal,) = store.calibrations(w.session_id)
    assert cal.analysis_id == live.id and cal.payload["lower"]["r"][0] == [1, 0, 0]
    (rep,) = store.reports(w.session_id)
    assert rep.kind == "pain_nrs" and rep.payload == {"nrs": 4, "when": "before"}


def test_session_lookup_by_prefix(tmp_path) -> None:
    store = RecordingStore(tmp_path)
    a = store.import_recording([], SessionInfo(), session_id="20250101-000000-aaaaaa")
    store.import_recording([], SessionInfo(), session_id="20250101-000000-aabbbb")
    assert store.session("20250101-000000-aaa").id == a
    with pytest.raises(SessionNotFound, match="ambiguous"):
        store.session("20250101-000000-aa")
    with pytest.raises(SessionNotFound, match="No session"):
        store.session("nope")


# --- migrations -------------------------------------------------------------------------------

def test_fresh_database_is_at_latest_version(tmp_path) -> None:
    store = RecordingStore(tmp_path)
    conn = sqlite3.connect(store.db_path)
    assert current_version(conn) == LATEST_VERSION
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))


def test_upgrade_from_v1_keeps_data(tmp_path, stream) -> None:
    db = tmp_path / "lumbo.db"
    conn = sql.connect(db)
    assert migrate(conn, target=1) == 1
    conn.execute("BEGIN")
    sql.insert_session(conn, "old", SessionInfo(source="v1",
                                                started_at="2024-01-01T00:00:00+00:00"),
                       status="completed")
    sid = sql.insert_sensor(conn, "old", SensorInfo("lower"))
    lower = [b for b in stream if b.sensor == "lower"][:5]
    sql.insert_sample_block(conn, sid, encode_sample_block([(b, i) for i, b in enumerate(lower)],
                                                           "shuffle-zlib"))
    conn.execute("INSERT INTO events (session_id, time_s, type, payload) "
                 "VALUES ('old', 1.0, 'marker', '{}')")
    conn.execute("COMMIT")
    conn.close()

    store = RecordingStore(tmp_path)
    assert current_version(store._conn) == LATEST_VERSION
    got = list(store.iter_batches("old"))
    for a, b in zip(lower, got):
        assert_same_batch(a, b)
    assert store.events("old")[0].analysis_id is None
    assert store.analyses("old") == [] and store.reports("old") == []
    store.add_report("old", "pain_nrs", {"nrs": 2})  # the v2 tables work


def test_newer_schema_is_refused(tmp_path) -> None:
    RecordingStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "lumbo.db")
    conn.execute("INSERT INTO schema_version VALUES (99, 'future', 'from a newer Lumbo')")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer than this Lumbo knows"):
        RecordingStore(tmp_path)


# --- interrupted sessions -----------------------------------------------------------------------

def _live_session(store: RecordingStore, sid: str, stream: list[SampleBatch]) -> None:
    with store._tx("test") as conn:
        sql.insert_session(conn, sid, SessionInfo(started_at="2025-01-01T10:00:00+00:00",
                                                  time_origin_s=100.0), status="live")
        sensor = sql.insert_sensor(conn, sid, SensorInfo("lower"))
        lower = [b for b in stream if b.sensor == "lower"]
        sql.insert_sample_block(conn, sensor, encode_sample_block(
            [(b, i) for i, b in enumerate(lower)], "raw"))


def test_live_session_of_dead_writer_is_marked_interrupted(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    _live_session(store, "dead", stream)
    _live_session(store, "alive", stream)
    lock = SessionLock(store.lock_dir / "alive.lock")
    assert lock.acquire()  # "alive" has a writer somewhere (this lock stands in for it)
    try:
        again = RecordingStore(tmp_path)
        assert again.recovered == ["dead"]
        dead = again.session("dead")
        assert dead.status == "interrupted"
        assert dead.sensor("lower").samples == sum(len(b) for b in stream if b.sensor == "lower")
        # end estimated from the last sample: 10:00:00 + (t_last - origin 100 s) (t < origin here)
        assert dead.ended_at is not None
        assert again.session("alive").status == "live"
    finally:
        lock.release()
    assert RecordingStore(tmp_path).recovered == ["alive"]


def test_running_writer_is_not_interrupted_by_another_store(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO)
    for b in stream[:20]:
        w.append_batch(b)
    assert w.flush()
    other = RecordingStore(tmp_path)  # e.g. `lumbo sessions` while the service records
    assert other.recovered == [] and other.session(w.session_id).status == "live"
    assert w.close()
    assert other.session(w.session_id).status == "completed"


# --- the writer ---------------------------------------------------------------------------------

def test_commit_policy() -> None:
    p = CommitPolicy(interval_s=0.5, max_pending_samples=100)
    assert not p.due(10.0, None, 0)
    assert not p.due(10.4, 10.0, 10)
    assert p.due(10.5, 10.0, 10)  # 0.5 s after the oldest pending item: commit
    assert p.due(10.1, 10.0, 100)  # or when enough samples wait
    assert p.wait_s(10.0, None, None) is None  # nothing pending: sleep until something comes
    assert p.wait_s(10.2, 10.0, None) == pytest.approx(0.3)
    assert p.wait_s(10.2, 10.0, 12.0) == pytest.approx(1.8)  # failed: wait for the retry


def test_writer_commits_on_its_own_within_the_interval(tmp_path, stream) -> None:
    """Without flush or close: committed by the policy (observed through on_commit)."""
    import threading

    done = threading.Event()
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO, policy=CommitPolicy(interval_s=0.05),
                            on_commit=lambda s: done.set() if sum(
                                s.committed_samples.values()) >= 40 else None)
    for b in stream[:20]:
        w.append_batch(b)
    assert done.wait(30)
    assert RecordingStore(tmp_path).session(w.session_id).samples == 40
    assert w.close()


def test_appends_after_close_are_ignored(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO)
    w.append_batch(stream[0])
    assert w.close()
    w.append_batch(stream[1])
    w.append_event(0.0, "late")
    assert not w.flush()  # the thread is gone: nothing more is stored
    assert w.status.closed and store.session(w.session_id).samples == len(stream[0])


def test_empty_session_is_recorded(tmp_path) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO)
    assert w.close("completed")
    rec = store.session(w.session_id)
    assert rec.status == "completed" and rec.samples == 0 and len(rec.sensors) == 2


async def test_async_writer_from_the_event_loop(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = AsyncSessionWriter(store.begin_session(INFO))
    ticks = 0

    async def other_work() -> None:  # the loop stays free while the writer commits
        nonlocal ticks
        for _ in range(10):
            ticks += 1
            await asyncio.sleep(0)

    for b in stream:
        w.append_batch(b)
    assert (await asyncio.gather(w.flush(), other_work()))[0]
    assert ticks == 10 and w.healthy and w.status.committed_samples["upper"] > 0
    assert await w.close("completed")
    assert store.session(w.session_id).samples == sum(len(b) for b in stream)


def test_producer_far_ahead_of_the_writer_loses_nothing(tmp_path, stream) -> None:
    """The buffer bound is for broken storage, not for a fast producer: nothing is dropped."""
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO, max_buffered_samples=300)
    for b in stream:  # thousands of samples queued at once
        w.append_batch(b)
    assert w.close() and w.status.dropped_samples == 0
    assert store.session(w.session_id).samples == sum(len(b) for b in stream)
