"""Recordings store on both backends (SQLite, PostgreSQL: the `store_url` fixture): bit-exact
round trips, migrations, interrupted sessions, the writer; SQLite's WAL and released schema."""

from __future__ import annotations

import asyncio
import hashlib
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
from recordings.database import connect, parse_location, redact
from recordings.dialect import POSTGRESQL, SQLITE, Dialect
from recordings.locks import writer_lock
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


def test_writer_round_trip_is_bit_exact_and_keeps_batches(store_url, stream) -> None:
    store = RecordingStore(store_url)
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


def test_import_round_trip_and_one_transaction(store_url, stream) -> None:
    store = RecordingStore(store_url)
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


def test_angles_events_calibration_reports_round_trip(store_url) -> None:
    from processing.pipeline import AngleBatch

    store = RecordingStore(store_url)
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


def test_session_lookup_by_prefix(store_url) -> None:
    store = RecordingStore(store_url)
    a = store.import_recording([], SessionInfo(), session_id="20250101-000000-aaaaaa")
    store.import_recording([], SessionInfo(), session_id="20250101-000000-aabbbb")
    assert store.session("20250101-000000-aaa").id == a
    with pytest.raises(SessionNotFound, match="ambiguous"):
        store.session("20250101-000000-aa")
    with pytest.raises(SessionNotFound, match="No session"):
        store.session("nope")


# --- migrations -------------------------------------------------------------------------------

def test_fresh_database_is_at_latest_version(blank_store_url) -> None:
    store_url = blank_store_url
    assert RecordingStore(store_url).recovered == []
    conn = connect(store_url)
    assert current_version(conn) == LATEST_VERSION
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert {"sessions", "sensors", "sample_blocks", "events", "analyses", "angle_blocks",
            "calibrations", "patient_reports", "users", "auth_sessions", "login_links",
            "schema_version"} <= set(conn.table_names())
    # the same version table on both: what another backend's Lumbo reads
    cols = [r[0] for r in conn.execute("SELECT version, applied_at, description FROM "
                                       "schema_version WHERE version = 1")]
    assert cols == [1]
    conn.close()


# The SQLite schema as released (migrations 1-3, before the dialect layer): rendering the portable
# DDL for SQLite must give exactly it, or existing databases and new ones would differ.
RELEASED_SQLITE_SCHEMA_SHA256 = "1f37c4a2f2b332cf7bc27caa0be0985c4673ddfbd463c94bd48bf7b8f29c9938"


def test_sqlite_schema_is_the_released_one(tmp_path) -> None:
    conn = connect(tmp_path)
    assert migrate(conn, target=3) == 3
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT "
                        "LIKE 'sqlite_%' ORDER BY name").fetchall()
    text = "\n".join(f"{t}|{n}|{tb}|{q}" for t, n, tb, q in rows)
    assert hashlib.sha256(text.encode()).hexdigest() == RELEASED_SQLITE_SCHEMA_SHA256, text


def test_dialects_render_the_portable_schema() -> None:
    from recordings import schema

    for ddl in (schema.V1, schema.V2, schema.ACCOUNTS):
        for dialect in (SQLITE, POSTGRESQL):
            assert "{" not in dialect.render(ddl).replace("'{}'", "")
    pg = POSTGRESQL.render(schema.V1)
    assert "BLOB" not in pg and "BYTEA" in pg and "DOUBLE PRECISION" in pg
    assert "GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in pg and "REAL," not in pg
    assert "COLLATE lumbo_nocase" in POSTGRESQL.render(schema.ACCOUNTS)
    assert POSTGRESQL.sql("SELECT 1 FROM t WHERE a = ? AND b LIKE '5%'") == \
        "SELECT 1 FROM t WHERE a = %s AND b LIKE '5%%'"
    assert SQLITE.sql("a = ?") == "a = ?"
    assert Dialect.upsert("t", ("k", "v"), ("k",)) == \
        "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    with pytest.raises(KeyError):
        SQLITE.render("CREATE TABLE x (a {nope})")


def test_upsert_is_the_same_on_both(store_url) -> None:
    RecordingStore(store_url).close()
    conn = connect(store_url)
    conn.begin()
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    statement = Dialect.upsert("kv", ("k", "v"), ("k",))
    conn.execute(statement, ("a", "1"))
    conn.execute(statement, ("a", "2"))
    conn.execute(statement, ("b", "3"))
    conn.commit()
    assert conn.execute("SELECT k, v FROM kv ORDER BY k").fetchall() == [("a", "2"), ("b", "3")]
    conn.close()


