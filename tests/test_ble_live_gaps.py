"""Lost samples in a live session (what a BLE link drop or a counter jump produces): batches with
`gap_before=True` must not break the pipeline or the feedback engine, a repetition under way
across the gap is interrupted (not scored), later repetitions still count, and the frames show
the gap. No HTTP and no radio: the simulated patient, unpaced, with samples cut out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import jsonschema
import numpy as np
import pytest

from api import schema
from api.live import LiveSession
from api.sources import make_source
from sensors.samples import SampleBatch, SensorHealth, SensorRole

N_REPS = 4


def _slice(b: SampleBatch, keep: np.ndarray, gap: bool) -> SampleBatch:
    def s(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    return SampleBatch(b.sensor, b.time_s[keep], b.acc[keep], b.gyr[keep], s(b.mag),
                       s(b.device_time_s), s(b.counter), gap)


class Dropping:
    """Wraps a simulated source: drops one sensor's samples whose script time lies in
    [t0, t1) and marks the first batch after them `gap_before`, as the BLE link does."""

    def __init__(self, inner, role: SensorRole, t0: float, t1: float) -> None:
        self.inner, self.role, self.t0, self.t1 = inner, role, t0, t1
        self.dropped = 0

    async def batches(self) -> AsyncIterator[SampleBatch]:
        pending = False
        async for b in self.inner.batches():
            if b.sensor != self.role:
                yield b
                continue
            t = b.time_s - self.inner.time_origin_s
            lost = (t >= self.t0) & (t < self.t1)
            if lost.any():
                self.dropped += int(lost.sum())
                pending = True
                # samples before the cut still go out; those after it start the next batch
                first_lost = int(np.argmax(lost))
                if first_lost:
                    yield _slice(b, np.arange(len(b)) < first_lost, b.gap_before)
                after = ~lost & (np.arange(len(b)) > first_lost)
                if after.any():
                    yield _slice(b, after, True)
                    pending = False
                continue
            if pending:
                b = _slice(b, np.ones(len(b), dtype=bool), True)
                pending = False
            yield b

    async def stop(self) -> None:
        await self.inner.stop()

    def health(self) -> dict[SensorRole, SensorHealth]:
        return self.inner.health()


async def run_with_gap(role: SensorRole, rep_index: int, fraction: float, length_s: float
                       ) -> tuple[LiveSession, list[dict], Dropping, list]:
    """A whole session at level 6 with `length_s` of `role` lost at `fraction` of the way
    through repetition `rep_index` (script time)."""
    req = schema.StartSessionRequest(script="flexion_reps", n_reps=N_REPS, realtime=False)
    source, info = make_source(req)
    reps = info["script"].repetitions()
    practice = [r for r in reps if r.label != "calibration"]
    rep = practice[rep_index]
    t0 = rep.start_s + fraction * (rep.end_s - rep.start_s)
    dropping = Dropping(source, role, t0, t0 + length_s)
    frames: list[str] = []
    session = LiveSession(dropping, publish=frames.append, level=6)
    session.start()
    await asyncio.wait_for(session.wait(), 120)
    return session, [json.loads(f) for f in frames], dropping, practice


def events(frames: list[dict], kind: str) -> list[dict]:
    return [e for f in frames for e in f["events"] if e["type"] == kind]


@pytest.mark.parametrize(
    ("role", "length_s"),
    [("lower", 1.0),  # a link drop and reconnect: no frames at all meanwhile
     ("upper", 0.05)],  # five samples: shorter than the engine's own gap limit (0.2 s)
)
async def test_repetition_across_a_gap_is_interrupted_and_the_session_goes_on(
        role: SensorRole, length_s: float) -> None:
    session, frames, dropping, practice = await run_with_gap(role, 1, 0.35, length_s)

    assert session.state == "ended" and session.error is None, session.message
    assert dropping.dropped == round(length_s * 100)
    interrupted = events(frames, "repetition_interrupted")
    assert [(e["rep_number"], e["reason"]) for e in interrupted] == [(2, "signal_gap")]
    scored = events(frames, "repetition_scored")
    assert len(scored) == N_REPS - 1  # the ones before and after the gap still count
    assert frames[-1]["feedback"]["rep_count"] == N_REPS - 1

    # the frames show the gap: flagged frame, the trace's index of the sample after it
    origin = session.source.inner.time_origin_s
    flagged = [f for f in frames if f["gap"]]
    assert flagged, "no frame says samples were lost"
    gap_end = dropping.t1
    after = [f for f in flagged if f["trace"]["gaps"]]
    assert after, "no trace marks where the gap is"
    f = after[0]
    i = f["trace"]["gaps"][0]
    assert f["trace"]["t_s"][i] - origin >= gap_end - 1e-6
    if i:
        assert f["trace"]["t_s"][i - 1] - origin < dropping.t0
    # the angles carry on after the gap
    live_after = [f for f in frames if f["t_s"] - origin > gap_end + 1.0
                  and f["angles"]["flexion_deg"] is not None]
    assert len(live_after) > 100

    validator = jsonschema.Draft202012Validator(schema.json_schema("frame"))
    for f in flagged + frames[::50]:
        validator.validate(f)


async def test_a_gap_at_rest_interrupts_nothing() -> None:
    """Lost samples while standing between repetitions cost no repetition."""
    session, frames, _, practice = await run_with_gap("lower", 0, 1.02, 0.15)
    assert session.state == "ended"
    assert events(frames, "repetition_interrupted") == []
    assert len(events(frames, "repetition_scored")) == N_REPS
    assert any(f["gap"] for f in frames)
