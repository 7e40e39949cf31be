"""A small synthetic two-sensor body for processing tests, independent of sensors.simulation.

Pelvis: Rz(heading) · Ry(pelvic_tilt) · Rx(pelvic_obliquity); upper segment: pelvis ·
Ry(flexion) · Rx(lateral) · Rz(−rotation); sensors strapped with R_sensor = R_segment · R_strap
(R_strap rotates sensor vectors into the segment frame). Angles follow min-jerk moves between
key frames. Readings: gyroscope from central differences of the orientation, accelerometer =
gravity only (no linear acceleration), optional white noise and constant gyroscope bias.
Also a few self-tests of the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from processing import quaternion as qt
from processing.kinematics import compose_yxz
from sensors.samples import SampleBatch

ANGLES = ("pelvic_tilt", "pelvic_obliquity", "flexion", "lateral", "rotation")


def min_jerk_keys(t: np.ndarray, keys: list[tuple[float, float]]) -> np.ndarray:
    """Piecewise min-jerk interpolation through (time, value) key frames, held outside."""
    kt = np.array([k[0] for k in keys], dtype=float)
    kv = np.array([k[1] for k in keys], dtype=float)
    if kt.size == 1:
        return np.full_like(t, kv[0])
    i = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, kt.size - 2)
    tau = np.clip((t - kt[i]) / (kt[i + 1] - kt[i]), 0.0, 1.0)
    s = tau**3 * (10 - 15 * tau + 6 * tau**2)
    return kv[i] + s * (kv[i + 1] - kv[i])


def random_strap(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return qt.normalize(q)


@dataclass
class SynthBody:
    """Key frames in degrees per angle name (see ANGLES); straps as sensor-to-segment quats."""

    keys: dict[str, list[tuple[float, float]]]
    strap_lower: np.ndarray = field(default_factory=lambda: qt.IDENTITY.copy())
    strap_upper: np.ndarray = field(default_factory=lambda: qt.IDENTITY.copy())
    heading_deg: float = 30.0

    def angles_rad(self, t: np.ndarray) -> dict[str, np.ndarray]:
        return {a: np.radians(min_jerk_keys(t, self.keys.get(a, [(0.0, 0.0)]))) for a in ANGLES}

    def segments(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment-to-earth quaternions (pelvis, upper) at times t."""
        a = self.angles_rad(t)
        q_p = qt.multiply(
            qt.multiply(qt.about_z(np.full_like(t, np.radians(self.heading_deg))),
                        qt.from_axis_angle(np.array([0.0, 1.0, 0.0]), a["pelvic_tilt"])),
            qt.from_axis_angle(np.array([1.0, 0.0, 0.0]), a["pelvic_obliquity"]))
        q_u = qt.multiply(q_p, compose_yxz(a["flexion"], a["lateral"], a["rotation"]))
        return q_p, q_u

    def sensor_quat(self, role: str, t: np.ndarray) -> np.ndarray:
        q_p, q_u = self.segments(t)
        q_seg = q_u if role == "upper" else q_p
        return qt.multiply(q_seg, self.strap_upper if role == "upper" else self.strap_lower)

    def record(self, duration_s: float, *, rate_hz: float = 100.0,
               upper_rate_hz: float | None = None,
               upper_offset_s: float = 0.003, gyro_noise: float = 0.0, acc_noise: float = 0.0,
               gyro_bias: float = 0.0, seed: int = 0, with_mag: bool = False
               ) -> dict[str, SampleBatch]:
        rng = np.random.default_rng(seed)
        out = {}
        for role in ("lower", "upper"):
            rate = upper_rate_hz if (role == "upper" and upper_rate_hz) else rate_hz
            off = upper_offset_s if role == "upper" else 0.0
            t = np.arange(0.0, duration_s - off, 1.0 / rate) + off
            h = 1e-4
            q0, q1, q = (self.sensor_quat(role, t - h), self.sensor_quat(role, t + h),
                         self.sensor_quat(role, t))
            gyr = qt.to_rotvec(qt.multiply(qt.conjugate(q0), q1)) / (2 * h)
            acc = qt.rotate(qt.conjugate(q), np.array([0.0, 0.0, 9.81]))
            mag = qt.rotate(qt.conjugate(q), np.array([20.0, 0.0, -44.0])) if with_mag else None
            gyr = gyr + gyro_bias * rng.normal(size=3) + gyro_noise * rng.normal(size=gyr.shape)
            acc = acc + acc_noise * rng.normal(size=acc.shape)
            out[role] = SampleBatch(role, t, acc, gyr, mag)  # type: ignore[arg-type]
        return out

    def truth_deg(self, t: np.ndarray) -> dict[str, np.ndarray]:
        a = self.angles_rad(t)
        return {k: np.degrees(v) for k, v in a.items()}


