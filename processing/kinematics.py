"""Lumbar angles and angular velocities from the two segments' orientations.

Segment frames: x anterior, y left, z up in neutral standing (see docs/contracts.md). With both
segments' orientations in one earth frame (after calibration), the lumbar rotation is
R_rel = R_lower^T · R_upper (the upper segment in the lower segment's frame), decomposed as
R_rel = Ry(flexion) · Rx(lateral) · Rz(−rotation) — intrinsic y, x', z'', the order of the ISB
recommendation for the trunk (Wu et al., J Biomech 35, 2002) — so that flexion > 0 is bending
forward (Ry(θ>0) turns x down), lateral > 0 bending right (Rx(θ>0) tips z to −y) and rotation > 0
turning the shoulders right (Rz(−θ) turns x towards −y).

Segment inclination (pelvic tilt for the lower segment, `upper_inclination` for the upper one) is
the sagittal inclination: the elevation of the segment's x axis below the horizontal, i.e. the
pitch of a z-y'-x'' (yaw-pitch-roll) decomposition of the segment-to-earth rotation, > 0 forward.
It does not depend on heading, so the drift of a 6D heading cannot touch it, and it is zero in
neutral standing by the calibration's construction.

Angular velocities come from the gyroscopes, not from differentiating angles: the relative angular
velocity ω_rel = ω_upper − R_relᵀ ω_lower (upper segment frame) is mapped to the rates of the three
angles through the inverse of the y-x'-z'' kinematic equations. That is causal, sample by sample,
and free of the lag and noise of numerical differentiation, so streaming and offline agree; the
gyroscope bias is VQF's estimate removed. It is singular only at lateral bending of ±90°.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from processing import quaternion as qt


def compose_yxz(flexion: np.ndarray | float, lateral: np.ndarray | float,
                rotation: np.ndarray | float) -> np.ndarray:
    """Quaternion of Ry(flexion) · Rx(lateral) · Rz(−rotation), angles in rad."""
    qy = qt.from_axis_angle(np.array([0.0, 1.0, 0.0]), flexion)
    qx = qt.from_axis_angle(np.array([1.0, 0.0, 0.0]), lateral)
    qz = qt.from_axis_angle(np.array([0.0, 0.0, 1.0]), -np.asarray(rotation, dtype=float))
    return qt.multiply(qt.multiply(qy, qx), qz)


def _decompose_matrix_elems(q: np.ndarray) -> tuple[np.ndarray, ...]:
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r02 = 2.0 * (x * z + w * y)
    r22 = 1.0 - 2.0 * (x * x + y * y)
    r12 = 2.0 * (y * z - w * x)
    r10 = 2.0 * (x * y + w * z)
    r11 = 1.0 - 2.0 * (x * x + z * z)
    return r02, r22, r12, r10, r11


def decompose_yxz(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flexion, lateral, rotation) in rad with q = Ry(flexion) · Rx(lateral) · Rz(−rotation).

    From R = Ry(a)Rx(b)Rz(c): R[0,2] = sin a cos b, R[2,2] = cos a cos b, R[1,2] = −sin b,
    R[1,0] = cos b sin c, R[1,1] = cos b cos c.
    """
    r02, r22, r12, r10, r11 = _decompose_matrix_elems(np.asarray(q, dtype=float))
    flexion = np.arctan2(r02, r22)
    lateral = np.arcsin(np.clip(-r12, -1.0, 1.0))
    rotation = -np.arctan2(r10, r11)
    return flexion, lateral, rotation


def sagittal_inclination(q: np.ndarray) -> np.ndarray:
    """Elevation (rad) of the segment's x axis below the horizontal, > 0 tilted forward."""
    q = np.asarray(q, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r20 = 2.0 * (x * z - w * y)
    return np.arcsin(np.clip(-r20, -1.0, 1.0))


def angle_rates(lateral: np.ndarray, rotation: np.ndarray,
                omega_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rates (rad/s) of (flexion, lateral, rotation) from the relative angular velocity.

    For R = Ry(a)Rx(b)Rz(c) the body-frame angular velocity is
    ω = Rz(c)ᵀRx(b)ᵀ(0, ȧ, 0) + Rz(c)ᵀ(ḃ, 0, 0) + (0, 0, ċ), hence
    ȧ = (sin c ωx + cos c ωy)/cos b, ḃ = cos c ωx − sin c ωy, ċ = ωz + sin b ȧ; here c = −rotation.
    """
    c = -rotation
    sc, cc = np.sin(c), np.cos(c)
    sb, cb = np.sin(lateral), np.cos(lateral)
    wx, wy, wz = omega_rel[..., 0], omega_rel[..., 1], omega_rel[..., 2]
    a_dot = (sc * wx + cc * wy) / np.where(np.abs(cb) < 1e-9, 1e-9, cb)
    b_dot = cc * wx - sc * wy
    c_dot = wz + sb * a_dot
    return a_dot, b_dot, -c_dot


@dataclass(frozen=True)
class LumbarKinematics:
    """Angles in rad and rates in rad/s, one entry per frame."""

    flexion: np.ndarray
    lateral_bend: np.ndarray
    axial_rotation: np.ndarray
    pelvic_tilt: np.ndarray
    upper_inclination: np.ndarray
    flexion_velocity: np.ndarray
    lateral_bend_velocity: np.ndarray
    axial_rotation_velocity: np.ndarray
    lumbar_angular_speed: np.ndarray


def lumbar_kinematics(q_lower: np.ndarray, q_upper: np.ndarray, w_lower: np.ndarray,
                      w_upper: np.ndarray) -> LumbarKinematics:
    """Lumbar kinematics from segment-to-earth quaternions (one common earth frame, identity in
    neutral) and segment-frame angular velocities (rad/s)."""
    q_rel = qt.multiply(qt.conjugate(q_lower), q_upper)
    flexion, lateral, rotation = decompose_yxz(q_rel)
    # ω_rel = ω_upper − R_relᵀ ω_lower
    w_rel = w_upper - qt.rotate(qt.conjugate(q_rel), w_lower)
    f_dot, l_dot, r_dot = angle_rates(lateral, rotation, w_rel)
    return LumbarKinematics(
        flexion=flexion,
        lateral_bend=lateral,
        axial_rotation=rotation,
        pelvic_tilt=sagittal_inclination(q_lower),
        upper_inclination=sagittal_inclination(q_upper),
        flexion_velocity=f_dot,
        lateral_bend_velocity=l_dot,
        axial_rotation_velocity=r_dot,
        lumbar_angular_speed=np.linalg.norm(w_rel, axis=-1),
    )
