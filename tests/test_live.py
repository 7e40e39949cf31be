"""The session layer without HTTP: simulated patient → pipeline → engine → frames."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import jsonschema
import numpy as np
import pytest

from api import schema
from api.live import LiveSession, SessionManager, TargetError
from api.fanout import Broadcaster
from api.sources import make_source
from sensors.samples import SampleBatch, SensorHealth


def sim_session(level: int = 6, **req: object) -> tuple[LiveSession, list[str], dict]:
    options = {"script": "flexion_reps", "n_reps": 8, "realtime": False, **req}
    source, info = make_source(schema.StartSessionRequest(**options))
    frames: list[str] = []
    return LiveSession(source, publish=frames.append, level=level), frames, info


@pytest.fixture(scope="module")
def full_run() -> tuple[LiveSession, list[dict], dict]:
    """One whole simulated session (calibration + 8 reps = one set at level 6), unpaced."""

    async def run() -> tuple[LiveSession, list[str], dict]:
        session, frames, info = sim_session()
        session.start()
        await session.wait()
        return session, frames, info

    session, frames, info = asyncio.run(run())
    return session, [json.loads(f) for f in frames], info


def test_frames_validate_against_the_served_schema(full_run) -> None:
    _, frames, _ = full_run
    validator = jsonschema.Draft202012Validator(schema.json_schema("frame"))
    for f in frames[::7] + [f for f in frames if f["events"] or f["trace"]["t_s"][:1] == []]:
        validator.validate(f)
    assert [f["seq"] for f in frames] == list(range(len(frames)))


def test_one_frame_per_lower_batch_at_50_per_second(full_run) -> None:
    session, frames, info = full_run
    t = np.array([f["t_s"] for f in frames])
    assert np.all(np.diff(t) >= 0)
    rate = (len(t) - 1) / (t[-1] - t[0])
    assert rate >= 30.0
    assert rate == pytest.approx(1 / info["source"].batch_s, rel=0.05)


def test_trace_has_every_angle_sample_once(full_run) -> None:
    _, frames, _ = full_run
    t = np.concatenate([f["trace"]["t_s"] for f in frames])
    dt = np.diff(t)
    assert np.all(dt > 0)
    assert np.allclose(dt, 0.01, atol=2e-3)  # 100 Hz, no gaps, no duplicates
    calibrated = [f for f in frames if f["angles"]["flexion_deg"] is not None]
    assert calibrated and frames[-1]["calibration"]["phase"] == "calibrated"
    # before calibration the frames carry calibration progress and no angles
    assert frames[0]["angles"]["flexion_deg"] is None and frames[0]["target"] is None


def test_reps_scored_set_completed_calibration_bend_not_counted(full_run) -> None:
    session, frames, _ = full_run
    events = [e for f in frames for e in f["events"]]
    scored = [e for e in events if e["type"] == "repetition_scored"]
    assert len(scored) == 8  # the calibration bend is not a practice repetition
    assert all(e["score"]["cue_text"] for e in scored)
    sets = [e for e in events if e["type"] == "set_completed"]
    assert len(sets) == 1 and sets[0]["summary"]["reps"] == 8
    assert session.completed_sets[0]["reps"] == 8
    assert frames[-1]["feedback"]["rep_count"] == 0  # a new set has begun
    st = session.status()
    assert st.state == "ended" and st.sets[0].model_dump()["reps"] == 8
    assert frames[-1]["target"]["level"] == 6 and frames[-1]["target"]["share"] == 0.7


async def test_level_invalid_for_this_patient_is_reported_not_fatal() -> None:
    # a stiff patient (48° calibration bend: ~24° lumbar); level 1 gives 40 % of ~24° ± 8°,
    # a band reaching into the rest zone
    session, frames, _ = sim_session(level=1, n_reps=2, calibration_deg=48.0)
    session.start()
    await session.wait()
    assert session.state == "ended"
    assert session.target_spec is None
    assert session.error.startswith("no target") and "rest zone" in session.error
    session.set_target(level=6)
    assert session.target_spec is not None and session.level == 6 and session.error is None
    with pytest.raises(TargetError, match="rest zone"):
        session.set_target(target_deg=8, tolerance_deg=5)


async def test_stop_ends_a_paced_source_cleanly() -> None:
    session, frames, info = sim_session(realtime=True, speed=1.0)
    changes: list[str] = []
    session._on_change = lambda s: changes.append(s.state)
    session.start()
    while not frames:  # wait for the first frame (condition, not time)
        await asyncio.sleep(0.005)
    await session.stop()
    assert session.state == "stopped" and changes[-1] == "stopped"
    assert info["source"].health()["lower"].status == "stopped"
    n = len(frames)
    await asyncio.sleep(0)
    assert len(frames) == n  # nothing after stop


class _ScriptedSource:
    """A source that yields a few batches then raises or ends."""

    def __init__(self, n: int, exc: Exception | None) -> None:
        self.n, self.exc, self.stopped = n, exc, False

    async def batches(self) -> AsyncIterator[SampleBatch]:
        for i in range(self.n):
            for role in ("upper", "lower"):
                t = np.array([i * 0.02, i * 0.02 + 0.01])
                yield SampleBatch(role, t, np.tile([0, 0, 9.81], (2, 1)), np.zeros((2, 3)))
        if self.exc is not None:
            raise self.exc

    async def stop(self) -> None:
        self.stopped = True

    def health(self) -> dict[str, SensorHealth]:
        return {"lower": SensorHealth("lower", connected=True)}


@pytest.mark.parametrize("exc", [OSError("adapter unplugged"), None])
async def test_source_that_raises_or_ends_leaves_a_clear_status(exc) -> None:
    source = _ScriptedSource(5, exc)
    broadcaster = Broadcaster()
    published: list[str] = []
    broadcaster.publish = published.append  # type: ignore[method-assign]
    manager = SessionManager(broadcaster, source_factory=lambda req: (source, {}))
    session = await manager.start(schema.StartSessionRequest(level=6))
    await session.wait()
    st = manager.status()
    if exc is None:
        assert st.state == "ended" and st.error is None
    else:
        assert st.state == "failed" and "adapter unplugged" in st.error and "OSError" in st.error
    assert source.stopped
    frames = [json.loads(m) for m in published if '"type":"frame"' in m]
    statuses = [json.loads(m) for m in published if '"type":"status"' in m]
    assert len(frames) == 5 and statuses[-1]["session"]["state"] == st.state
    assert frames[0]["sensors"]["lower"]["connected"] is True and frames[0]["sensors"]["upper"] is None
