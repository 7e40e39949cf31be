"""IMU synthesis: what a strapped accelerometer, gyroscope and magnetometer read on a segment.

Ideal readings follow from rigid-body kinematics (e.g. Titterton & Weston, Strapdown Inertial
Navigation Technology, 2nd ed., ch. 3): with R_sensor = R_segment · R_strap,
- gyroscope  ω_s = R_strapᵀ · ω_segment (body-frame angular velocity);
- accelerometer f_s = R_sensorᵀ · (a_world + g·ẑ) (specific force; +g along up at rest);
- magnetometer m_s = R_sensorᵀ · B_earth.
Errors: gyro constant bias + rate random walk + white noise; accelerometer constant offset + white
noise; magnetometer white noise. Every random term is indexed by sample number (noise.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.simulation.body import SegmentKinematics
from sensors.simulation.noise import IndexedNormal, IndexedRandomWalk
from sensors.simulation.params import PatientParams
from sensors.simulation.rotations import apply_transpose


@dataclass(frozen=True, slots=True)
class ImuReadings:
    """Sensor-frame readings: acc (N,3) m/s², gyr (N,3) rad/s, mag (N,3) µT."""

    acc: np.ndarray
    gyr: np.ndarray
    mag: np.ndarray


def earth_field_ut(field_ut: float, inclination_deg: float) -> np.ndarray:
    """Earth's field in the world frame: pointing north (+x) and down by the inclination."""
    inc = np.deg2rad(inclination_deg)
    return field_ut * np.array([np.cos(inc), 0.0, -np.sin(inc)])


def ideal_readings(
    kin: SegmentKinematics, strap: np.ndarray, b_world_ut: np.ndarray, gravity_m_s2: float
) -> ImuReadings:
    """Noise-free readings of a sensor strapped with `strap` on a segment moving as `kin`."""
    r_sensor = kin.r_segment @ strap
    specific_force = kin.acc_world + np.array([0.0, 0.0, gravity_m_s2])
    return ImuReadings(
        acc=apply_transpose(r_sensor, specific_force),
        gyr=kin.omega_segment @ strap,  # row-vector form of R_strapᵀ · ω
        mag=apply_transpose(r_sensor, np.broadcast_to(b_world_ut, kin.acc_world.shape)),
    )


class ImuErrorModel:
    """Seeded bias, drift and noise of one sensor, addressed by sample index."""

    def __init__(self, params: PatientParams, seed: int, role_id: int,
                 setup_rng: np.random.Generator) -> None:
        p = params
        scale = np.sqrt(p.rate_hz / 100.0)  # constant noise density across rates
        dt = 1.0 / p.rate_hz
        self.gyro_bias = p.gyro_bias_rad_s * setup_rng.standard_normal(3)
        self.acc_bias = p.acc_bias_m_s2 * setup_rng.standard_normal(3)
        self._gyro_noise = p.gyro_noise_rad_s * scale
        self._acc_noise = p.acc_noise_m_s2 * scale
        self._mag_noise = p.mag_noise_ut * scale
        self._walk_step = p.gyro_bias_walk_rad_s_per_sqrt_s * np.sqrt(dt)
        self._n_gyr = IndexedNormal(seed, (role_id, 1))
        self._walk = IndexedRandomWalk(IndexedNormal(seed, (role_id, 2)))
        self._n_acc = IndexedNormal(seed, (role_id, 3))
        self._n_mag = IndexedNormal(seed, (role_id, 4))

    def gyro_bias_at(self, k0: int, k1: int) -> np.ndarray:
        """True gyroscope bias (constant part plus drift) for samples k0 ≤ k < k1."""
        drift = self._walk_step * self._walk.take(k0, k1) if self._walk_step else 0.0
        return self.gyro_bias + drift * np.ones((k1 - k0, 3))

    def corrupt(self, ideal: ImuReadings, k0: int, k1: int) -> ImuReadings:
        """Add the error terms of samples k0 ≤ k < k1 to ideal readings."""
        gyr = ideal.gyr + self.gyro_bias_at(k0, k1)
        if self._gyro_noise:
            gyr = gyr + self._gyro_noise * self._n_gyr.take(k0, k1)
        acc = ideal.acc + self.acc_bias
        if self._acc_noise:
            acc = acc + self._acc_noise * self._n_acc.take(k0, k1)
        mag = ideal.mag
        if self._mag_noise:
            mag = mag + self._mag_noise * self._n_mag.take(k0, k1)
        return ImuReadings(acc=acc, gyr=gyr, mag=mag)
