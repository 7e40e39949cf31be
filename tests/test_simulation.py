"""The simulated patient is physically consistent and its truth follows the angle conventions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.simulation import (
    Direction,
    MovementScript,
    PatientParams,
    Repeat,
    SimulatedPatient,
    Stand,
    bend,
    calibration_then_flexion_reps,
    demo_script,
    min_jerk,
    mixed_session,
)
from sensors.simulation.rotations import (
    lumbar_angles_rad,
    matmul,
    random_rotation,
    rot_x,
    rot_y,
    rot_z,
    rotation_angle_rad,
)

G = 9.81


def still_params(**kw: object) -> PatientParams:
    """Ideal sensors and no sway: only the scripted movement remains."""
    params = PatientParams(sway_ap_deg=0.0, sway_ml_deg=0.0, **kw)  # type: ignore[arg-type]
    return params.without_noise()


def one_bend(direction: Direction, amplitude_deg: float, *, out_s: float = 1.5, hold_s: float = 1.0,
             back_s: float = 1.5) -> MovementScript:
    one = bend(direction, amplitude_deg, out_s=out_s, hold_s=hold_s, back_s=back_s)
    return MovementScript([Stand(2.0), one, Stand(2.0)])


def exp_so3(w: np.ndarray) -> np.ndarray:
    """Rodrigues' formula for a rotation vector."""
    th = float(np.linalg.norm(w))
    if th < 1e-15:
        return np.eye(3)
    k = w / th
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * kx @ kx


# --- script ---------------------------------------------------------------------------------


def test_min_jerk_profile_endpoints_and_symmetry() -> None:
    tau = np.linspace(0, 1, 101)
    s = min_jerk(tau)
    assert s[0] == 0.0 and s[-1] == 1.0
    np.testing.assert_allclose(s + s[::-1], 1.0, atol=1e-12)
    assert np.all(np.diff(s) >= 0)
    assert min_jerk(0.5) == pytest.approx(0.5)


def test_script_duration_and_repetitions() -> None:
    script = MovementScript(
        [Stand(5.0), Repeat(bend("flexion", 30.0, out_s=1.0, hold_s=0.5, back_s=1.0), 4, 2.0),
         Stand(1.0)]
    )
    assert script.duration_s == pytest.approx(5 + 4 * 2.5 + 3 * 2 + 1)
    reps = script.repetitions()
    assert len(reps) == 4
    assert reps[0].start_s == pytest.approx(5.0) and reps[0].peak_s == pytest.approx(6.0)
    assert reps[0].end_s == pytest.approx(7.5) and reps[1].start_s == pytest.approx(9.5)
    assert all(r.direction == "flexion" and r.amplitude_deg == 30.0 for r in reps)


def test_calibration_script_shape() -> None:
    script = calibration_then_flexion_reps(n_reps=7, amplitude_deg=35.0)
    first, second = script.steps[0], script.steps[1]
    assert isinstance(first, Stand) and first.duration_s >= 5.0
    calib = script.repetitions("calibration")
    assert len(calib) == 1 and calib[0].direction == "flexion"
    assert 70.0 <= calib[0].amplitude_deg <= 90.0  # a deep bend: it measures the comfortable range
    assert calib[0].peak_s - calib[0].start_s >= 2.5  # slow
    exercise = script.repetitions("exercise")
    assert len(exercise) == 7 and all(r.amplitude_deg == 35.0 for r in exercise)


def test_builders_are_deterministic_and_long_enough() -> None:
    demo = demo_script()
    assert demo.duration_s >= 20 * 60
    assert [r.amplitude_deg for r in demo.repetitions()] == [
        r.amplitude_deg for r in demo_script().repetitions()
    ]
    assert [r.amplitude_deg for r in demo.repetitions()] != [
        r.amplitude_deg for r in demo_script(seed=1).repetitions()
    ]
    mixed = mixed_session(120.0, seed=3)
    assert mixed.duration_s == pytest.approx(120.0)
    directions = {r.direction for r in mixed_session(600.0).repetitions()}
    assert directions == {"flexion", "extension", "lateral_left", "lateral_right",
                          "rotation_left", "rotation_right"}


# --- truth and conventions ------------------------------------------------------------------