def calibration_keys(*, stand_s: float = 6.0, trunk_deg: float = 50.0, pelvis_share: float = 0.5,
                     twist_deg: float = 0.0, reps: int = 3, rep_deg: float = 40.0,
                     still_s: float = 3.0) -> dict[str, list[tuple[float, float]]]:
    """Stand, one slow forward bend (3 s down, 1 s hold, 3 s up), stand, then `reps` bends
    (1.5 s down, 0.5 s hold, 1.5 s up, 1.5 s rest) that also bend sideways and twist a little."""
    t = stand_s
    pel = [(0.0, 0.0), (t, 0.0), (t + 3, trunk_deg * pelvis_share),
           (t + 4, trunk_deg * pelvis_share), (t + 7, 0.0)]
    flex = [(0.0, 0.0), (t, 0.0), (t + 3, trunk_deg * (1 - pelvis_share)),
            (t + 4, trunk_deg * (1 - pelvis_share)), (t + 7, 0.0)]
    rot = [(0.0, 0.0), (t, 0.0), (t + 3, twist_deg), (t + 4, twist_deg), (t + 7, 0.0)]
    lat = [(0.0, 0.0)]
    t += 7 + still_s
    for k in range(reps):
        pel += [(t, 0.0), (t + 1.5, rep_deg * 0.5), (t + 2, rep_deg * 0.5), (t + 3.5, 0.0)]
        flex += [(t, 0.0), (t + 1.5, rep_deg * 0.5), (t + 2, rep_deg * 0.5), (t + 3.5, 0.0)]
        side = 8.0 if k % 2 else -8.0
        lat += [(t, 0.0), (t + 1.5, side), (t + 2, side), (t + 3.5, 0.0)]
        rot += [(t, 0.0), (t + 1.5, -side), (t + 2, -side), (t + 3.5, 0.0)]
        t += 5.0
    return {"pelvic_tilt": pel, "flexion": flex, "lateral": lat, "rotation": rot}


# -- self-tests of the generator ---------------------------------------------------------------
def test_generator_gyro_integrates_to_orientation() -> None:
    body = SynthBody(calibration_keys(), random_strap(np.random.default_rng(1)),
                     random_strap(np.random.default_rng(2)))
    rec = body.record(20.0)
    b = rec["upper"]
    q = body.sensor_quat("upper", b.time_s)
    # body-frame integration (midpoint) of the gyroscope reproduces the orientation
    dq = qt.from_rotvec(0.5 * (b.gyr[1:] + b.gyr[:-1]) * 0.01)
    q_int = [q[0]]
    for d in dq[:500]:
        q_int.append(qt.multiply(q_int[-1], d))
    err = np.degrees(qt.angle_between(np.array(q_int), q[:501]))
    assert err.max() < 0.05


def test_generator_accelerometer_is_up_at_rest() -> None:
    body = SynthBody({}, random_strap(np.random.default_rng(3)))
    b = body.record(1.0)["lower"]
    up = qt.rotate(body.sensor_quat("lower", b.time_s), b.acc)
    np.testing.assert_allclose(up, np.tile([0.0, 0.0, 9.81], (len(b), 1)), atol=1e-9)
