"""Vectorised elementary rotations and the lumbar-angle decomposition used by the simulator.

Rotation matrices act on column vectors and rotate child-frame vectors into the parent frame
(right-handed, active). Every function accepts scalar or (N,) angle arrays and returns (N, 3, 3)
stacks, so a whole recording is evaluated in one numpy call.
"""

from __future__ import annotations

import numpy as np


def _stack(rows: list[list[np.ndarray]]) -> np.ndarray:
    shape = np.broadcast_shapes(*(np.shape(x) for row in rows for x in row))
    out = np.empty(shape + (3, 3))
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            out[..., i, j] = x
    return out


def _elementary(angle_rad: np.ndarray | float, axis: int) -> np.ndarray:
    a = np.atleast_1d(np.asarray(angle_rad, dtype=float))
    c, s = np.cos(a), np.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane the rotation turns, in positive order
    out = np.zeros(a.shape + (3, 3))
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def rot_x(angle_rad: np.ndarray | float) -> np.ndarray:
    """Rotation about x by `angle_rad` (lateral bend in the lumbar convention: + tips z to -y)."""
    return _elementary(angle_rad, 0)


def rot_y(angle_rad: np.ndarray | float) -> np.ndarray:
    """Rotation about y (left) by `angle_rad`: + tips the anterior axis x down, i.e. forward."""
    return _elementary(angle_rad, 1)


def rot_z(angle_rad: np.ndarray | float) -> np.ndarray:
    """Rotation about z (up) by `angle_rad`: + turns x towards y (to the left)."""
    return _elementary(angle_rad, 2)


def matmul(*mats: np.ndarray) -> np.ndarray:
    """Product of (N,3,3) or (3,3) matrices, broadcasting over the stack."""
    out = mats[0]
    for m in mats[1:]:
        out = out @ m
    return out


def apply(rot: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Rotate (N,3) or (3,) vectors by (N,3,3) or (3,3) matrices, row by row."""
    return np.einsum("...ij,...j->...i", rot, vec)


def apply_transpose(rot: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Rotate vectors by the inverse (transpose): world-to-body mapping."""
    return np.einsum("...ji,...j->...i", rot, vec)


def lumbar_angles_rad(r_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decompose R_rel = Ry(flexion)·Rx(lateral)·Rz(−rotation) (docs/contracts.md).

    Returns (flexion, lateral, rotation) in radians; exact for |lateral| < 90°.
    """
    flexion = np.arctan2(r_rel[..., 0, 2], r_rel[..., 2, 2])
    lateral = np.arcsin(np.clip(-r_rel[..., 1, 2], -1.0, 1.0))
    rotation = -np.arctan2(r_rel[..., 1, 0], r_rel[..., 1, 1])
    return flexion, lateral, rotation


def sagittal_inclination_rad(r_seg: np.ndarray) -> np.ndarray:
    """Forward inclination of a segment: how far its anterior axis x points below the horizontal.

    This is the pitch of a z-y-x (heading, inclination, roll) decomposition, asin(−R[2,0]); it is
    independent of heading and, for a pure sagittal movement, equals the rotation about the
    segment's own y axis.
    """
    return np.arcsin(np.clip(-r_seg[..., 2, 0], -1.0, 1.0))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation (normalised Gaussian quaternion, Shoemake 1992)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return quat_to_matrix(q)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) unit quaternion(s) to rotation matrix/matrices."""
    q = np.asarray(q, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return _stack(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_angle_rad(r: np.ndarray) -> np.ndarray:
    """Angle of a rotation matrix (geodesic distance from identity)."""
    tr = np.trace(r, axis1=-2, axis2=-1)
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


def vee(skew: np.ndarray) -> np.ndarray:
    """Vector of the antisymmetric part of (N,3,3) matrices: vee([w]x) = w."""
    a = 0.5 * (skew - np.swapaxes(skew, -1, -2))
    return np.stack([a[..., 2, 1], a[..., 0, 2], a[..., 1, 0]], axis=-1)
