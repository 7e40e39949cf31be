"""Parameters of the simulated patient: body geometry, movement style, sensor imperfections.

Noise and bias defaults are deliberately a little worse than consumer MEMS datasheets (BMI270,
ICM-20948, LSM6DSO class parts: gyro noise density ≈ 0.004–0.015 °/s/√Hz, zero-rate offset
≈ ±0.5–1 °/s after factory trim; accelerometer ≈ 120–230 µg/√Hz, zero-g offset ±20 mg before
user calibration; magnetometer ≈ 0.15 µT resolution and a few tenths of µT rms noise), because
skin-mounted sensors add soft-tissue artefact on top of the chip's own noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True, slots=True)
class BodyGeometry:
    """Where the joints and sensors sit, in the pelvis frame at neutral (metres, origin at the
    midpoint of the hip joint centres; x anterior, y left, z up)."""

    hip_height_m: float = 0.90  # hip joint centres above the ankle axis / floor
    s2_from_hip_m: tuple[float, float, float] = (-0.12, 0.0, 0.10)  # skin over S2
    lumbar_pivot_from_hip_m: tuple[float, float, float] = (-0.05, 0.0, 0.22)  # mid-lumbar (L3 body)
    t12_from_hip_m: tuple[float, float, float] = (-0.11, 0.0, 0.33)  # skin over T12/L1
    # The hips move back as the trunk bends forward, keeping the centre of mass over the feet.
    hip_backshift_m_per_rad: float = 0.12


@dataclass(frozen=True, slots=True)
class PatientParams:
    """Everything that makes one simulated patient and sensor set differ from another."""

    rate_hz: float = 100.0
    seed: int = 0
    # Lumbo-pelvic rhythm: lumbar share of trunk angle at the peak of a bend (Laird 2019: ≈ 0.46
    # with low back pain, 0.51 without), and how much the lumbar spine leads early in the bend.
    lumbar_share: float = 0.5
    lumbar_lead: float = 0.5
    extension_lumbar_share: float = 0.7
    lateral_lumbar_share: float = 0.85
    rotation_lumbar_share: float = 0.75
    heading_deg: float | None = None  # patient's facing direction from magnetic north; None: seeded
    # Sensor-to-segment rotations (3x3, R_sensor = R_segment · R_strap); None: random from seed.
    strap_upper: np.ndarray | None = None
    strap_lower: np.ndarray | None = None
    # Postural sway of the whole body about the ankles (rms, degrees).
    sway_ap_deg: float = 0.4
    sway_ml_deg: float = 0.25
    # Sensor imperfections. White-noise standard deviations are quoted at 100 Hz and scale with
    # sqrt(rate_hz / 100) (constant noise density).
    gyro_bias_rad_s: float = 0.01  # per-axis std of the constant turn-on bias (≈ 0.6 °/s)
    gyro_bias_walk_rad_s_per_sqrt_s: float = 2e-5  # rate random walk (≈ 0.07 °/s/√h)
    gyro_noise_rad_s: float = 0.005
    acc_bias_m_s2: float = 0.02  # per-axis std of the residual constant offset (≈ 2 mg)
    acc_noise_m_s2: float = 0.03
    mag_noise_ut: float = 0.3
    mag_field_ut: float = 49.0
    mag_inclination_deg: float = 64.0
    with_mag: bool = True
    upper_time_offset_s: float = 0.003
    # Hook for later: sensor clocks running fast (+) or slow (−), in parts per million.
    clock_drift_ppm: dict[str, float] = field(default_factory=lambda: {"upper": 0.0, "lower": 0.0})
    gravity_m_s2: float = 9.81
    geometry: BodyGeometry = BodyGeometry()

    def __post_init__(self) -> None:
        if not 10.0 <= self.rate_hz <= 1000.0:
            raise ValueError("rate_hz must be between 10 and 1000")
        for name in ("lumbar_share", "extension_lumbar_share", "lateral_lumbar_share",
                     "rotation_lumbar_share"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        if not 0.0 <= self.lumbar_lead <= 1.0:
            raise ValueError("lumbar_lead must be in [0, 1]")
        for name in ("strap_upper", "strap_lower"):
            r = getattr(self, name)
            if r is not None:
                r = np.asarray(r, dtype=float)
                if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-9) or (
                    np.linalg.det(r) < 0
                ):
                    raise ValueError(f"{name} must be a 3x3 rotation matrix")

    def without_noise(self) -> PatientParams:
        """Same patient with ideal sensors: no white noise, no bias, no bias drift."""
        return replace(
            self,
            gyro_bias_rad_s=0.0,
            gyro_bias_walk_rad_s_per_sqrt_s=0.0,
            gyro_noise_rad_s=0.0,
            acc_bias_m_s2=0.0,
            acc_noise_m_s2=0.0,
            mag_noise_ut=0.0,
        )

    def replace(self, **changes: object) -> PatientParams:
        """Copy with some fields changed (dataclasses.replace, for convenience)."""
        return replace(self, **changes)  # type: ignore[arg-type]
