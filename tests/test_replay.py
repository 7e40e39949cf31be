"""ReplaySource: a stored session streams out exactly as stored, through the same pipeline; from
either storage backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from db_support import BACKENDS, new_location
from recordings import RecordingStore, ReplaySource, SensorInfo, SessionInfo
from recordings.testing import simulated_recording, simulated_stream
from sensors.source import SensorSource


@pytest.fixture(scope="module", params=BACKENDS)
def recorded(request, tmp_path_factory):
    stream = simulated_stream(simulated_recording(2, seed=7), 10)
    location, cleanup = new_location(request, request.param, tmp_path_factory.mktemp("replay"))
    request.addfinalizer(cleanup)
    store = RecordingStore(location)
    request.addfinalizer(store.close)
    w = store.begin_session(SessionInfo(source="sim", time_origin_s=0.0, sensors=(
        SensorInfo("upper", "sim", "Sim U", "sim:u", 100.0),
        SensorInfo("lower", "sim", "Sim L", "sim:l", 100.0))))
    for b in stream:
        w.append_batch(b)
    assert w.close()
    return store, w.session_id, stream


async def _collect(src: ReplaySource, stop_after: int | None = None) -> list:
    out = []
    async for b in src.batches():
        out.append(b)
        if stop_after is not None and len(out) == stop_after:
            await src.stop()
    return out


def _same(a, b) -> bool:
    return a.sensor == b.sensor and all(
        (x is None and y is None) or (x.tobytes() == y.tobytes())
        for x, y in ((a.time_s, b.time_s), (a.acc, b.acc), (a.gyr, b.gyr), (a.mag, b.mag),
                     (a.device_time_s, b.device_time_s), (a.counter, b.counter)))


async def test_replay_yields_the_stored_batches_in_time_order(recorded) -> None:
    store, sid, stream = recorded
    src = ReplaySource(store, sid)
    assert isinstance(src, SensorSource)
    got = await _collect(src)
    expected = sorted(stream, key=lambda b: float(b.time_s[0]))  # stable: per sensor in order
    assert len(got) == len(expected) and all(_same(a, b) for a, b in zip(expected, got))
    starts = [float(b.time_s[0]) for b in got]
    assert starts == sorted(starts)
    h = src.health()
    assert set(h) == {"upper", "lower"} and h["lower"].device_name == "Sim L"
    assert h["lower"].loss_pct == 0.0 and h["lower"].rate_hz == pytest.approx(100.0, rel=0.02)
    assert h["lower"].status == "stopped"


async def test_replay_in_arrival_order_is_the_live_order(recorded) -> None:
    store, sid, stream = recorded
    got = await _collect(ReplaySource(store, sid, order="arrival"))
    assert all(_same(a, b) for a, b in zip(stream, got)) and len(got) == len(stream)


async def test_realtime_replay_paces_but_yields_the_same(recorded) -> None:
    store, sid, stream = recorded
    got = await _collect(ReplaySource(store, sid, realtime=True, speed=500.0))
    assert len(got) == len(stream)


async def test_stop_ends_the_stream_and_origin_shifts_times(recorded) -> None:
    store, sid, stream = recorded
    got = await _collect(ReplaySource(store, sid, time_origin_s=1000.0), stop_after=5)
    assert len(got) == 5
    first = min(stream, key=lambda b: float(b.time_s[0]))
    assert got[0].time_s[0] == pytest.approx(first.time_s[0] + 1000.0)  # stored origin was 0
    with pytest.raises(RuntimeError):
        src = ReplaySource(store, sid)
        await _collect(src)
        await _collect(src)


async def test_replay_through_the_pipeline_gives_the_same_angles(recorded) -> None:
    from processing.pipeline import AngleBatch, LumbarPipeline

    store, sid, stream = recorded
    live, again = LumbarPipeline(), LumbarPipeline()
    a = AngleBatch.concat([live.update(b) for b in stream])
    b = AngleBatch.concat([again.update(x) async for x in ReplaySource(
        store, sid, order="arrival").batches()])
    assert len(a) > 1000 and np.array_equal(a.flexion_deg, b.flexion_deg)
    assert np.array_equal(a.time_s, b.time_s)
