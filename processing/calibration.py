"""Sensor-to-segment calibration from quiet neutral standing and one slow forward bend.

A sensor may be strapped in any orientation. For each sensor, in its own frame:
1. Neutral standing: the mean "up" direction of the sensor's orientation estimate (earth z seen in
   the sensor frame; the direction of gravity's reaction that the accelerometer measures at rest)
   is the segment's z axis: segment frames are defined as z up in neutral standing.
2. Forward bend: both segments rotate about their own left (y) axis. The principal direction of
   the bias-free angular velocity during the bend (first right-singular vector of the gyroscope
   samples) is ±y; its sign is taken so that the rotation from neutral to the deepest point of the
   bend is positive about y, because Ry(θ > 0) is a forward bend. Orthogonalised against z;
   x = y × z.
   The patient is told to bend forward: a backward bend would be read as a forward one (nothing
   in two IMUs tells front from back without a movement of known direction).
3. Heading: in 6D each VQF earth frame has its own arbitrary heading. In neutral both segment frames
   coincide by definition, so each segment's heading in its sensor's earth frame during the neutral
   window is measured and removed: afterwards both segments are at the identity in neutral, in a
   common heading-aligned earth frame. That heading belongs to the orientation run it was measured
   in (the same recording re-analysed gives the same run); for a new session with the same straps
   use `Calibration.without_heading()` and let the pipeline re-measure it in neutral.

Quality figures are kept with the calibration, and a calibration that cannot be trusted raises
`CalibrationError` whose message tells the patient what to redo. Related methods: functional
sensor-to-segment calibration as in Favre et al., J Biomech 42 (2009); Seel et al., Sensors 14
(2014) for joint axes from gyroscope data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from processing import quaternion as qt
from processing.alignment import AlignedFrames
from processing.kinematics import lumbar_kinematics


class CalibrationError(ValueError):
    """The calibration movement was not usable; the message says what to redo."""


REDO_NEUTRAL = "Stand upright and still for 5 s, then bend forward slowly and come back up."
REDO_FURTHER = "Bend forward further, slowly, then come back up to standing."
REDO_STRAIGHT = "Bend straight forward without twisting or leaning to the side."


@dataclass(frozen=True)
class CalibrationParams:
    """Thresholds of calibration: detection of neutral and bend, and quality limits."""

    block_s: float = 0.1
    """Detection works on blocks of this length (fixed grid on the time axis)."""
    min_quiet_s: float = 3.0
    """Quiet standing needed before the bend."""
    neutral_max_s: float = 5.0
    """At most this much quiet standing (the part just before the bend) defines neutral."""
    neutral_margin_s: float = 0.5
    """Left out between the neutral window and the start of the bend."""
    quiet_gyr_rad_s: float = 0.15
    """Quiet: every bias-free gyroscope norm within a block below this, both sensors."""
    quiet_acc_m_s2: float = 1.0
    """Quiet: accelerometer norm within this of g, both sensors."""
    quiet_tilt_deg: float = 5.0
    """Quiet: each sensor's up direction within this of where the quiet period started (postural
    sway moves it by up to 2–3° in people who sway a lot; a bend moves it by far more)."""
    bend_min_deg: float = 15.0
    """A bend: the upper sensor's inclination changes at least this much."""
    return_max_deg: float = 7.0
    """Bend over: the upper sensor's inclination is back within this of neutral."""
    bend_timeout_s: float = 30.0
    """A bend not over after this long fails ("come back up")."""
    bend_pre_s: float = 0.5
    """The bend window starts this long before the first non-quiet block."""
    min_lower_bend_deg: float = 4.0
    """The pelvis sensor must rotate at least this much to find its axis."""
    min_planarity: float = 0.9
    """Share of the angular-velocity energy about the bend axis, each sensor."""
    max_axis_tilt_deg: float = 20.0
    """The bend axis must be within this of horizontal (of perpendicular to neutral z)."""
    max_off_plane_deg: float = 10.0
    """Largest lateral bend or axial rotation allowed during the calibration bend."""


