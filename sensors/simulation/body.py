"""Biomechanical model of pelvis and lumbar spine: script → segment orientations and sensor sites.

Two rigid segments stand on legs that sway as an inverted pendulum about the ankles:
- pelvis, rotating about the hip-joint centres (which move back as the trunk bends forward),
  carrying the `lower` sensor over S2;
- upper (thoracolumbar) segment, rotating relative to the pelvis about a mid-lumbar pivot,
  carrying the `upper` sensor over T12/L1. The pivot sits in the vertebral bodies, anterior to
  the skin, so the skin distance S2–T12 grows in flexion as it does on a real back.

World frame: z up, x the patient's forward direction at heading 0 (also magnetic north), y left.
    R_pelvis = Rz(heading) · Rsway · Rz(−pelvic_rotation) · Ry(pelvic_tilt) · Rx(pelvic_obliquity)
    R_upper  = R_pelvis · Ry(lumbar_flexion) · Rx(lumbar_lateral) · Rz(−lumbar_rotation)
so the lumbar angles are exactly the docs/contracts.md decomposition of R_pelvis^T · R_upper.

Lumbo-pelvic rhythm (sagittal): for a bend of trunk amplitude A and min-jerk progress s ∈ [0,1],
lumbar = A · c · s · (1 + k(1 − s)), pelvis = A·s − lumbar, with c the lumbar share at the peak
and k the lead. The lumbar spine therefore dominates early in forward bending and the hips late,
and on the way back the hips lead (Esola et al. 1996, Spine 21(1):71; Laird et al. 2019 for c).
Side bends and twists split with a constant, mostly lumbar share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.simulation.params import PatientParams
from sensors.simulation.rotations import apply, matmul, rot_x, rot_y, rot_z, vee
from sensors.simulation.script import MovementScript

# Finite-difference step on the analytic motion: truncation error ~h² (≈1e-8 rad/s, m/s²) and
# rounding ~eps·|p|/h² (≈1e-7 m/s²), both far below any sensor noise.
FD_STEP_S = 1e-4
_N_SWAY = 5


@dataclass(frozen=True, slots=True)
class SegmentAngles:
    """Joint-level angles (radians) at each time."""

    pelvic_tilt: np.ndarray
    pelvic_obliquity: np.ndarray
    pelvic_rotation: np.ndarray
    lumbar_flexion: np.ndarray
    lumbar_lateral: np.ndarray
    lumbar_rotation: np.ndarray
    sway_ap: np.ndarray
    sway_ml: np.ndarray


@dataclass(frozen=True, slots=True)
class Pose:
    """Segment orientations (N,3,3) and sensor-site positions (N,3) in the world frame."""

    r_pelvis: np.ndarray
    r_upper: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray

    def segment(self, role: str) -> np.ndarray:
        return self.r_upper if role == "upper" else self.r_pelvis

    def site(self, role: str) -> np.ndarray:
        return self.p_upper if role == "upper" else self.p_lower


@dataclass(frozen=True, slots=True)
class SegmentKinematics:
    """Segment orientation and body-frame angular velocity; world acceleration of the site."""

    r_segment: np.ndarray  # (N,3,3)
    omega_segment: np.ndarray  # (N,3) rad/s, segment frame
    acc_world: np.ndarray  # (N,3) m/s², second derivative of the sensor-site position


class BodyModel:
    """Pure function of time: the script played by one body with seeded sway and heading."""

    def __init__(self, script: MovementScript, params: PatientParams, heading_rad: float,
                 sway_rng: np.random.Generator, loop: bool = False) -> None:
        self.script = script
        self.params = params
        self.heading_rad = float(heading_rad)
        self.loop = loop
        # Sum of sinusoids 0.1–0.5 Hz with seeded frequencies and phases; amplitude per component
        # set so that the rms equals the requested sway (rms of K sines of amplitude a = a√(K/2)).
        edges = np.geomspace(0.1, 0.5, _N_SWAY + 1)
        self._sway_f = sway_rng.uniform(edges[:-1], edges[1:], size=(2, _N_SWAY))
        self._sway_phase = sway_rng.uniform(0.0, 2 * np.pi, size=(2, _N_SWAY))
        rms = np.deg2rad([params.sway_ap_deg, params.sway_ml_deg])
        self._sway_amp = rms[:, None] * np.sqrt(2.0 / _N_SWAY) * np.ones((2, _N_SWAY))
        g = params.geometry
        self._hip = np.array([0.0, 0.0, g.hip_height_m])
        self._s2 = np.array(g.s2_from_hip_m, dtype=float)
        self._pivot = np.array(g.lumbar_pivot_from_hip_m, dtype=float)
        self._t12_from_pivot = np.array(g.t12_from_hip_m, dtype=float) - self._pivot

    def _sway(self, t: np.ndarray) -> np.ndarray:
        arg = 2 * np.pi * self._sway_f[:, None, :] * t[None, :, None] + self._sway_phase[:, None, :]
        return np.sum(self._sway_amp[:, None, :] * np.sin(arg), axis=-1)  # (2, N)

    def angles(self, time_s: np.ndarray) -> SegmentAngles:
        """Pelvic and lumbar angles from the script state and the rhythm model."""
        t = np.atleast_1d(np.asarray(time_s, dtype=float))
        p = self.params
        st = self.script.state(t, self.loop)
        s = st.progress
        peak = np.deg2rad(st.peak_deg)
        a_sag = peak[:, 0]
        share = np.where(a_sag >= 0, p.lumbar_share, p.extension_lumbar_share)
        lead = np.minimum(p.lumbar_lead, 1.0 / share - 1.0)  # keeps both parts monotonic
        lumbar_flex = a_sag * share * s * (1.0 + lead * (1.0 - s))
        lateral = peak[:, 1] * s
        rotation = peak[:, 2] * s
        sway = self._sway(t)
        return SegmentAngles(
            pelvic_tilt=a_sag * s - lumbar_flex,
            pelvic_obliquity=(1.0 - p.lateral_lumbar_share) * lateral,
            pelvic_rotation=(1.0 - p.rotation_lumbar_share) * rotation,
            lumbar_flexion=lumbar_flex,
            lumbar_lateral=p.lateral_lumbar_share * lateral,
            lumbar_rotation=p.rotation_lumbar_share * rotation,
            sway_ap=sway[0],
            sway_ml=sway[1],
        )

    def pose(self, time_s: np.ndarray) -> Pose:
        """Segment orientations and sensor-site positions at each time."""
        a = self.angles(time_s)
        body = matmul(rot_z(self.heading_rad), rot_y(a.sway_ap), rot_x(a.sway_ml))
        r_pelvis = matmul(
            body, rot_z(-a.pelvic_rotation), rot_y(a.pelvic_tilt), rot_x(a.pelvic_obliquity)
        )
        r_lumbar = matmul(
            rot_y(a.lumbar_flexion), rot_x(a.lumbar_lateral), rot_z(-a.lumbar_rotation)
        )
        r_upper = matmul(r_pelvis, r_lumbar)
        hip_local = np.broadcast_to(self._hip, (a.pelvic_tilt.shape[0], 3)).copy()
        hip_local[:, 0] -= self.params.geometry.hip_backshift_m_per_rad * a.pelvic_tilt
        p_hip = apply(body, hip_local)
        p_lower = p_hip + apply(r_pelvis, self._s2)
        p_upper = p_hip + apply(r_pelvis, self._pivot) + apply(r_upper, self._t12_from_pivot)
        return Pose(r_pelvis, r_upper, p_lower, p_upper)

    def kinematics(self, time_s: np.ndarray, role: str) -> SegmentKinematics:
        """Orientation, angular velocity and site acceleration by central differences of the
        analytic motion (one pose evaluation on the stacked stencil t−h, t, t+h)."""
        t = np.atleast_1d(np.asarray(time_s, dtype=float))
        h = FD_STEP_S
        n = t.shape[0]
        pose = self.pose(np.concatenate([t - h, t, t + h]))
        r = pose.segment(role)
        p = pose.site(role)
        r_m, r_0, r_p = r[:n], r[n : 2 * n], r[2 * n :]
        p_m, p_0, p_p = p[:n], p[n : 2 * n], p[2 * n :]
        omega = vee(np.swapaxes(r_0, -1, -2) @ ((r_p - r_m) / (2 * h)))
        acc = (p_p - 2.0 * p_0 + p_m) / (h * h)
        return SegmentKinematics(r_0, omega, acc)