@given(
    st.floats(-80, 80), st.floats(-80, 80), st.floats(-170, 170),
)
@settings(max_examples=50, deadline=None)
def test_lumbar_decomposition_round_trips(flex: float, lat: float, rot: float) -> None:
    r = matmul(rot_y(np.deg2rad(flex)), rot_x(np.deg2rad(lat)), rot_z(-np.deg2rad(rot)))
    got = np.rad2deg(lumbar_angles_rad(r))
    np.testing.assert_allclose(got.ravel(), [flex, lat, rot], atol=1e-9)


@pytest.mark.parametrize(
    ("direction", "field", "sign"),
    [
        ("flexion", "flexion_deg", 1),
        ("extension", "flexion_deg", -1),
        ("lateral_right", "lateral_bend_deg", 1),
        ("lateral_left", "lateral_bend_deg", -1),
        ("rotation_right", "axial_rotation_deg", 1),
        ("rotation_left", "axial_rotation_deg", -1),
    ],
)
def test_truth_follows_the_angle_convention(direction: Direction, field: str, sign: int) -> None:
    patient = SimulatedPatient(one_bend(direction, 20.0), still_params(seed=5))
    peak = patient.script.repetitions()[0].peak_s + 0.5
    truth = patient.truth(peak)
    fields = ("flexion_deg", "lateral_bend_deg", "axial_rotation_deg")
    angles = {f: getattr(truth, f) for f in fields}
    assert sign * angles.pop(field) > 10.0
    for other in angles.values():
        assert abs(other) < 1e-9
    if direction == "flexion":
        assert truth.pelvic_tilt_deg > 5.0
        assert truth.trunk_inclination_deg == pytest.approx(20.0, abs=1e-9)
    if direction == "extension":
        assert truth.pelvic_tilt_deg < 0.0


@pytest.mark.parametrize("share", [0.46, 0.51])
def test_lumbo_pelvic_share_at_peak_and_lumbar_leads(share: float) -> None:
    patient = SimulatedPatient(one_bend("flexion", 50.0), still_params(lumbar_share=share))
    rep = patient.script.repetitions()[0]
    peak = patient.truth(rep.peak_s + 0.2)
    assert peak.flexion_deg / peak.trunk_inclination_deg == pytest.approx(share, abs=1e-9)
    assert peak.flexion_deg + peak.pelvic_tilt_deg == pytest.approx(50.0, abs=1e-9)
    early = patient.truth(rep.start_s + 0.3)
    assert early.flexion_deg / early.trunk_inclination_deg > share + 0.1


def test_quiet_standing_sways_a_little_but_is_neutral() -> None:
    patient = SimulatedPatient(MovementScript([Stand(30.0)]), PatientParams(seed=2))
    truth = patient.truth(np.arange(0.0, 30.0, 0.01))
    assert 0.1 < np.std(truth.pelvic_tilt_deg) < 0.8
    assert np.max(np.abs(truth.flexion_deg)) < 1e-9


def test_truth_is_independent_of_strap_and_signals_rotate_with_it() -> None:
    script = one_bend("flexion", 40.0)
    rng = np.random.default_rng(11)
    straps = [random_rotation(rng) for _ in range(4)]
    a = SimulatedPatient(script, PatientParams(seed=1, strap_upper=straps[0],
                                               strap_lower=straps[1]))
    b = SimulatedPatient(script, PatientParams(seed=1, strap_upper=straps[2],
                                               strap_lower=straps[3]))
    t = np.linspace(0, script.duration_s, 500)
    ta, tb = a.truth(t), b.truth(t)
    for f in ("flexion_deg", "lateral_bend_deg", "axial_rotation_deg", "pelvic_tilt_deg"):
        np.testing.assert_array_equal(getattr(ta, f), getattr(tb, f))
    ia, ib = a.ideal("upper", t), b.ideal("upper", t)
    rel = straps[0].T @ straps[2]  # sensor-b frame to sensor-a frame
    np.testing.assert_allclose(ia.acc, ib.acc @ rel.T, atol=1e-9)
    np.testing.assert_allclose(ia.gyr, ib.gyr @ rel.T, atol=1e-9)


def test_rep_count_in_truth_matches_script_and_truth_peaks() -> None:
    script = calibration_then_flexion_reps(n_reps=6, amplitude_deg=40.0)
    patient = SimulatedPatient(script, PatientParams(seed=4))
    t = np.arange(0.0, script.duration_s, 0.01)
    truth = patient.truth(t)
    assert truth.rep_count[0] == 0 and truth.rep_count[-1] == len(script.repetitions()) == 7
    above = truth.flexion_deg > 10.0
    assert np.count_nonzero(np.diff(above.astype(int)) == 1) == 7


