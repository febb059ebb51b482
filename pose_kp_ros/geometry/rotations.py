"""Batched SO(3) helpers: skew matrices, exp and log maps (torch), quaternions (numpy).

Rotation vectors (axis-angle) are in radians, shape (..., 3); rotation matrices are (..., 3, 3).
Formulas: Rodrigues' rotation formula and its inverse, e.g. Barfoot, "State Estimation for
Robotics" (2017), section 7.1.
"""

import numpy as np
import torch

_SMALL_ANGLE_SQ = 1e-10


def hat(w):
    """Return skew-symmetric matrices [w]_x (..., 3, 3), [w]_x v = w x v, for w (..., 3)."""
    # Row i of [w]_x is e_i x w.
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return torch.linalg.cross(eye.expand(w.shape[:-1] + (3, 3)), w[..., None, :].expand(
        w.shape[:-1] + (3, 3)))


def so3_exp(w):
    """Return rotation matrices (..., 3, 3) for rotation vectors w (..., 3) in radians.

    Example:
        >>> R = so3_exp(torch.tensor([0.0, 0.0, torch.pi / 2]))
        >>> torch.allclose(R @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]),
        ...                atol=1e-6)
        True
    """
    theta_sq = (w * w).sum(-1, keepdim=True)[..., None]
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    a = torch.where(small, 1.0 - theta_sq / 6.0, theta.sin() / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - theta.cos()) / (theta * theta))
    W = hat(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a * W + b * (W @ W)


def rotation_angle(R):
    """Return the rotation angle in radians (...,) of rotation matrices R (..., 3, 3), in [0, pi].

    Uses atan2 of the sine and cosine parts, accurate near 0 and near pi.
    """
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    vee = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                       R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = vee.norm(dim=-1) / 2.0
    return torch.atan2(sin, cos)


def so3_log(R):
    """Return rotation vectors w (..., 3) in radians with so3_exp(w) = R, for R (..., 3, 3).

    The angle is in [0, pi]; near pi the axis is taken from the symmetric part of R.
    """
    theta = rotation_angle(R)[..., None]
    vee = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                       R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = theta.sin()
    small = theta < 1e-4
    scale = torch.where(small, 0.5 + theta * theta / 12.0,
                        theta / (2.0 * torch.where(small, torch.ones_like(sin), sin)))
    w_generic = scale * vee
    # Near pi: sym(R) + I = (1 + cos) I + (1 - cos) a a^T ~ 2 a a^T; take its largest column.
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    sym = (R + R.transpose(-1, -2)) / 2.0 + eye
    col_index = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
    col = torch.gather(sym, -1, col_index[..., None, None].expand(sym.shape[:-1] + (1,)))[..., 0]
    axis = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    # Sign: keep the axis that agrees with the (small) antisymmetric part.
    sign = torch.where((axis * vee).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(R.dtype)
    w_near_pi = sign * axis * theta
    near_pi = theta > torch.pi - 1e-3
    return torch.where(near_pi, w_near_pi, w_generic)


def matrix_to_quaternion_xyzw(R):
    """Return unit quaternions (..., 4) as (x, y, z, w), w >= 0, for rotation matrices (..., 3, 3).

    numpy in, numpy out (the ROS message order). Shepperd's method: built from whichever of
    x, y, z, w is largest, so it is accurate for every rotation.
    """
    m = np.asarray(R, dtype=np.float64)
    r = {(i, j): m[..., i, j] for i in range(3) for j in range(3)}
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    # 4 x^2, 4 y^2, 4 z^2, 4 w^2
    squares = np.stack([1 + 2 * r[0, 0] - trace, 1 + 2 * r[1, 1] - trace,
                        1 + 2 * r[2, 2] - trace, 1 + trace], -1)
    s = np.sqrt(np.maximum(squares, 1e-300))
    xy, xz, yz = r[0, 1] + r[1, 0], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1]
    wx, wy, wz = r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]
    candidates = np.stack([  # 4 q * (the chosen component), one row per choice
        np.stack([s[..., 0] ** 2, xy, xz, wx], -1),
        np.stack([xy, s[..., 1] ** 2, yz, wy], -1),
        np.stack([xz, yz, s[..., 2] ** 2, wz], -1),
        np.stack([wx, wy, wz, s[..., 3] ** 2], -1),
    ], -2)
    pick = squares.argmax(-1)
    q = np.take_along_axis(candidates, pick[..., None, None], -2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., 3:] < 0, -1.0, 1.0)


def quaternion_xyzw_to_matrix(q):
    """Return rotation matrices (..., 3, 3) for quaternions (..., 4) in (x, y, z, w) order (numpy).

    The quaternion is normalised first.
    """
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