def test_storage_locations_parse_and_hide_passwords(tmp_path) -> None:
    d = parse_location(str(tmp_path))
    assert d.is_sqlite and d.db_path == tmp_path / "lumbo.db" and d.lock_dir == tmp_path / "locks"
    f = parse_location(f"sqlite://{tmp_path}/other.db")
    assert f.db_path == tmp_path / "other.db" and f.data_dir == tmp_path
    pg = parse_location("postgresql://lumbo:s3cret@db.example:5433/clinic?sslmode=require")
    assert not pg.is_sqlite and pg.db_path is None and "s3cret" not in pg.display
    assert pg.display == "postgresql://lumbo:***@db.example:5433/clinic?sslmode=require"
    assert redact("postgresql://u@h/d?password=x&a=1") == "postgresql://u@h/d?password=***&a=1"
    for bad, why in (("mysql://u@h/d", "unknown storage URL scheme"), ("sqlite://", "file"),
                     (f"sqlite://{tmp_path}", "is a directory"), ("  ", "empty"),
                     ("postgresql://u@h:notaport/d", "not a valid PostgreSQL URL"),
                     ("postgresql://u@h/d?nosuchparam=1", "not a valid PostgreSQL URL")):
        with pytest.raises(ValueError, match=why):
            parse_location(bad)
    from recordings import StorageError

    with pytest.raises(StorageError, match="unknown storage URL scheme"):
        RecordingStore("mysql://u@h/d")


def test_unreachable_postgresql_is_a_clear_storage_error() -> None:
    import socket

    from recordings import StorageError

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StorageError, match="unreachable.*PostgreSQL server running") as err:
        RecordingStore(f"postgresql://lumbo:pw@127.0.0.1:{port}/nowhere")
    assert "pw@" not in str(err.value)


def test_upgrade_from_v1_keeps_data(blank_store_url, stream) -> None:
    store_url = blank_store_url
    if not store_url.startswith("postgresql://"):
        parse_location(store_url).data_dir.mkdir(parents=True)  # type: ignore[union-attr]
    conn = connect(store_url)
    assert migrate(conn, target=1) == 1
    conn.begin()
    sql.insert_session(conn, "old", SessionInfo(source="v1",
                                                started_at="2024-01-01T00:00:00+00:00"),
                       status="completed")
    sid = sql.insert_sensor(conn, "old", SensorInfo("lower"))
    lower = [b for b in stream if b.sensor == "lower"][:5]
    sql.insert_sample_block(conn, sid, encode_sample_block([(b, i) for i, b in enumerate(lower)],
                                                           "shuffle-zlib"))
    conn.execute("INSERT INTO events (session_id, time_s, type, payload) "
                 "VALUES ('old', 1.0, 'marker', '{}')")
    conn.commit()
    conn.close()

    store = RecordingStore(store_url)
    assert current_version(store._conn) == LATEST_VERSION
    got = list(store.iter_batches("old"))
    for a, b in zip(lower, got):
        assert_same_batch(a, b)
    assert store.events("old")[0].analysis_id is None
    assert store.analyses("old") == [] and store.reports("old") == []
    store.add_report("old", "pain_nrs", {"nrs": 2})  # the v2 tables work


def test_newer_schema_is_refused(store_url) -> None:
    RecordingStore(store_url).close()
    conn = connect(store_url)
    conn.execute("INSERT INTO schema_version VALUES (99, 'future', 'from a newer Lumbo')")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer than this Lumbo knows"):
        RecordingStore(store_url)


# --- interrupted sessions -----------------------------------------------------------------------

def _live_session(store: RecordingStore, sid: str, stream: list[SampleBatch]) -> None:
    with store._tx("test") as conn:
        sql.insert_session(conn, sid, SessionInfo(started_at="2025-01-01T10:00:00+00:00",
                                                  time_origin_s=100.0), status="live")
        sensor = sql.insert_sensor(conn, sid, SensorInfo("lower"))
        lower = [b for b in stream if b.sensor == "lower"]
        sql.insert_sample_block(conn, sensor, encode_sample_block(
            [(b, i) for i, b in enumerate(lower)], "raw"))