# --- IMU physics ------------------------------------------------------------------------------


def test_at_rest_accelerometer_reads_gravity_and_gyro_reads_bias() -> None:
    params = PatientParams(seed=8, sway_ap_deg=0.0, sway_ml_deg=0.0)
    patient = SimulatedPatient(MovementScript([Stand(10.0)]), params)
    rec = patient.record()
    for role, batch in rec.items():
        assert np.mean(np.linalg.norm(batch.acc, axis=1)) == pytest.approx(G, abs=0.1)
        np.testing.assert_allclose(batch.gyr.mean(axis=0), patient.gyro_bias(role)[0], atol=1.5e-3)
        # white-noise level as configured (std at 100 Hz)
        assert np.std(batch.gyr - batch.gyr.mean(axis=0), axis=0) == pytest.approx(
            [params.gyro_noise_rad_s] * 3, rel=0.15)
        mag_norm = np.linalg.norm(batch.mag, axis=1).mean()
        assert mag_norm == pytest.approx(params.mag_field_ut, abs=0.1)
    ideal = patient.ideal("lower", np.linspace(0, 10, 50))
    np.testing.assert_allclose(np.linalg.norm(ideal.acc, axis=1), G, atol=1e-9)
    np.testing.assert_allclose(ideal.gyr, 0.0, atol=1e-9)


def test_gyro_matches_the_analytic_pelvic_tilt_rate() -> None:
    share, lead, amp, out_s = 0.5, 0.5, 50.0, 1.5
    params = still_params(strap_lower=np.eye(3), lumbar_share=share, lumbar_lead=lead)
    patient = SimulatedPatient(one_bend("flexion", amp, out_s=out_s), params)
    t = np.linspace(2.0, 2.0 + out_s, 200)
    tau = (t - 2.0) / out_s
    s = min_jerk(tau)
    s_dot = 30 * tau**2 * (1 - tau) ** 2 / out_s
    tilt_rate = np.deg2rad(amp) * (1 - share * (1 + lead) + 2 * share * lead * s) * s_dot
    gyr = patient.ideal("lower", t).gyr
    np.testing.assert_allclose(gyr[:, 1], tilt_rate, atol=1e-6)
    np.testing.assert_allclose(gyr[:, [0, 2]], 0.0, atol=1e-9)


@pytest.mark.parametrize("direction", ["flexion", "lateral_left", "rotation_right"])
def test_gyro_integrates_to_the_true_orientation_change(direction: Direction) -> None:
    params = PatientParams(seed=21, rate_hz=200.0).without_noise()  # sway kept
    patient = SimulatedPatient(one_bend(direction, 45.0), params)
    for role in ("upper", "lower"):
        t = patient.sample_times(role, 300, 1300)  # 1.5 s to 6.5 s: the whole bend
        gyr = patient.ideal(role, t).gyr
        r_true = patient.sensor_orientation(role, t)
        rel_true = r_true[0].T @ r_true  # change since t[0]
        r = np.eye(3)
        errs = [0.0]
        for k in range(len(t) - 1):
            r = r @ exp_so3(0.5 * (gyr[k] + gyr[k + 1]) * (t[k + 1] - t[k]))
            errs.append(float(rotation_angle_rad(r.T @ rel_true[k + 1])))
        assert np.rad2deg(max(errs)) < 0.1, role
        assert np.rad2deg(np.max(rotation_angle_rad(rel_true))) > 5.0


def test_ideal_gyros_integrate_over_a_whole_session_without_drift() -> None:
    """The sampled gyro carries the orientation over minutes (so processing drift is its own)."""
    patient = SimulatedPatient(mixed_session(120.0, seed=2), PatientParams(seed=2).without_noise())
    rec = patient.record()
    for role in ("upper", "lower"):
        t, gyr = rec[role].time_s, rec[role].gyr
        r_true = patient.sensor_orientation(role, t[[0, -1]])
        r = np.eye(3)
        for k in range(len(t) - 1):
            r = r @ exp_so3(0.5 * (gyr[k] + gyr[k + 1]) * (t[k + 1] - t[k]))
        err = rotation_angle_rad(r.T @ (r_true[0].T @ r_true[1]))
        assert np.rad2deg(err) < 0.05, role


