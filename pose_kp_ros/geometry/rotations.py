"""Batched SO(3) helpers over numpy arrays: skew matrices, the exp map, angles, quaternions.

Rotation vectors (axis-angle) are in radians, shape (..., 3); rotation matrices are (..., 3, 3).
Formulas: Rodrigues' rotation formula, e.g. Barfoot, "State Estimation for
Robotics" (2017), section 7.1.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

_TINY = np.finfo(np.float64).tiny
_EYE3 = np.eye(3)
_LEVI_CIVITA = np.zeros((3, 3, 3))
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _LEVI_CIVITA[_i, _j, _k], _LEVI_CIVITA[_i, _k, _j] = 1.0, -1.0
_HAT_BASIS = _LEVI_CIVITA.transpose(1, 0, 2).reshape(3, 9)
"""hat(w) = w @ _HAT_BASIS reshaped: [w]_x[j, k] = sum_i eps[j, i, k] w_i."""


def hat(w: ArrayLike) -> np.ndarray:
    """Return skew-symmetric matrices [w]_x (..., 3, 3), [w]_x v = w x v, for w (..., 3)."""
    w = np.asarray(w, dtype=np.float64)
    return (w @ _HAT_BASIS).reshape(w.shape[:-1] + (3, 3))


def so3_exp(w: ArrayLike) -> np.ndarray:
    """Return rotation matrices (..., 3, 3) for rotation vectors w (..., 3) in radians.

    R = I + (sin theta / theta) W + ((1 - cos theta) / theta^2) W^2 with W = [w]_x, written
    with the half angle h = theta / 2 (sin theta / theta = s cos h and (1 - cos theta) / theta^2
    = s^2 / 2 for s = sin h / h): accurate for small angles (sin h / h is within an ulp for any
    h > 0; h = 0 is raised to the smallest normal float, where it is exactly 1).

    Example:
        >>> R = so3_exp([0.0, 0.0, np.pi / 2])
        >>> np.allclose(R @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        True
    """
    w = np.asarray(w, dtype=np.float64)
    half = (0.5 * np.sqrt(np.vecdot(w, w)))[..., None, None]
    safe_half = np.maximum(half, _TINY)
    s = np.sin(safe_half) / safe_half
    W = hat(w)
    return _EYE3 + (s * np.cos(half)) * W + (0.5 * s * s) * (W @ W)


def _vee_of_antisymmetric_part(R):
    """Return (..., 3): the vector of R - R^T, i.e. 2 sin(theta) times the rotation axis."""
    return np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], -1)


def rotation_angle(R: ArrayLike) -> np.ndarray:
    """Return the rotation angle in radians (...,) of rotation matrices R (..., 3, 3), in [0, pi].

    Uses atan2 of the sine and cosine parts, accurate near 0 and near pi.
    """
    R = np.asarray(R, dtype=np.float64)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    sin = np.linalg.norm(_vee_of_antisymmetric_part(R), axis=-1) / 2.0
    return np.arctan2(sin, cos)


def matrix_to_quaternion_xyzw(R: ArrayLike) -> np.ndarray:
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


def quaternion_xyzw_to_matrix(q: ArrayLike) -> np.ndarray:
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


def random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """Return `count` rotations (count, 3, 3) drawn uniformly on SO(3).

    Normalised Gaussian quaternions: a normalised 4-D Gaussian vector is uniform on the unit
    sphere S^3 (Muller, 1959), and uniform unit quaternions give uniform (Haar) rotations.
    Draws rng.normal(size=(count, 4)): count 1 draws exactly what rng.normal(size=4) would.

    Example:
        >>> R = random_rotations(np.random.default_rng(0), 2)
        >>> R.shape, bool(np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3)))
        ((2, 3, 3), True)
    """
    return Rotation.from_quat(rng.normal(size=(count, 4))).as_matrix()
