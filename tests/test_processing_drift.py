"""Joint rest bias (processing.rest_bias, processing.sensor_pair) and the relative heading drift
correction (processing.heading): unit behaviour, batch independence, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from processing import quaternion as qt
from processing.heading import HeadingDriftCorrector, HeadingParams
from processing.kinematics import compose_yxz, decompose_yxz
from processing.offline import chunked
from processing.rest_bias import JointRestDetector
from processing.sensor_pair import PairedOrientation, slice_batch
from sensors.samples import SampleBatch

try:
    from test_processing_synth import SynthBody, random_strap
except ImportError:  # tests/ imported as a package
    from tests.test_processing_synth import SynthBody, random_strap


def standing(duration_s: float, *, twist: list[tuple[float, float]] | None = None,
             seed: int = 0) -> tuple[SynthBody, dict[str, SampleBatch]]:
    rng = np.random.default_rng(seed)
    keys = {"rotation": twist} if twist else {}
    b = SynthBody(keys, random_strap(rng), random_strap(rng))
    return b, b.record(duration_s, seed=seed, gyro_noise=0.003, acc_noise=0.02, gyro_bias=0.01)


def feed(detector: JointRestDetector, rec: dict[str, SampleBatch], step_s: float = 0.25) -> list:
    events = []
    for b in chunked(rec, step_s):
        detector.add(b.sensor, b.time_s, b.gyr, b.acc)
        events += detector.decide()
    return events


def test_quiet_standing_gives_rest_events_with_the_bias() -> None:
    _, rec = standing(10.0)
    events = feed(JointRestDetector(), rec)
    assert events and events[0].first and not any(e.first for e in events[1:])
    # 3 quiet blocks of 0.5 s, then 5 interior blocks for the whole bias, then every 1 s
    assert events[0].time_s == pytest.approx(3.5)
    assert np.diff([e.time_s for e in events]) == pytest.approx(1.0)
    for role in ("upper", "lower"):
        true_bias = rec[role].gyr.mean(axis=0)  # no motion: the mean rate is the bias
        np.testing.assert_allclose(events[0].bias[role], true_bias, atol=2e-3)
        np.testing.assert_allclose(events[-1].gyr_mean[role], true_bias, atol=2e-3)
        up = rec[role].acc.mean(axis=0)
        assert np.degrees(np.arccos(events[-1].up[role] @ up / np.linalg.norm(up))) < 0.5


def test_the_first_bias_is_not_fooled_by_sway() -> None:
    # the whole body sways ±3° at 0.25 Hz (pelvis and trunk alike): up to 4.7 °/s, horizontal
    keys = [(float(x), 3.0 * np.sin(2 * np.pi * 0.25 * x)) for x in np.arange(0.0, 10.01, 0.05)]
    rng = np.random.default_rng(1)
    b = SynthBody({"pelvic_tilt": keys}, random_strap(rng), random_strap(rng))
    rec = b.record(10.0, seed=1, gyro_noise=0.003, acc_noise=0.02, gyro_bias=0.01)
    events = feed(JointRestDetector(), rec)
    first = events[0]
    assert first.first and first.bias is not None
    for role in ("upper", "lower"):
        q = b.sensor_quat(role, rec[role].time_s)
        w_true = qt.to_rotvec(qt.multiply(qt.conjugate(q[:-1]), q[1:])) * 100.0
        true_bias = (rec[role].gyr[:-1] - w_true).mean(axis=0)
        err = np.degrees(np.linalg.norm(first.bias[role] - true_bias))
        span = (rec[role].time_s > 1.25) & (rec[role].time_s < 3.25)  # the measured span
        naive = np.degrees(np.linalg.norm(rec[role].gyr[span].mean(axis=0) - true_bias))
        print(role, f"first bias error {err:.3f} °/s, plain mean of the span {naive:.3f} °/s")
        assert err < 0.15 < naive


def test_a_slow_twist_is_not_rest() -> None:
    # lumbar twist of 10° over 4 s out and back: the upper sensor turns at up to ~5 °/s
    twist = [(0.0, 0.0), (4.0, 0.0), (8.0, 10.0), (12.0, 0.0)]
    _, rec = standing(16.0, twist=twist)
    events = feed(JointRestDetector(), rec)
    assert events
    assert not [e for e in events if 4.5 < e.time_s < 12.0]


def test_paired_orientation_is_batch_independent_and_estimates_vertical_bias() -> None:
    body, rec = standing(20.0, seed=2)
    whole = PairedOrientation()
    ref = {r: [] for r in rec}
    for b in chunked(rec, 5.0):
        for role, ob in whole.update(b):
            ref[role].append(ob.quat)
    pieces = PairedOrientation()
    got = {r: [] for r in rec}
    rng = np.random.default_rng(3)
    for b in chunked(rec, 0.07):
        cut = int(rng.integers(0, len(b) + 1))
        for part in (slice_batch(b, 0, cut, b.gap_before), slice_batch(b, cut, len(b), False)):
            if len(part):
                for role, ob in pieces.update(part):
                    got[role].append(ob.quat)
    for role in rec:
        a, b = np.concatenate(ref[role]), np.concatenate(got[role])
        n = min(len(a), len(b))
        assert n > 0.95 * len(rec[role])
        # equal up to the rounding of block sums split across batches
        np.testing.assert_allclose(a[:n], b[:n], rtol=0, atol=1e-12)
    assert whole.rest_events > 10
    # heading (6D) barely drifts at rest: the vertical bias was taken off
    for role in rec:
        q = np.concatenate(ref[role])
        q_true = body.sensor_quat(role, rec[role].time_s[:len(q)])
        e = qt.multiply(q, qt.conjugate(q_true))
        heading = np.unwrap(2 * np.arctan2(e[:, 3], e[:, 0]))
        assert abs(np.degrees(heading[-1] - heading[len(q) // 4])) < 0.3


def test_a_silent_sensor_does_not_hold_the_other_forever() -> None:
    _, rec = standing(100.0)
    p = PairedOrientation()
    released = 0
    for b in chunked({"lower": rec["lower"]}, 0.5):
        released += sum(len(ob) for _, ob in p.update(b))
    held = sum(len(b) for b in p._held["lower"])
    assert held <= (p.rest_params.max_wait_s + 1.0) * 100
    assert released + held == len(rec["lower"])


# -- relative heading drift ---------------------------------------------------------------------
def neutral_frames(t: np.ndarray, drift_deg: np.ndarray, rotation_deg: np.ndarray,
                   moving: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Segment quaternions at neutral (plus a true twist), the upper one's heading off by the
    drift; segment angular velocities zero except where `moving`."""
    q_l = qt.about_z(np.full(t.shape, 0.3))
    q_rel = compose_yxz(np.zeros_like(t), np.zeros_like(t), np.radians(rotation_deg))
    q_u = qt.multiply(qt.about_z(np.radians(drift_deg)), qt.multiply(q_l, q_rel))
    w = np.zeros((t.size, 3))
    if moving is not None:
        w[moving] = [0.0, 0.5, 0.0]
    return q_l, q_u, w, w.copy()


