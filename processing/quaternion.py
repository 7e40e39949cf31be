"""Vectorised unit-quaternion helpers, scalar first (w, x, y, z).

All functions take arrays of shape (..., 4) (and (..., 3) for vectors) and broadcast. A quaternion
here always means the rotation that maps frame-B vectors into frame A ("B-to-A"), the convention of
VQF (Laidig & Seel 2023): for a sensor-to-earth quaternion q, `rotate(q, v_sensor) = v_earth`.
Composition: `multiply(q_AB, q_BC) = q_AC`.

Written out rather than using scipy.spatial.transform.Rotation because Rotation is scalar last,
and a few fused numpy expressions on (N, 4) arrays are faster than building Rotation objects per
batch on the streaming hot path.
"""

from __future__ import annotations

import numpy as np

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions with w >= 0 (the same rotation, canonical sign)."""
    q = np.asarray(q, dtype=float)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    q = q / n
    return np.where(q[..., :1] < 0.0, -q, q)


def conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion."""
    q = np.asarray(q, dtype=float)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product p ⊗ q (apply q first, then p)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    pw, px, py, pz = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    qw, qx, qy, qz = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        (
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ),
        axis=-1,
    )


def left_matrix(p: np.ndarray) -> np.ndarray:
    """4x4 matrix L(p) with p ⊗ q = L(p) @ q (for multiplying many q by one constant p)."""
    w, x, y, z = np.asarray(p, dtype=float)
    return np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])


def right_matrix(q: np.ndarray) -> np.ndarray:
    """4x4 matrix R(q) with p ⊗ q = R(q) @ p (for multiplying many p by one constant q)."""
    w, x, y, z = np.asarray(q, dtype=float)
    return np.array([[w, -x, -y, -z], [x, w, z, -y], [y, -z, w, x], [z, y, -x, w]])


def to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4)."""
    q = np.asarray(q, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.empty(q.shape[:-1] + (3, 3))
    m[..., 0, 0] = 1.0 - 2.0 * (yy + zz)
    m[..., 0, 1] = 2.0 * (xy - wz)
    m[..., 0, 2] = 2.0 * (xz + wy)
    m[..., 1, 0] = 2.0 * (xy + wz)
    m[..., 1, 1] = 1.0 - 2.0 * (xx + zz)
    m[..., 1, 2] = 2.0 * (yz - wx)
    m[..., 2, 0] = 2.0 * (xz - wy)
    m[..., 2, 1] = 2.0 * (yz + wx)
    m[..., 2, 2] = 1.0 - 2.0 * (xx + yy)
    return m


def from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternions (w >= 0) of rotation matrices (..., 3, 3); Shepperd's method."""
    m = np.asarray(m, dtype=float)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = np.stack((m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]), axis=-1)
    case = np.argmax(np.column_stack((tr, diag)), axis=-1)
    q = np.empty((m.shape[0], 4))
    for k in range(4):
        sel = case == k
        if not np.any(sel):
            continue
        r = m[sel]
        if k == 0:
            s = 2.0 * np.sqrt(1.0 + tr[sel])
            q[sel] = np.column_stack(
                (0.25 * s, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                 (r[:, 1, 0] - r[:, 0, 1]) / s)
            )
        else:
            i = k - 1
            j, l = (i + 1) % 3, (i + 2) % 3
            s = 2.0 * np.sqrt(1.0 + r[:, i, i] - r[:, j, j] - r[:, l, l])
            v = np.empty((r.shape[0], 4))
            v[:, 0] = (r[:, l, j] - r[:, j, l]) / s
            v[:, 1 + i] = 0.25 * s
            v[:, 1 + j] = (r[:, j, i] + r[:, i, j]) / s
            v[:, 1 + l] = (r[:, l, i] + r[:, i, l]) / s
            q[sel] = v
    return normalize(q).reshape(shape + (4,))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross is slow on the small arrays of a live stream (axis juggling); same result
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack((ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx), axis=-1)


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by quaternions q (..., 4): q ⊗ (0, v) ⊗ q*."""
    q = np.asarray(q, dtype=float)
    v = np.asarray(v, dtype=float)
    u = q[..., 1:]
    w = q[..., :1]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def from_rotvec(rv: np.ndarray) -> np.ndarray:
    """Quaternions of rotation vectors (axis * angle in rad)."""
    rv = np.asarray(rv, dtype=float)
    angle = np.linalg.norm(rv, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle, with its Taylor series near zero
    small = angle < 1e-8
    k = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate((np.cos(half), rv * k), axis=-1)


def to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis * angle in rad, angle in [0, π]) of unit quaternions."""
    q = normalize(q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    small = s < 1e-12
    k = np.where(small, 2.0, angle / np.where(small, 1.0, s))
    return v * k


def from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Quaternions of rotations by `angle` (rad) about unit `axis` (3,) or (..., 3)."""
    axis = np.asarray(axis, dtype=float)
    angle = np.asarray(angle, dtype=float)[..., None]
    return np.concatenate((np.cos(0.5 * angle), np.sin(0.5 * angle) * axis), axis=-1)


def about_z(angle: np.ndarray | float) -> np.ndarray:
    """Quaternions of rotations about z by `angle` (rad)."""
    return from_axis_angle(np.array([0.0, 0.0, 1.0]), angle)


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation q0 → q1 at fraction u (broadcasting, along the short arc).

    Falls back to normalised linear interpolation for nearly equal rotations, where slerp and
    nlerp agree to ~1e-16 and the slerp weights would lose precision.
    """
    q0 = np.asarray(q0, dtype=float)
    q1 = np.asarray(q1, dtype=float)
    u = np.asarray(u, dtype=float)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - u, np.sin((1.0 - u) * theta) / safe)
    w1 = np.where(near, u, np.sin(u * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def nlerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Normalised linear interpolation q0 → q1 at fractions u (N,), along the short arc.

    Between consecutive samples of a body-worn IMU (a few degrees apart at most) nlerp differs
    from slerp by far less than 1e-4° (the error grows with the cube of the angle), at a third of
    the cost. Takes ownership of `q1` (negated and overwritten in place).
    """
    dot = np.einsum("ij,ij->i", q0, q1)
    if (dot < 0.0).any():
        q1[dot < 0.0] *= -1.0
    q1 -= q0
    q1 *= u[:, None]
    q1 += q0
    q1 /= np.sqrt(np.einsum("ij,ij->i", q1, q1))[:, None]
    return q1


def angle_between(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in [0, π]) of q0* ⊗ q1."""
    dot = np.abs(np.sum(np.asarray(q0) * np.asarray(q1), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def up_in_body(q: np.ndarray) -> np.ndarray:
    """Earth z (up) expressed in the body frame of body-to-earth quaternions q: R(q)^T e_z."""
    q = np.asarray(q, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        (2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)), axis=-1
    )