def test_accelerometer_is_consistent_with_orientation_and_motion() -> None:
    params = PatientParams(seed=13).without_noise()
    patient = SimulatedPatient(one_bend("flexion", 60.0, out_s=1.2, back_s=1.2), params)
    t = np.linspace(2.05, 5.3, 300)
    h = 1e-3  # 5-point second derivative, independent of the model's own stencil
    pos = [patient.sensor_position("upper", t + j * h) for j in (-2, -1, 0, 1, 2)]
    acc_fd = (-pos[0] + 16 * pos[1] - 30 * pos[2] + 16 * pos[3] - pos[4]) / (12 * h * h)
    r = patient.sensor_orientation("upper", t)
    f_world = np.einsum("nij,nj->ni", r, patient.ideal("upper", t).acc)
    np.testing.assert_allclose(f_world - [0, 0, G], acc_fd, atol=2e-3)
    assert np.max(np.linalg.norm(acc_fd, axis=1)) > 0.3  # the T12 sensor really moves


def test_magnetometer_points_north_and_down() -> None:
    params = still_params(heading_deg=0.0, strap_lower=np.eye(3))
    patient = SimulatedPatient(MovementScript([Stand(1.0)]), params)
    mag = patient.ideal("lower", np.array([0.5])).mag[0]
    inc = np.rad2deg(np.arctan2(-mag[2], mag[0]))
    assert inc == pytest.approx(64.0) and mag[1] == pytest.approx(0.0, abs=1e-12)


# --- sampling and chunking --------------------------------------------------------------------


def test_sample_clocks_and_offsets() -> None:
    patient = SimulatedPatient(MovementScript([Stand(2.0)]), PatientParams(rate_hz=50.0))
    rec = patient.record(time_origin_s=1000.0)
    lower, upper = rec["lower"], rec["upper"]
    assert len(lower) == len(upper) == 100
    np.testing.assert_allclose(np.diff(lower.time_s), 0.02, atol=1e-9)
    np.testing.assert_allclose(upper.time_s - lower.time_s, 0.003, atol=1e-9)
    assert lower.time_s[0] == 1000.0 and np.array_equal(lower.counter, np.arange(100))


def test_chunked_generate_equals_one_call() -> None:
    script = calibration_then_flexion_reps(n_reps=6)  # 60+ s: crosses noise blocks
    whole = SimulatedPatient(script, PatientParams(seed=9)).record()
    chunked = SimulatedPatient(script, PatientParams(seed=9))
    random_edges = np.random.default_rng(0).uniform(0, script.duration_s, 40)
    edges = np.unique(np.concatenate([[0.0, 0.37, 0.39, 0.4, 12.0, script.duration_s],
                                      random_edges]))
    parts = [chunked.generate(a, b) for a, b in zip(edges[:-1], edges[1:])]
    for role in ("upper", "lower"):
        for name in ("time_s", "acc", "gyr", "mag", "counter"):
            joined = np.concatenate([getattr(p[role], name) for p in parts])
            expected = getattr(whole[role], name)
            if name == "counter":
                np.testing.assert_array_equal(joined, expected, err_msg=f"{role} {name}")
            else:  # equal to rounding: numpy's SIMD kernels may round the last bit by length
                np.testing.assert_allclose(joined, expected, rtol=1e-13, atol=1e-15,
                                           err_msg=f"{role} {name}")


def test_different_seeds_give_different_sensors_same_script() -> None:
    script = one_bend("flexion", 30.0)
    a = SimulatedPatient(script, PatientParams(seed=1)).record()
    b = SimulatedPatient(script, PatientParams(seed=2)).record()
    assert not np.allclose(a["upper"].acc, b["upper"].acc)


def test_loop_continues_seamlessly() -> None:
    script = calibration_then_flexion_reps(n_reps=2)
    patient = SimulatedPatient(script, PatientParams(seed=3).without_noise(), loop=True)
    end = script.duration_s
    t = np.arange(end - 2.0, end + 10.0, 0.01)
    acc = patient.ideal("upper", t).acc
    assert np.max(np.abs(np.diff(acc, axis=0))) < 0.2  # no jump at the seam
    peak = script.repetitions("exercise")[0].peak_s + 0.2
    later = patient.truth(end + peak - script.loop_start_s)  # same moment, second pass
    assert later.flexion_deg > 15.0
    reps = patient.repetitions(until_s=2 * end)
    assert len(reps) > len(script.repetitions())