def run_corrector(c: HeadingDriftCorrector, t: np.ndarray, frames: tuple[np.ndarray, ...],
                  step: int) -> np.ndarray:
    q_l, q_u, w_l, w_u = frames
    out = [c.update(t[i:i + step], q_l[i:i + step], q_u[i:i + step], w_l[i:i + step],
                    w_u[i:i + step]) for i in range(0, t.size, step)]
    q = np.concatenate(out)
    return np.degrees(decompose_yxz(qt.multiply(qt.conjugate(q_l), q))[2])


def test_drift_is_removed_in_neutral_stance_and_batching_does_not_matter() -> None:
    t = np.arange(0.0, 120.0, 0.01)
    drift = 0.05 * t  # 6° over two minutes
    moving = (t % 10.0) < 6.0  # 6 s of movement, 4 s of stance
    frames = neutral_frames(t, drift, np.zeros_like(t), moving)
    rot = run_corrector(HeadingDriftCorrector(), t, frames, 1000)
    raw = -drift  # what the rotation would read without the correction
    late = t > 60.0
    assert np.max(np.abs(raw[late])) > 3.0
    assert np.sqrt(np.mean(rot[late] ** 2)) < 0.3
    again = run_corrector(HeadingDriftCorrector(), t, frames, 7)
    np.testing.assert_allclose(again, rot, atol=1e-9)


def test_a_held_twist_is_not_taken_for_drift() -> None:
    t = np.arange(0.0, 60.0, 0.01)
    twist = np.where((t > 20.0) & (t < 40.0), 8.0, 0.0)  # still, twisted by 8° for 20 s
    moving = ((t > 19.0) & (t < 20.0)) | ((t > 40.0) & (t < 41.0))
    frames = neutral_frames(t, np.zeros_like(t), twist, moving)
    c = HeadingDriftCorrector()
    rot = run_corrector(c, t, frames, 100)
    assert c.rejected > 0
    np.testing.assert_allclose(rot[(t > 21.0) & (t < 39.0)], 8.0, atol=0.05)


def test_a_jump_beyond_the_gate_is_recaptured() -> None:
    t = np.arange(0.0, 200.0, 0.01)
    drift = np.where(t > 30.0, 10.0, 0.0)  # the filters' relative heading jumps by 10°
    moving = (t % 10.0) < 5.0
    frames = neutral_frames(t, drift, np.zeros_like(t), moving)
    c = HeadingDriftCorrector(HeadingParams())
    rot = run_corrector(c, t, frames, 500)
    assert c.recaptured >= 1
    assert np.max(np.abs(rot[t > 150.0])) < 0.5
