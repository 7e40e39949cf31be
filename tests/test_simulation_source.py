"""The simulated patient as a SensorSource: ordering, completeness, stop, health, looping."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sensors.samples import SampleBatch
from sensors.source import SensorSource
from sensors.simulation import (
    MovementScript,
    PatientParams,
    SimulatedPatient,
    SimulatedPatientSource,
    Stand,
    bend,
    calibration_then_flexion_reps,
)


def short_script() -> MovementScript:
    return MovementScript([Stand(1.0), bend("flexion", 30.0, out_s=0.6, hold_s=0.2, back_s=0.6),
                           Stand(0.5)])


async def collect(source: SimulatedPatientSource, limit: int | None = None) -> list[SampleBatch]:
    out: list[SampleBatch] = []
    async for batch in source.batches():
        out.append(batch)
        if limit is not None and len(out) >= limit:
            await source.stop()
    return out


def by_role(batches: list[SampleBatch], role: str) -> list[SampleBatch]:
    return [b for b in batches if b.sensor == role]


async def test_fast_source_delivers_the_recording_in_order() -> None:
    script = calibration_then_flexion_reps(n_reps=2)
    patient = SimulatedPatient(script, PatientParams(seed=6))
    source = SimulatedPatientSource(patient, realtime=False, batch_s=0.05, time_origin_s=500.0)
    assert isinstance(source, SensorSource)
    batches = await collect(source)
    whole = SimulatedPatient(script, PatientParams(seed=6)).record(time_origin_s=500.0)
    for role in ("upper", "lower"):
        mine = by_role(batches, role)
        assert all(b.sensor == role and len(b) > 0 for b in mine)
        times = np.concatenate([b.time_s for b in mine])
        assert np.all(np.diff(times) > 0)
        np.testing.assert_array_equal(times, whole[role].time_s)
        np.testing.assert_array_equal(np.concatenate([b.acc for b in mine]), whole[role].acc)
        assert all(len(b) <= 5 for b in mine)  # one tick of 0.05 s at 100 Hz
    assert source.health()["upper"].status == "stopped"


async def test_stop_ends_an_endless_stream() -> None:
    patient = SimulatedPatient(short_script(), PatientParams(seed=1))
    source = SimulatedPatientSource(patient, realtime=False, loop=True)
    batches = await asyncio.wait_for(collect(source, limit=40), timeout=10.0)
    assert len(batches) == 40
    health = source.health()
    assert health["lower"].status == "stopped" and not health["lower"].connected


async def test_stop_from_another_task_interrupts_pacing() -> None:
    patient = SimulatedPatient(short_script(), PatientParams(seed=1))
    source = SimulatedPatientSource(patient, realtime=True, speed=0.001)  # one tick every 20 s
    task = asyncio.create_task(collect(source))
    await asyncio.sleep(0)
    await source.stop()
    assert await asyncio.wait_for(task, timeout=5.0) == []


async def test_health_while_streaming() -> None:
    patient = SimulatedPatient(short_script(), PatientParams(seed=2, rate_hz=100.0))
    source = SimulatedPatientSource(patient, realtime=False, loop=True)
    seen = 0
    async for batch in source.batches():
        seen += 1
        if seen == 300:
            health = source.health()
            break
    for role in ("upper", "lower"):
        h = health[role]
        assert h.connected and h.status == "streaming"
        assert h.device_name == f"Simulated IMU ({role})"
        assert abs(h.rate_hz - 100.0) < 2.0 and h.nominal_rate_hz == 100.0
        assert h.last_seen_s is not None
    await source.stop()


async def test_loop_keeps_time_and_counters_continuous() -> None:
    script = short_script()
    patient = SimulatedPatient(script, PatientParams(seed=4))
    source = SimulatedPatientSource(patient, realtime=False, loop=True, time_origin_s=0.0)
    batches = await collect(source, limit=int(3 * script.duration_s / 0.02) * 2)
    lower = by_role(batches, "lower")
    times = np.concatenate([b.time_s for b in lower])
    counters = np.concatenate([b.counter for b in lower])
    assert times[-1] > 2.5 * script.duration_s
    np.testing.assert_allclose(np.diff(times), 0.01, atol=1e-9)
    assert np.array_equal(counters, np.arange(len(counters)))
    assert patient.truth(script.duration_s + script.repetitions()[0].peak_s).flexion_deg > 10.0


async def test_realtime_smoke_at_speed_20() -> None:
    patient = SimulatedPatient(MovementScript([Stand(2.0)]), PatientParams(seed=0))
    source = SimulatedPatientSource(patient, realtime=True, speed=20.0)
    batches = await asyncio.wait_for(collect(source), timeout=20.0)
    assert sum(len(b) for b in by_role(batches, "lower")) == 200
    assert source.time_origin_s is not None


def test_rate_meter_keeps_its_window_sum_exact() -> None:
    """The running sum gives the rate that summing the kept window afresh gives, and a steady
    100 Hz stream reads 100 Hz."""
    import random

    from sensors.pacing import RateMeter

    meter, rng, t = RateMeter(window_s=1.0), random.Random(3), 0.0
    for _ in range(500):
        t += rng.uniform(0.005, 0.05)
        meter.note(t, rng.randint(1, 5))
        kept = list(meter._recent)
        if len(kept) < 2:
            assert meter.rate_hz == 0.0
            continue
        fresh = sum(c for _, c in kept[1:]) / (kept[-1][0] - kept[0][0])
        assert meter.rate_hz == pytest.approx(fresh, rel=1e-12)
    steady = RateMeter(window_s=2.0)
    for k in range(1, 301):
        steady.note(k * 0.02, 2)  # 2 samples every 20 ms
    assert steady.rate_hz == pytest.approx(100.0)