def test_live_session_of_dead_writer_is_marked_interrupted(store_url, stream) -> None:
    store = RecordingStore(store_url)
    _live_session(store, "dead", stream)
    _live_session(store, "alive", stream)
    # "alive" has a writer somewhere: its lock (a file lock, or PostgreSQL's advisory lock held
    # by another connection) stands in for it
    lock, holder = writer_lock(store.target, "alive"), connect(store_url)
    assert lock.acquire(holder)
    try:
        again = RecordingStore(store_url)
        assert again.recovered == ["dead"]
        dead = again.session("dead")
        assert dead.status == "interrupted"
        assert dead.sensor("lower").samples == sum(len(b) for b in stream if b.sensor == "lower")
        # end estimated from the last sample: 10:00:00 + (t_last - origin 100 s) (t < origin here)
        assert dead.ended_at is not None
        assert again.session("alive").status == "live"
        assert again.recover_interrupted() == []  # asking again changes nothing
    finally:
        lock.release()
        holder.close()
    assert RecordingStore(store_url).recovered == ["alive"]


def test_running_writer_is_not_interrupted_by_another_store(store_url, stream) -> None:
    store = RecordingStore(store_url)
    w = store.begin_session(INFO)
    for b in stream[:20]:
        w.append_batch(b)
    assert w.flush()
    other = RecordingStore(store_url)  # e.g. `lumbo sessions` while the service records
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


def test_writer_commits_on_its_own_within_the_interval(store_url, stream) -> None:
    """Without flush or close: committed by the policy (observed through on_commit)."""
    import threading

    done = threading.Event()
    store = RecordingStore(store_url)
    w = store.begin_session(INFO, policy=CommitPolicy(interval_s=0.05),
                            on_commit=lambda s: done.set() if sum(
                                s.committed_samples.values()) >= 40 else None)
    for b in stream[:20]:
        w.append_batch(b)
    assert done.wait(30)
    assert RecordingStore(store_url).session(w.session_id).samples == 40
    assert w.close()


def test_appends_after_close_are_ignored(store_url, stream) -> None:
    store = RecordingStore(store_url)
    w = store.begin_session(INFO)
    w.append_batch(stream[0])
    assert w.close()
    w.append_batch(stream[1])
    w.append_event(0.0, "late")
    assert not w.flush()  # the thread is gone: nothing more is stored
    assert w.status.closed and store.session(w.session_id).samples == len(stream[0])


def test_empty_session_is_recorded(store_url) -> None:
    store = RecordingStore(store_url)
    w = store.begin_session(INFO)
    assert w.close("completed")
    rec = store.session(w.session_id)
    assert rec.status == "completed" and rec.samples == 0 and len(rec.sensors) == 2


async def test_async_writer_from_the_event_loop(store_url, stream) -> None:
    store = RecordingStore(store_url)
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


def test_producer_far_ahead_of_the_writer_loses_nothing(store_url, stream) -> None:
    """The buffer bound is for broken storage, not for a fast producer: nothing is dropped."""
    store = RecordingStore(store_url)
    w = store.begin_session(INFO, max_buffered_samples=300)
    for b in stream:  # thousands of samples queued at once
        w.append_batch(b)
    assert w.close() and w.status.dropped_samples == 0
    assert store.session(w.session_id).samples == sum(len(b) for b in stream)


# --- choosing the database: --db, $LUMBO_DB, --data-dir -----------------------------------------

def test_storage_url_on_the_command_line_and_in_the_environment(store_url, tmp_path,
                                                                monkeypatch, capsys) -> None:
    import json

    from pydantic import ValidationError

    from api.cli import main
    from api.settings import Settings
    from recordings import write_interchange

    raw = tmp_path / "rec.csv"
    write_interchange(raw, simulated_recording(1, seed=2))
    assert main(["import", str(raw), "--db", store_url]) == 0
    sid = capsys.readouterr().out.strip()
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("LUMBO_DATA_DIR", str(elsewhere))
    monkeypatch.setenv("LUMBO_DB", store_url)  # $LUMBO_DB wins over $LUMBO_DATA_DIR ...
    assert main(["sessions", "--json"]) == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [sid]
    assert main(["sessions", "--json", "--data-dir", str(elsewhere)]) == 0  # ... not --data-dir
    assert json.loads(capsys.readouterr().out) == []
    settings = Settings.from_env()
    assert settings.database() == store_url and settings.data_dir == elsewhere
    assert Settings.from_env(db=None).database() == elsewhere
    monkeypatch.delenv("LUMBO_DB")
    assert Settings.from_env().database() == elsewhere
    for command in (["sessions"], ["serve"], ["create-therapist", "x"], ["replay", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--db", "mysql://u@h/d"])
        assert exit_.value.code == 2
        assert "unknown storage URL scheme 'mysql'" in capsys.readouterr().err
    with pytest.raises(ValidationError, match="unknown storage URL scheme"):
        Settings(db="mysql://u@h/d")
