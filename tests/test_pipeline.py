"""The streaming pipeline against the offline analysis, gaps, bounded memory, late calibration."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from processing.alignment import AlignedFrames
from processing.offline import analyze, analyze_detailed, chunked
from processing.pipeline import AngleBatch, LumbarPipeline, PipelineParams
from sensors.samples import SampleBatch
from sensors.simulation import PatientParams, SimulatedPatient, mixed_session

try:
    from test_processing_synth import SynthBody, calibration_keys, random_strap
except ImportError:  # tests/ imported as a package
    from tests.test_processing_synth import SynthBody, calibration_keys, random_strap

NOISY = dict(gyro_noise=0.005, acc_noise=0.03, gyro_bias=0.005)


def cut(b: SampleBatch, i0: int, i1: int, gap: bool = False) -> SampleBatch:
    return SampleBatch(b.sensor, b.time_s[i0:i1], b.acc[i0:i1], b.gyr[i0:i1],
                       None if b.mag is None else b.mag[i0:i1], gap_before=gap)


def stream_random(rec: dict[str, SampleBatch], seed: int, pipe: LumbarPipeline) -> AngleBatch:
    """Feed batches of 1–30 samples, the two sensors interleaved at random but never far apart."""
    rng = np.random.default_rng(seed)
    pos = {role: 0 for role in rec}
    out = []
    while any(pos[r] < len(rec[r]) for r in rec):
        # the sensor that is behind in time goes next, mostly
        behind = min((r for r in rec if pos[r] < len(rec[r])), key=lambda r: rec[r].time_s[pos[r]])
        open_roles = [r for r in rec if pos[r] < len(rec[r])]
        role = behind if rng.uniform() < 0.8 else str(rng.choice(open_roles))
        n = int(rng.integers(1, 31))
        i0, i1 = pos[role], min(len(rec[role]), pos[role] + n)
        out.append(pipe.update(cut(rec[role], i0, i1)))
        pos[role] = i1
    return AngleBatch.concat(out)


def test_streaming_equals_offline_on_a_simulated_session() -> None:
    patient = SimulatedPatient(mixed_session(60.0, seed=3), PatientParams(seed=3))
    rec = patient.record()
    offline = analyze(rec)
    live = stream_random(rec, 3, LumbarPipeline())
    assert len(live) == len(offline) > 0.99 * len(rec["lower"])
    for f in fields(AngleBatch):
        a, b = getattr(live, f.name), getattr(offline, f.name)
        if f.name.endswith("_deg"):
            assert np.max(np.abs(a - b)) <= 0.01
        # in fact equal up to float rounding (SIMD paths differ with array length)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    # chunk size does not matter either
    np.testing.assert_allclose(analyze(rec, chunk_s=0.7).flexion_deg, offline.flexion_deg,
                               rtol=0, atol=1e-9)


def test_simulator_batches_and_iterables_are_accepted() -> None:
    patient = SimulatedPatient(mixed_session(40.0, seed=4), PatientParams(seed=4, with_mag=False))
    batches = []
    for k in range(int(40.0 / 0.5)):
        got = patient.generate(k * 0.5, (k + 1) * 0.5)
        batches += [got["upper"], got["lower"]]
    a = analyze(batches)
    b = analyze(patient.record())
    np.testing.assert_allclose(a.flexion_deg, b.flexion_deg, rtol=0, atol=1e-9)


def synth(seed: int = 0, **kw: float) -> SynthBody:
    rng = np.random.default_rng(seed)
    return SynthBody(calibration_keys(**kw), random_strap(rng), random_strap(rng))


def test_gap_in_upper_sensor_is_not_interpolated() -> None:
    rec = synth(1, reps=4).record(35.0, seed=1, **NOISY)
    up = rec["upper"]
    i0, i1 = np.searchsorted(up.time_s, [20.0, 21.0])
    batches = [cut(up, 0, i0), cut(up, i1, len(up), gap=True), rec["lower"]]
    a = analyze(batches)
    inside = (a.time_s > 19.995) & (a.time_s < 21.0)
    assert not inside.any()
    after = np.argmax(a.time_s > 21.0)
    assert a.gap_before[after]
    full = analyze(rec)
    sel = np.isin(full.time_s, a.time_s[after:])
    # orientation kept going through the gap: angles after it still right (pure flexion here)
    assert np.abs(full.flexion_deg[sel] - a.flexion_deg[after:]).max() < 1.0


def test_sensors_at_different_rates() -> None:
    b = synth(2)
    rec = b.record(30.0, upper_rate_hz=60.0, upper_offset_s=0.007, seed=2, **NOISY)
    res = analyze_detailed(rec)
    truth = b.truth_deg(res.angles.time_s)
    assert np.sqrt(np.mean((res.angles.flexion_deg - truth["flexion"]) ** 2)) < 0.5


def test_memory_stays_bounded() -> None:
    params = PipelineParams(pre_calibration_buffer_s=20.0)  # horizon 36.5 s
    pipe = LumbarPipeline(params)
    still = SynthBody({}, random_strap(np.random.default_rng(3))).record(90.0, seed=3, **NOISY)
    for chunk in chunked(still, 0.5):
        pipe.update(chunk)
        buffered = AlignedFrames.concat(pipe._buffer)
        assert len(buffered) <= 37.0 * 100
    assert pipe.calibration is None
    # calibrated: nothing accumulates
    rec = synth(4, reps=12).record(80.0, seed=4, **NOISY)
    pipe = LumbarPipeline()
    for chunk in chunked(rec, 0.5):
        pipe.update(chunk)
        assert len(pipe._aligner._upper) + len(pipe._aligner._lower) < 200
    assert pipe.calibration is not None and not pipe._buffer


def test_late_calibration_still_gives_angles_from_the_start() -> None:
    b = synth(5, stand_s=45.0)
    rec = b.record(65.0, seed=5, **NOISY)
    params = PipelineParams(pre_calibration_buffer_s=10.0)
    assert params.buffer_horizon_s == pytest.approx(36.5)  # what calibration needs at least
    pipe = LumbarPipeline(params)
    live = AngleBatch.concat([pipe.update(c) for c in chunked(rec, 0.1)])
    assert pipe.calibration.bend_s[1] > 51.0  # back up from the bend at 45–52 s
    assert live.time_s[0] == pytest.approx(pipe.calibration.bend_s[1] - 36.5, abs=0.02)
    offline = analyze(rec, params)
    assert offline.time_s[0] < 0.05
    np.testing.assert_allclose(offline.flexion_deg[-len(live):], live.flexion_deg, atol=1e-9)


@pytest.mark.parametrize("silent_s", [20.0, 70.0])
def test_offline_equals_streaming_when_one_sensor_falls_silent(silent_s: float) -> None:
    # offline feeds both sensors' data of long chunks at once when neither sensor is silent for
    # long (20 s), and chunk by chunk and sensor by sensor otherwise (70 s: longer than the
    # stages wait for a silent sensor, which then drop what a live session drops)
    rec = synth(6, reps=20).record(130.0, seed=6, **NOISY)
    up = rec["upper"]
    i0, i1 = np.searchsorted(up.time_s, [40.0, 40.0 + silent_s])
    silent = {"lower": rec["lower"], "upper": [cut(up, 0, i0), cut(up, i1, len(up), gap=True)]}
    offline = analyze_detailed(silent)
    pipe = LumbarPipeline()
    live = AngleBatch.concat([pipe.update(c) for c in chunked(silent, 0.25)])
    reps = pipe.finish()
    assert len(live) == len(offline.angles) > 0.9 * (130.0 - silent_s) * 100.0
    for f in fields(AngleBatch):
        np.testing.assert_allclose(getattr(live, f.name), getattr(offline.angles, f.name),
                                   rtol=0, atol=1e-9)
    assert [r.start_s for r in reps] == pytest.approx([r.start_s for r in offline.repetitions])