@dataclass(frozen=True)
class SegmentCalibration:
    """One sensor: how its segment sits in it, and (optionally) the segment's neutral heading."""

    sensor_to_segment: np.ndarray
    """Quaternion (w, x, y, z) rotating sensor-frame vectors into the segment frame (the sensor's
    orientation on the segment); its rotation matrix has the segment's x, y, z axes, in sensor
    coordinates, as rows."""
    heading_rad: float | None = None
    """Heading of the segment's x axis in its sensor's (VQF) earth frame in neutral."""

    def to_dict(self) -> dict[str, Any]:
        return {"sensor_to_segment": [float(v) for v in self.sensor_to_segment],
                "heading_rad": None if self.heading_rad is None else float(self.heading_rad)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SegmentCalibration:
        h = d.get("heading_rad")
        return SegmentCalibration(qt.normalize(np.asarray(d["sensor_to_segment"], dtype=float)),
                                  None if h is None else float(h))


@dataclass(frozen=True)
class Calibration:
    """Sensor-to-segment calibration of both sensors."""

    lower: SegmentCalibration
    upper: SegmentCalibration
    neutral_s: tuple[float, float] | None = None
    bend_s: tuple[float, float] | None = None
    comfortable_flexion_deg: float | None = None
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def has_heading(self) -> bool:
        return self.lower.heading_rad is not None and self.upper.heading_rad is not None

    def without_heading(self) -> Calibration:
        """The strap part only, for a new orientation run (re-measure heading in neutral)."""
        return replace(self, lower=replace(self.lower, heading_rad=None),
                       upper=replace(self.upper, heading_rad=None))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "lower": self.lower.to_dict(),
            "upper": self.upper.to_dict(),
            "neutral_s": None if self.neutral_s is None else [float(v) for v in self.neutral_s],
            "bend_s": None if self.bend_s is None else [float(v) for v in self.bend_s],
            "comfortable_flexion_deg": self.comfortable_flexion_deg,
            "quality": {k: float(v) for k, v in self.quality.items()},
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Calibration:
        def pair(v: Any) -> tuple[float, float] | None:
            return None if v is None else (float(v[0]), float(v[1]))

        return Calibration(
            lower=SegmentCalibration.from_dict(d["lower"]),
            upper=SegmentCalibration.from_dict(d["upper"]),
            neutral_s=pair(d.get("neutral_s")),
            bend_s=pair(d.get("bend_s")),
            comfortable_flexion_deg=d.get("comfortable_flexion_deg"),
            quality=dict(d.get("quality", {})),
        )

    # -- applying it -----------------------------------------------------------------------
    def segment_transforms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(4x4 lower, 4x4 upper, 3x3 lower, 3x3 upper): q_seg = M @ q_sensor (heading removed,
        segment-to-common-earth) and ω_seg = ω_sensor @ C (row vectors, C = R(s2s)ᵀ)."""
        if not self.has_heading:
            raise ValueError("calibration has no neutral heading yet")
        out = []
        for seg in (self.lower, self.upper):  # q_seg = Rz(−heading) ⊗ q_sensor ⊗ segment_to_sensor
            out.append(qt.left_matrix(qt.about_z(-seg.heading_rad))
                       @ qt.right_matrix(qt.conjugate(seg.sensor_to_segment)))
        for seg in (self.lower, self.upper):  # ω_seg = R_s2s ω_sensor, as rows: ω_sensor @ R_s2sᵀ
            out.append(qt.to_matrix(seg.sensor_to_segment).T)
        return out[0], out[1], out[2], out[3]

    def apply(self, frames: AlignedFrames) -> tuple[np.ndarray, ...]:
        """(q_lower_seg, q_upper_seg, ω_lower_seg, ω_upper_seg) of aligned frames."""
        ml, mu, cl, cu = self.segment_transforms()
        return (frames.q_lower @ ml.T, frames.q_upper @ mu.T,
                frames.gyr_lower @ cl, frames.gyr_upper @ cu)


# -- the computation --------------------------------------------------------------------------
def _mean_quat(q: np.ndarray) -> np.ndarray:
    """Normalised sign-aligned mean: good enough for the small spread of quiet standing."""
    q = np.where((q @ q[0])[:, None] < 0.0, -q, q)
    m = q.mean(axis=0)
    return m / np.linalg.norm(m)


def _heading(q_sensor: np.ndarray, sensor_to_segment: np.ndarray) -> float:
    q_seg = qt.multiply(q_sensor, qt.conjugate(sensor_to_segment))
    x = qt.rotate(q_seg, np.array([1.0, 0.0, 0.0]))
    return float(np.arctan2(x[:, 1].sum(), x[:, 0].sum()))  # circular mean of the headings


def _neutral_checks(n: AlignedFrames, params: CalibrationParams,
                    quality: dict[str, float]) -> None:
    if len(n) < 2 or n.time_s[-1] - n.time_s[0] < 0.5 * params.min_quiet_s:
        raise CalibrationError(f"Neutral standing too short. {REDO_NEUTRAL}")
    quality["neutral_duration_s"] = float(n.time_s[-1] - n.time_s[0])
    for role, gyr, acc in (("lower", n.gyr_lower, n.acc_lower),
                           ("upper", n.gyr_upper, n.acc_upper)):
        rms = float(np.sqrt(np.mean(np.sum(gyr**2, axis=1))))
        up = acc / np.linalg.norm(acc, axis=1, keepdims=True)  # see `_up`
        m = up.mean(axis=0)
        m /= np.linalg.norm(m)
        sd = float(np.degrees(np.sqrt(np.mean(np.arccos(np.clip(up @ m, -1, 1)) ** 2))))
        quality[f"neutral_gyr_rms_deg_s_{role}"] = float(np.degrees(rms))
        quality[f"neutral_tilt_sd_deg_{role}"] = sd
        if rms > params.quiet_gyr_rad_s or sd > params.quiet_tilt_deg:
            raise CalibrationError(f"You moved during neutral standing. {REDO_NEUTRAL}")


def _up(acc: np.ndarray) -> np.ndarray:
    """Mean up direction in the sensor frame from accelerometer samples at rest.

    The accelerometer rather than the orientation filter: during the first seconds VQF's
    inclination still carries the not yet estimated gyroscope bias (an error of about bias ×
    tau_acc, 1–2° for consumer gyroscopes), which would otherwise end up in the neutral zero.
    """
    z = acc.mean(axis=0)
    return z / np.linalg.norm(z)


def _segment_axes(role: str, acc_n: np.ndarray, q_n: np.ndarray, q_b: np.ndarray,
                  gyr_b: np.ndarray, params: CalibrationParams,
                  quality: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """sensor_to_segment quaternion of one sensor from its neutral and bend samples, and the
    direction of its neutral-to-deepest-point rotation in segment coordinates."""
    z = _up(acc_n)
    q_ref = _mean_quat(q_n)
    # deepest point of the bend: largest rotation away from neutral
    ang = qt.angle_between(q_ref, q_b)
    k = int(np.argmax(ang))
    rv = qt.to_rotvec(qt.multiply(qt.conjugate(q_ref), q_b[k]))  # sensor frame, neutral → peak
    amplitude = float(np.degrees(ang[k]))
    _, s, vt = np.linalg.svd(gyr_b, full_matrices=False)
    axis = vt[0]
    energy = float(np.sum(s**2))
    planarity = float(s[0] ** 2 / energy) if energy > 0 else 0.0
    if axis @ rv < 0.0:
        axis = -axis
    tilt = float(np.degrees(np.arcsin(min(1.0, abs(float(axis @ z))))))
    quality[f"bend_amplitude_deg_{role}"] = amplitude
    quality[f"bend_planarity_{role}"] = planarity
    quality[f"bend_axis_tilt_deg_{role}"] = tilt
    minimum = params.bend_min_deg if role == "upper" else params.min_lower_bend_deg
    if amplitude < minimum:
        what = ("" if role == "upper"
                else " and let the hips bend too (the pelvis sensor hardly moved)")
        raise CalibrationError(
            f"The bend was too small ({amplitude:.0f}° at the {role} sensor). "
            f"Bend forward further{what}, slowly, then come back up to standing.")
    if planarity < params.min_planarity or tilt > params.max_axis_tilt_deg:
        raise CalibrationError(f"The bend was not straight forward. {REDO_STRAIGHT}")
    c = _axes_from(z, axis)  # columns: segment axes in sensor coordinates
    return qt.from_matrix(c.T), c.T @ (rv / max(np.linalg.norm(rv), 1e-12))


def _axes_from(z: np.ndarray, y_approx: np.ndarray) -> np.ndarray:
    """Matrix with columns x, y, z: y is y_approx made perpendicular to z, x = y × z."""
    y = y_approx - (y_approx @ z) * z
    y /= np.linalg.norm(y)
    return np.column_stack((np.cross(y, z), y, z))


def calibrate(frames: AlignedFrames, neutral_s: tuple[float, float],
              bend_s: tuple[float, float],
              params: CalibrationParams = CalibrationParams()) -> Calibration:
    """Calibration from the frames in a neutral window and a bend window (times in s)."""
    quality: dict[str, float] = {}
    n = frames.window(*neutral_s)
    b = frames.window(*bend_s)
    _neutral_checks(n, params, quality)
    if len(b) < 3:
        raise CalibrationError(f"No forward bend found. {REDO_FURTHER}")
    c_l, d_l = _segment_axes("lower", n.acc_lower, n.q_lower, b.q_lower, b.gyr_lower, params,
                             quality)
    c_u, d_u = _segment_axes("upper", n.acc_upper, n.q_upper, b.q_upper, b.gyr_upper, params,
                             quality)
    # the two sensors' bend axes (neutral to deepest point) in their segment frames: both ~ +y
    quality["bend_axis_angle_deg"] = float(np.degrees(np.arccos(np.clip(d_l @ d_u, -1.0, 1.0))))
    cal = Calibration(
        lower=SegmentCalibration(c_l, _heading(n.q_lower, c_l)),
        upper=SegmentCalibration(c_u, _heading(n.q_upper, c_u)),
        neutral_s=(float(neutral_s[0]), float(neutral_s[1])),
        bend_s=(float(bend_s[0]), float(bend_s[1])),
    )
    kin = lumbar_kinematics(*cal.apply(b))
    off = float(np.degrees(max(np.max(np.abs(kin.lateral_bend)),
                               np.max(np.abs(kin.axial_rotation)))))
    comfortable = float(np.degrees(np.max(kin.flexion)))
    quality["bend_off_plane_deg"] = off
    quality["comfortable_flexion_deg"] = comfortable
    if off > params.max_off_plane_deg:
        raise CalibrationError(f"The bend was not straight forward. {REDO_STRAIGHT}")
    return replace(cal, comfortable_flexion_deg=comfortable, quality=quality)


def rezero_neutral(calibration: Calibration, frames: AlignedFrames,
                   neutral_s: tuple[float, float],
                   params: CalibrationParams = CalibrationParams()) -> Calibration:
    """The calibration's straps (its y axes) with neutral re-measured in a new neutral window:
    z from the new neutral, y made perpendicular to it, and the heading of this orientation run."""
    n = frames.window(*neutral_s)
    quality = dict(calibration.quality)
    _neutral_checks(n, params, quality)
    segs = []
    for q, acc, seg in ((n.q_lower, n.acc_lower, calibration.lower),
                        (n.q_upper, n.acc_upper, calibration.upper)):
        z = _up(acc)
        y_old = qt.to_matrix(seg.sensor_to_segment)[1, :]  # segment y in sensor coordinates
        s2s = qt.from_matrix(_axes_from(z, y_old).T)
        segs.append(SegmentCalibration(s2s, _heading(q, s2s)))
    return replace(calibration, lower=segs[0], upper=segs[1],
                   neutral_s=(float(neutral_s[0]), float(neutral_s[1])), quality=quality)
