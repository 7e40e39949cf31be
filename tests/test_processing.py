"""Unit tests of processing/: quaternion helpers, angle decomposition, orientation, alignment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from processing import quaternion as qt
from processing.alignment import AlignedFrames, Aligner
from processing.kinematics import (
    angle_rates,
    compose_yxz,
    decompose_yxz,
    lumbar_kinematics,
    sagittal_inclination,
)
from processing.orientation import (
    OrientationBatch,
    OrientationFilter,
    OrientationParams,
    estimate_orientation,
)
from sensors.samples import SampleBatch

RNG = np.random.default_rng(12345)


def rand_quats(n: int, rng: np.random.Generator = RNG) -> np.ndarray:
    return qt.normalize(rng.normal(size=(n, 4)))


def scipy_rot(q: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.roll(q, -1, axis=-1))  # scipy is scalar last


# -- quaternion ----------------------------------------------------------------------------------
def test_multiply_rotate_matrix_agree_with_scipy() -> None:
    p, q = rand_quats(50), rand_quats(50)
    v = RNG.normal(size=(50, 3))
    pq = qt.multiply(p, q)
    np.testing.assert_allclose(qt.to_matrix(pq), (scipy_rot(p) * scipy_rot(q)).as_matrix(),
                               atol=1e-12)
    np.testing.assert_allclose(qt.rotate(q, v), scipy_rot(q).apply(v), atol=1e-12)
    np.testing.assert_allclose(qt.to_matrix(q), scipy_rot(q).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(qt.multiply(q, qt.conjugate(q)), np.tile(qt.IDENTITY, (50, 1)),
                               atol=1e-12)


def test_constant_factor_matrices() -> None:
    p, q = rand_quats(1)[0], rand_quats(20)
    np.testing.assert_allclose(q @ qt.left_matrix(p).T, qt.multiply(p, q), atol=1e-12)
    np.testing.assert_allclose(q @ qt.right_matrix(p).T, qt.multiply(q, p), atol=1e-12)


def test_matrix_and_rotvec_round_trips() -> None:
    q = rand_quats(200)
    np.testing.assert_allclose(qt.from_matrix(qt.to_matrix(q)), qt.normalize(q), atol=1e-12)
    rv = qt.to_rotvec(q)
    np.testing.assert_allclose(rv, scipy_rot(q).as_rotvec(), atol=1e-10)
    np.testing.assert_allclose(qt.from_rotvec(rv), qt.normalize(q), atol=1e-12)
    assert np.allclose(qt.from_rotvec(np.zeros(3)), qt.IDENTITY)
    # near-180° rotations (Shepperd's other branches)
    for axis in np.eye(3):
        r = qt.from_axis_angle(axis, np.pi - 1e-3)
        np.testing.assert_allclose(qt.from_matrix(qt.to_matrix(r)), qt.normalize(r), atol=1e-12)


def test_slerp_matches_scipy_and_endpoints() -> None:
    q0, q1 = rand_quats(30), rand_quats(30)
    u = RNG.uniform(size=30)
    ours = qt.slerp(q0, q1, u)
    for k in range(30):
        ref = Slerp([0.0, 1.0], scipy_rot(np.stack((q0[k], q1[k]))))([u[k]]).as_quat()[0]
        ref = np.roll(ref, 1)
        assert min(np.abs(ours[k] - ref).max(), np.abs(ours[k] + ref).max()) < 1e-10
    assert np.allclose(np.abs(np.sum(qt.slerp(q0, q1, 0.0) * q0, axis=1)), 1.0)
    assert np.allclose(np.abs(np.sum(qt.slerp(q0, q1, 1.0) * q1, axis=1)), 1.0)
    # nearly equal quaternions: no NaN, stays on the arc
    q2 = qt.multiply(q0, qt.from_rotvec(np.full((30, 3), 1e-9)))
    assert np.all(np.isfinite(qt.slerp(q0, q2, 0.5)))


def test_up_in_body() -> None:
    q = rand_quats(20)
    np.testing.assert_allclose(qt.up_in_body(q), qt.rotate(qt.conjugate(q), [0.0, 0.0, 1.0]),
                               atol=1e-12)


# -- angle convention and decomposition ---------------------------------------------------------
def rot_mat(axis: int, a: float) -> np.ndarray:
    return Rotation.from_rotvec(np.eye(3)[axis] * a).as_matrix()


@settings(max_examples=200, deadline=None)
@given(st.floats(-170, 170), st.floats(-85, 85), st.floats(-170, 170))
def test_decomposition_round_trip(f: float, lat: float, r: float) -> None:
    q = compose_yxz(np.radians(f), np.radians(lat), np.radians(r))
    m = rot_mat(1, np.radians(f)) @ rot_mat(0, np.radians(lat)) @ rot_mat(2, -np.radians(r))
    np.testing.assert_allclose(qt.to_matrix(q), m, atol=1e-12)
    back = np.degrees(decompose_yxz(q))
    np.testing.assert_allclose(back, [f, lat, r], atol=1e-8)


def test_angle_signs() -> None:
    x, y, z = np.eye(3)
    flex = qt.to_matrix(compose_yxz(np.radians(30), 0, 0))
    assert (flex @ x)[2] < 0  # forward bend: anterior axis goes down
    lat = qt.to_matrix(compose_yxz(0, np.radians(30), 0))
    assert (lat @ z)[1] < 0  # right bend: top of trunk goes to −y (right)
    rot = qt.to_matrix(compose_yxz(0, 0, np.radians(30)))
    assert (rot @ x)[1] < 0  # shoulders right: anterior axis turns to −y (right)
    # sagittal inclination: forward positive, heading independent
    q = qt.multiply(qt.about_z(1.0), qt.from_axis_angle(y, np.radians(25)))
    assert np.isclose(np.degrees(sagittal_inclination(q)), 25.0)


def test_angle_rates_match_numeric_derivative() -> None:
    t = np.linspace(0, 2, 2001)
    f, lat, r = 0.6 * np.sin(1.3 * t), 0.3 * np.sin(2.1 * t + 1), 0.4 * np.cos(0.7 * t)
    q = compose_yxz(f, lat, r)
    dt = t[1] - t[0]
    w = qt.to_rotvec(qt.multiply(qt.conjugate(q[:-2]), q[2:])) / (2 * dt)  # body frame
    fd, ld, rd = angle_rates(lat[1:-1], r[1:-1], w)
    np.testing.assert_allclose(fd, np.gradient(f, dt)[1:-1], atol=1e-4)
    np.testing.assert_allclose(ld, np.gradient(lat, dt)[1:-1], atol=1e-4)
    np.testing.assert_allclose(rd, np.gradient(r, dt)[1:-1], atol=1e-4)


def test_lumbar_kinematics_relative_to_pelvis() -> None:
    n = 50
    q_p = rand_quats(n)
    f, lat, r = RNG.uniform(-1, 1, n), RNG.uniform(-0.5, 0.5, n), RNG.uniform(-1, 1, n)
    q_u = qt.multiply(q_p, compose_yxz(f, lat, r))
    w = RNG.normal(size=(n, 3))
    kin = lumbar_kinematics(q_p, q_u, w, qt.rotate(qt.conjugate(compose_yxz(f, lat, r)), w))
    np.testing.assert_allclose(kin.flexion, f, atol=1e-10)
    np.testing.assert_allclose(kin.lateral_bend, lat, atol=1e-10)
    np.testing.assert_allclose(kin.axial_rotation, r, atol=1e-10)
    np.testing.assert_allclose(kin.lumbar_angular_speed, 0.0, atol=1e-10)  # same angular velocity


# -- orientation ---------------------------------------------------------------------------------
def batch(role: str, t: np.ndarray, gyr: np.ndarray, acc: np.ndarray,
          gap: bool = False) -> SampleBatch:
    return SampleBatch(role, t, acc, gyr, gap_before=gap)  # type: ignore[arg-type]


def moving_data(n: int = 3000, rate: float = 100.0, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    gyr = np.column_stack([0.8 * np.sin(0.7 * t + k) for k in range(3)])
    gyr += 0.01 * rng.normal(size=(n, 3))
    acc = np.tile([0.0, 0.0, 9.81], (n, 1)) + 0.05 * rng.normal(size=(n, 3))
    return t, gyr, acc


def split_points(n: int, rng: np.random.Generator) -> list[int]:
    cuts, i = [0], 0
    while i < n:
        i = min(n, i + int(rng.integers(1, 40)))
        cuts.append(i)
    return cuts


def test_orientation_filter_streaming_equals_offline() -> None:
    t, gyr, acc = moving_data()
    whole = OrientationFilter().update(batch("lower", t, gyr, acc))
    f = OrientationFilter()
    cuts = split_points(len(t), np.random.default_rng(4))
    parts = [f.update(batch("lower", t[a:b], gyr[a:b], acc[a:b]))
             for a, b in zip(cuts[:-1], cuts[1:])]
    q = np.concatenate([p.quat for p in parts])
    assert np.array_equal(q, whole.quat)
    assert np.array_equal(np.concatenate([p.gyr for p in parts]), whole.gyr)
    assert f.rate_hz == pytest.approx(100.0)
    np.testing.assert_allclose(whole.quat, estimate_orientation(gyr, acc, rate_hz=100.0,
                                                                params=OrientationParams()))


def test_estimate_orientation_at_rest_and_with_mag() -> None:
    strap = qt.normalize(np.array([0.3, -0.5, 0.2, 0.8]))
    n = 500
    acc = np.tile(qt.rotate(qt.conjugate(strap), [0, 0, 9.81]), (n, 1))
    mag = np.tile(qt.rotate(qt.conjugate(strap), [0, 20.0, -40.0]), (n, 1))  # field points north
    q6 = estimate_orientation(np.zeros((n, 3)), acc, rate_hz=100.0)
    assert np.degrees(np.arccos(qt.up_in_body(q6[-1]) @ acc[0] / 9.81)) < 0.1
    q9 = estimate_orientation(np.zeros((n, 3)), acc, mag, rate_hz=100.0)
    assert np.degrees(qt.angle_between(q9[-1], strap)) < 1.0  # ENU: the strap itself


def test_short_losses_are_filled_long_gaps_flagged() -> None:
    t, gyr, acc = moving_data(2000)
    full = OrientationFilter().update(batch("upper", t, gyr, acc))
    keep = np.ones(len(t), dtype=bool)
    keep[1000:1004] = False  # 40 ms lost, no flag from the source
    f = OrientationFilter()
    a = f.update(batch("upper", t[keep][:995], gyr[keep][:995], acc[keep][:995]))
    b = f.update(batch("upper", t[keep][995:], gyr[keep][995:], acc[keep][995:]))
    q = np.concatenate((a.quat, b.quat))
    err = np.degrees(qt.angle_between(q, full.quat[keep]))
    assert err.max() < 0.5  # the lost rotation was integrated (0.8 rad/s × 40 ms ≈ 1.8° if not)
    gap = np.concatenate((a.gap_before, b.gap_before))
    assert gap[0] and gap.sum() == 2 and gap[1000]  # 5 steps > 3.5: flagged
    # a flag from the source is kept
    g = OrientationFilter()
    g.update(batch("upper", t[:100], gyr[:100], acc[:100]))
    assert g.update(batch("upper", t[100:200], gyr[100:200], acc[100:200], gap=True)).gap_before[0]


# -- alignment -----------------------------------------------------------------------------------
def ob(t: np.ndarray, q: np.ndarray, gap: np.ndarray | None = None) -> OrientationBatch:
    n = len(t)
    g = np.zeros(n, dtype=bool) if gap is None else gap
    v = np.column_stack((t, 2 * t, 3 * t))
    return OrientationBatch(t, q, v, v + 1, g)


def smooth_quats(t: np.ndarray) -> np.ndarray:
    return qt.from_rotvec(np.column_stack((np.sin(t), 0.5 * np.cos(0.7 * t), 0.3 * t)))


def test_aligner_interpolates_and_is_batch_independent() -> None:
    tl = np.arange(0.0, 10.0, 0.01)
    tu = np.arange(0.0, 10.0, 1 / 98.0) + 0.004  # other rate, offset
    ql, qu = smooth_quats(tl), smooth_quats(tu)
    whole = Aligner()
    whole.push("lower", ob(tl, ql))
    whole.push("upper", ob(tu, qu))
    ref = whole.pop()
    assert ref.time_s[0] >= tu[0] and ref.time_s[-1] <= tu[-1]
    err = np.degrees(qt.angle_between(ref.q_upper, smooth_quats(ref.time_s)))
    assert err.max() < 0.01
    np.testing.assert_allclose(ref.gyr_upper[:, 1], 2 * ref.time_s, atol=1e-12)  # lerp of linear
    np.testing.assert_array_equal(ref.q_lower, smooth_quats(ref.time_s))

    rng = np.random.default_rng(7)
    a = Aligner()
    out = []
    cl, cu = split_points(len(tl), rng), split_points(len(tu), rng)
    il = iu = 0
    while il < len(cl) - 1 or iu < len(cu) - 1:
        if iu >= len(cu) - 1 or (il < len(cl) - 1 and rng.uniform() < 0.5):
            s = slice(cl[il], cl[il + 1])
            a.push("lower", ob(tl[s], ql[s]))
            il += 1
        else:
            s = slice(cu[iu], cu[iu + 1])
            a.push("upper", ob(tu[s], qu[s]))
            iu += 1
        out.append(a.pop())
    got = AlignedFrames.concat(out)
    for name in ("time_s", "q_upper", "gyr_upper", "acc_lower", "gap_before"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))


def test_aligner_does_not_interpolate_across_gaps() -> None:
    tl = np.arange(0.0, 4.0, 0.01)
    tu = np.arange(0.0, 4.0, 0.01) + 0.003
    keep = (tu < 1.5) | (tu > 2.0)
    gap = np.zeros(keep.sum(), dtype=bool)
    gap[np.argmax(tu[keep] > 2.0)] = True
    a = Aligner()
    a.push("lower", ob(tl, smooth_quats(tl)))
    a.push("upper", ob(tu[keep], smooth_quats(tu[keep]), gap))
    f = a.pop()
    inside = (f.time_s > 1.5) & (f.time_s < 2.0)
    assert not inside.any()
    first_after = np.argmax(f.time_s > 2.0)
    # flagged: the first frame (lower t=0 came before any upper sample) and the one after the gap
    assert f.gap_before[first_after] and f.gap_before[0] and f.gap_before.sum() == 2


def test_aligner_memory_is_bounded_when_a_sensor_is_silent() -> None:
    a = Aligner()
    t = np.arange(0.0, 120.0, 0.01)
    for k in range(0, len(t), 100):
        a.push("lower", ob(t[k:k + 100], smooth_quats(t[k:k + 100])))
        assert len(a.pop()) == 0
    assert len(a._lower) <= a.params.max_wait_s * 100 + 100
