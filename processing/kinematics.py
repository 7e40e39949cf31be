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


def sagittal_inclination_rate(q: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Rate (rad/s) of `sagittal_inclination` from the segment-frame angular velocity.

    With R = Rz(ψ)·Ry(θ)·Rx(φ) the body-frame angular velocity gives θ̇ = cos φ ω_y − sin φ ω_z,
    and cos φ, sin φ ∝ R[2,2], R[2,1].
    """
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r21 = 2.0 * (y * z + w * x)
    r22 = 1.0 - 2.0 * (x * x + y * y)
    c = np.sqrt(r21 * r21 + r22 * r22)
    c = np.where(c < 1e-9, 1e-9, c)
    return (r22 * omega[..., 1] - r21 * omega[..., 2]) / c


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
    pelvic_tilt_velocity: np.ndarray
    upper_inclination_velocity: np.ndarray


def _inclination_and_rate(q: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`sagittal_inclination` and `sagittal_inclination_rate` from shared terms."""
    qw, qx, qy, qz = q.T
    r20 = qx * qz
    r20 -= qw * qy
    r20 *= -2.0  # −r20
    np.clip(r20, -1.0, 1.0, out=r20)
    r21 = qy * qz
    r21 += qw * qx
    r21 *= 2.0
    r22 = qx * qx
    r22 += qy * qy
    r22 *= -2.0
    r22 += 1.0
    c = r21 * r21
    c += r22 * r22
    np.sqrt(c, out=c)
    np.maximum(c, 1e-9, out=c)
    wt = w.T
    rate = r22 * wt[1]
    rate -= r21 * wt[2]
    rate /= c
    return np.arcsin(r20, out=r20), rate


def lumbar_kinematics(q_lower: np.ndarray, q_upper: np.ndarray, w_lower: np.ndarray,
                      w_upper: np.ndarray) -> LumbarKinematics:
    """Lumbar kinematics from segment-to-earth quaternions (one common earth frame, identity in
    neutral) and segment-frame angular velocities (rad/s).

    Written on the elements of R_rel (the same formulas as `decompose_yxz` and `angle_rates`,
    with sin/cos of the angles taken from the matrix instead of recomputed): this runs on every
    frame, and each numpy pass over the arrays counts (hence the in-place arithmetic).
    """
    lw, lx, ly, lz = q_lower.T
    uw, ux, uy, uz = q_upper.T
    # q_rel = conj(q_lower) ⊗ q_upper
    w = lw * uw
    w += lx * ux
    w += ly * uy
    w += lz * uz
    x = lw * ux
    x -= lx * uw
    x -= ly * uz
    x += lz * uy
    y = lw * uy
    y += lx * uz
    y -= ly * uw
    y -= lz * ux
    z = lw * uz
    z -= lx * uy
    z += ly * ux
    z -= lz * uw
    # the doubled products: r.. = 2·(...) without a separate pass for the factor 2
    x2, y2, z2 = x + x, y + y, z + z
    xx, yy, zz = x * x2, y * y2, z * z2
    xy, xz, yz = x * y2, x * z2, y * z2
    wx, wy, wz = w * x2, w * y2, w * z2
    r00 = yy + zz
    np.subtract(1.0, r00, out=r00)
    r01 = xy - wz
    r02 = xz + wy
    r10 = xy + wz
    r11 = xx + zz
    np.subtract(1.0, r11, out=r11)
    r12 = np.subtract(yz, wx, out=yz)
    r20 = np.subtract(xz, wy, out=xz)
    r21 = np.add(wx, y2 * z, out=wx)  # yz was reused for r12
    r22 = xx + yy
    np.subtract(1.0, r22, out=r22)
    flexion = np.arctan2(r02, r22)
    lateral = np.negative(r12, out=xy)
    np.clip(lateral, -1.0, 1.0, out=lateral)
    np.arcsin(lateral, out=lateral)
    rotation = np.arctan2(r10, r11)
    np.negative(rotation, out=rotation)
    # ω_rel = ω_upper − R_relᵀ ω_lower
    a0, a1, a2 = w_lower.T
    b0, b1, b2 = w_upper.T
    t = np.empty_like(w)

    def rel(b: np.ndarray, c0: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        o = np.multiply(c0, a0)
        o += np.multiply(c1, a1, out=t)
        o += np.multiply(c2, a2, out=t)
        return np.subtract(b, o, out=o)

    ox = rel(b0, r00, r10, r20)
    oy = rel(b1, r01, r11, r21)
    oz = rel(b2, r02, r12, r22)
    # angle_rates with sin c = r10/cos b, cos c = r11/cos b, sin b = −r12 (c = −rotation)
    cb2 = r10 * r10
    cb2 += np.multiply(r11, r11, out=t)
    np.maximum(cb2, 1e-18, out=cb2)
    f_dot = r10 * ox
    f_dot += np.multiply(r11, oy, out=t)
    f_dot /= cb2
    l_dot = r11 * ox
    l_dot -= np.multiply(r10, oy, out=t)
    l_dot /= np.sqrt(cb2, out=cb2)
    r_dot = r12 * f_dot
    r_dot -= oz
    speed = ox * ox
    speed += np.multiply(oy, oy, out=t)
    speed += np.multiply(oz, oz, out=t)
    np.sqrt(speed, out=speed)
    tilt, tilt_rate = _inclination_and_rate(q_lower, w_lower)
    incl, incl_rate = _inclination_and_rate(q_upper, w_upper)
    return LumbarKinematics(
        flexion=flexion,
        lateral_bend=lateral,
        axial_rotation=rotation,
        pelvic_tilt=tilt,
        upper_inclination=incl,
        flexion_velocity=f_dot,
        lateral_bend_velocity=l_dot,
        axial_rotation_velocity=r_dot,
        lumbar_angular_speed=speed,
        pelvic_tilt_velocity=tilt_rate,
        upper_inclination_velocity=incl_rate,
    )
