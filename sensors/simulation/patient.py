"""The simulated patient: a movement script, a body, two strapped IMUs, and the true angles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.samples import SENSOR_ROLES, SampleBatch, SensorRole
from sensors.simulation.body import BodyModel
from sensors.simulation.imu import ImuErrorModel, ImuReadings, earth_field_ut, ideal_readings
from sensors.simulation.params import PatientParams
from sensors.simulation.rotations import (
    lumbar_angles_rad,
    random_rotation,
    sagittal_inclination_rad,
)
from sensors.simulation.script import MovementScript, Repetition

_ROLE_ID: dict[str, int] = {"upper": 1, "lower": 2}
_EPS_SAMPLES = 1e-7  # tolerance when mapping a time to the first sample at or after it


@dataclass(frozen=True, slots=True)
class TruthAngles:
    """What the processing should estimate, in degrees (floats for a scalar time, else arrays).

    Lumbar angles decompose R_pelvisᵀ·R_upper per docs/contracts.md. `pelvic_tilt_deg` and
    `trunk_inclination_deg` are the forward inclinations (asin of −R[2,0]) of the pelvis and the
    upper segment relative to neutral standing; both include postural sway. `rep_count` counts
    repetitions (script bends, calibration included) finished by `time_s`.
    """

    time_s: float | np.ndarray
    flexion_deg: float | np.ndarray
    lateral_bend_deg: float | np.ndarray
    axial_rotation_deg: float | np.ndarray
    pelvic_tilt_deg: float | np.ndarray
    trunk_inclination_deg: float | np.ndarray
    rep_count: int | np.ndarray


class SimulatedPatient:
    """Deterministic two-sensor recording of a script: same script, params and seed, same data.

    Simulated time starts at 0 with the script. `generate(t0_s, t1_s)` returns the samples with
    t0 ≤ t < t1; successive contiguous calls return exactly what one call over the union would.
    After the script ends the patient stands still (or, with `loop`, repeats the script from
    `script.loop_start_s` with continuous time and continuing sensor errors).
    """

    def __init__(self, script: MovementScript, params: PatientParams | None = None, *,
                 loop: bool = False) -> None:
        self.script = script
        self.params = params if params is not None else PatientParams()
        p = self.params
        setup = np.random.default_rng(np.random.SeedSequence(p.seed, spawn_key=(0,)))
        sway_rng = np.random.default_rng(np.random.SeedSequence(p.seed, spawn_key=(3,)))
        heading_deg = p.heading_deg if p.heading_deg is not None else setup.uniform(0.0, 360.0)
        self.heading_deg = float(heading_deg)
        self.straps: dict[SensorRole, np.ndarray] = {}
        self._errors: dict[SensorRole, ImuErrorModel] = {}
        for role in SENSOR_ROLES:
            given = p.strap_upper if role == "upper" else p.strap_lower
            drawn = random_rotation(setup)  # drawn either way: other streams stay put
            self.straps[role] = np.asarray(given, dtype=float) if given is not None else drawn
        for role in SENSOR_ROLES:
            self._errors[role] = ImuErrorModel(p, p.seed, _ROLE_ID[role], setup)
        self.body = BodyModel(script, p, np.deg2rad(self.heading_deg), sway_rng, loop)
        self.b_world_ut = earth_field_ut(p.mag_field_ut, p.mag_inclination_deg)

    @property
    def loop(self) -> bool:
        return self.body.loop

    @loop.setter
    def loop(self, value: bool) -> None:
        self.body.loop = bool(value)

    @property
    def duration_s(self) -> float:
        return self.script.duration_s

    @property
    def rate_hz(self) -> float:
        return self.params.rate_hz

    # --- sample clock -------------------------------------------------------------------------
    def _period_s(self, role: SensorRole) -> float:
        drift = self.params.clock_drift_ppm.get(role, 0.0) * 1e-6
        return 1.0 / (self.params.rate_hz * (1.0 + drift))

    def _offset_s(self, role: SensorRole) -> float:
        return self.params.upper_time_offset_s if role == "upper" else 0.0

    def first_index_at(self, role: SensorRole, time_s: float) -> int:
        """Index of the first sample of `role` at or after simulated `time_s` (≥ 0)."""
        x = (time_s - self._offset_s(role)) / self._period_s(role)
        return max(0, int(np.ceil(x - _EPS_SAMPLES)))

    def sample_times(self, role: SensorRole, k0: int, k1: int) -> np.ndarray:
        """Simulated times of samples k0 ≤ k < k1 (a fast device clock samples a bit early)."""
        return np.arange(k0, k1) * self._period_s(role) + self._offset_s(role)

    # --- signals ------------------------------------------------------------------------------
    def ideal(self, role: SensorRole, time_s: np.ndarray) -> ImuReadings:
        """Noise-free, bias-free readings of `role` at arbitrary simulated times."""
        kin = self.body.kinematics(np.atleast_1d(time_s), role)
        return ideal_readings(kin, self.straps[role], self.b_world_ut, self.params.gravity_m_s2)

    def gyro_bias(self, role: SensorRole, k0: int = 0, k1: int = 1) -> np.ndarray:
        """True gyroscope bias of samples k0 ≤ k < k1 (for tests of bias estimation)."""
        return self._errors[role].gyro_bias_at(k0, k1)

    def acc_bias(self, role: SensorRole) -> np.ndarray:
        return self._errors[role].acc_bias.copy()

    def generate(self, t0_s: float, t1_s: float, *, time_origin_s: float = 0.0
                 ) -> dict[SensorRole, SampleBatch]:
        """Samples of both sensors with t0_s ≤ t < t1_s (simulated time), time_s = origin + t."""
        out: dict[SensorRole, SampleBatch] = {}
        for role in SENSOR_ROLES:
            k0 = self.first_index_at(role, t0_s)
            k1 = max(k0, self.first_index_at(role, t1_s))
            t = self.sample_times(role, k0, k1)
            if k1 > k0:
                readings = self._errors[role].corrupt(self.ideal(role, t), k0, k1)
            else:
                empty = np.empty((0, 3))
                readings = ImuReadings(empty, empty, empty)
            out[role] = SampleBatch(
                sensor=role,
                time_s=t + time_origin_s,
                acc=readings.acc,
                gyr=readings.gyr,
                mag=readings.mag if self.params.with_mag else None,
                device_time_s=np.arange(k0, k1) / self.params.rate_hz,
                counter=np.arange(k0, k1, dtype=np.int64),
            )
        return out

    def record(self, *, time_origin_s: float = 0.0) -> dict[SensorRole, SampleBatch]:
        """The whole script in one batch per sensor."""
        return self.generate(0.0, self.duration_s, time_origin_s=time_origin_s)

    # --- ground truth -------------------------------------------------------------------------
    def sensor_orientation(self, role: SensorRole, time_s: np.ndarray) -> np.ndarray:
        """True sensor-to-world rotation(s) R_segment · R_strap, (N,3,3)."""
        pose = self.body.pose(np.atleast_1d(time_s))
        return pose.segment(role) @ self.straps[role]

    def sensor_position(self, role: SensorRole, time_s: np.ndarray) -> np.ndarray:
        """True world position(s) of the sensor site, (N,3) metres."""
        return self.body.pose(np.atleast_1d(time_s)).site(role)

    def repetitions(self, until_s: float | None = None, label: str | None = None
                    ) -> list[Repetition]:
        """Bends performed up to `until_s` (default: one pass of the script), loop-aware."""
        if until_s is None:
            return self.script.repetitions(label)
        return self.script.repetitions_until(until_s, loop=self.loop, label=label)

    def truth(self, time_s: float | np.ndarray) -> TruthAngles:
        """True angles at simulated time(s) (no time origin)."""
        scalar = np.ndim(time_s) == 0
        t = np.atleast_1d(np.asarray(time_s, dtype=float))
        pose = self.body.pose(t)
        r_rel = np.swapaxes(pose.r_pelvis, -1, -2) @ pose.r_upper
        flex, lat, rot = (np.rad2deg(a) for a in lumbar_angles_rad(r_rel))
        tilt = np.rad2deg(sagittal_inclination_rad(pose.r_pelvis))
        incl = np.rad2deg(sagittal_inclination_rad(pose.r_upper))
        ends = np.array([r.end_s for r in self.repetitions(float(np.max(t)) if t.size else 0.0)])
        count = np.searchsorted(np.sort(ends), t, side="right").astype(np.int64)
        if scalar:
            return TruthAngles(float(t[0]), float(flex[0]), float(lat[0]), float(rot[0]),
                               float(tilt[0]), float(incl[0]), int(count[0]))
        return TruthAngles(t, flex, lat, rot, tilt, incl, count)
