"""Storage failures: a read-only directory, a read-only store, a full disk, memory bounds.

The writer must report (healthy False, last_error with a clear message), keep the data in its
bounded buffer, retry, and never raise into the caller; what was stored stays intact.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fs_support import make_read_only

from recordings import (
    RecordingStore,
    SensorInfo,
    SessionInfo,
    StorageFullError,
    StorageReadOnlyError,
)
from recordings.testing import simulated_recording, simulated_stream

INFO = SessionInfo(source="faults", sensors=(SensorInfo("upper"), SensorInfo("lower")))


@pytest.fixture(scope="module")
def stream():
    return simulated_stream(simulated_recording(1, seed=6), 2)


def _samples(batches) -> int:
    return sum(len(b) for b in batches)




@pytest.fixture
def read_only_dir(tmp_path) -> Iterator[Path]:
    d = tmp_path / "ro"
    d.mkdir()
    yield from (d for _ in make_read_only(d))  # type: ignore[misc]


def test_read_only_directory_gives_a_clear_error(read_only_dir) -> None:
    with pytest.raises(StorageReadOnlyError) as err:
        RecordingStore(read_only_dir / "lumbo-data")
    msg = str(err.value)
    assert "not writable" in msg and "LUMBO_DATA_DIR" in msg and "lumbo-data" in msg


def test_existing_store_in_a_read_only_directory_can_still_be_read(tmp_path, stream) -> None:
    d = tmp_path / "data"
    with RecordingStore(d) as store:
        sid = store.import_recording(stream, INFO)
    for _ in make_read_only(d):
        with pytest.raises(StorageReadOnlyError):
            RecordingStore(d)
        with RecordingStore(d, read_only=True) as ro:
            assert ro.session(sid).samples == _samples(stream)
            with pytest.raises(StorageReadOnlyError, match="read-only"):
                ro.begin_session(INFO)


def _fail_with(writer, pragma_on: str) -> None:
    writer.call_in_writer_thread(lambda c: c.execute(pragma_on)).result(10)


def test_full_disk_is_reported_buffered_and_retried(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO)
    first, rest = stream[:100], stream[100:]
    for b in first:
        w.append_batch(b)
    assert w.flush() and w.healthy
    # SQLite's page limit stands in for a full disk: the next page allocation fails (SQLITE_FULL)
    _fail_with(w, "PRAGMA max_page_count = 1")  # clamps to the current size
    for b in rest:
        w.append_batch(b)  # the caller goes on: nothing raises
    assert not w.flush()
    st = w.status
    assert not w.healthy and st.error_kind == "full" and isinstance(w.last_error, StorageFullError)
    assert "full" in st.last_error and "Free disk space" in st.last_error  # type: ignore[operator]
    assert st.pending_samples == _samples(rest) and st.dropped_samples == 0
    # what was stored before is intact and readable meanwhile
    assert RecordingStore(tmp_path).session(w.session_id).samples == _samples(first)
    # space again: the retry stores everything, exactly once
    _fail_with(w, "PRAGMA max_page_count = 1073741823")
    assert w.flush() and w.healthy and w.last_error is None
    assert w.close()
    got = list(store.iter_batches(w.session_id, order="arrival"))
    assert len(got) == len(stream)
    assert all(a.time_s.tobytes() == b.time_s.tobytes() for a, b in zip(stream, got))


def test_read_only_store_mid_session(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO)
    w.append_batch(stream[0])
    assert w.flush()
    _fail_with(w, "PRAGMA query_only = 1")  # SQLITE_READONLY, as a remounted file system gives
    for b in stream[1:50]:
        w.append_batch(b)
    w.append_event(1.0, "marker", {"note": "kept while read-only"})
    assert not w.flush()
    assert w.status.error_kind == "read_only" and isinstance(w.last_error, StorageReadOnlyError)
    assert "read-only" in w.status.last_error  # type: ignore[operator]
    _fail_with(w, "PRAGMA query_only = 0")
    assert w.close() and w.healthy
    rec = store.session(w.session_id)
    assert rec.samples == _samples(stream[:50]) and rec.status == "completed"
    assert [e.type for e in store.events(w.session_id)] == ["marker"]


def test_buffer_is_bounded_and_marks_the_hole(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO, max_buffered_samples=100)
    _fail_with(w, "PRAGMA query_only = 1")  # fails from the very first commit (no session row)
    for b in stream[:100]:  # 200 samples, twice what may wait
        w.append_batch(b)
    assert not w.flush()
    st = w.status
    assert st.pending_samples <= 100 and st.dropped_samples == 200 - st.pending_samples
    _fail_with(w, "PRAGMA query_only = 0")
    assert w.close()
    got = list(store.iter_batches(w.session_id, order="arrival"))
    assert _samples(got) == st.pending_samples
    # the oldest went; the first kept batch of each sensor says samples are missing before it
    firsts = {}
    for b in got:
        firsts.setdefault(b.sensor, b)
    assert all(b.gap_before for b in firsts.values())
    assert not any(b.gap_before for b in got if b is not firsts[b.sensor])
    assert got[-1].time_s.tobytes() == stream[99].time_s.tobytes()  # the newest were kept


def test_unwritable_session_is_closed_without_hanging(tmp_path, stream) -> None:
    store = RecordingStore(tmp_path)
    w = store.begin_session(INFO)
    w.append_batch(stream[0])
    assert w.flush()
    _fail_with(w, "PRAGMA query_only = 1")
    w.append_batch(stream[1])
    assert not w.close()  # says data was lost; does not raise
    assert w.status.closed and not w.healthy
    # the session stays 'live' in the file; the next open finds no writer and marks it
    again = RecordingStore(tmp_path)
    assert again.session(w.session_id).status == "interrupted"
