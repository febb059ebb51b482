"""Pinhole camera projection over numpy arrays, batched, with its analytic Jacobian.

Pixels follow OpenCV's convention: (u, v) = (K X) / Z, pixel (0, 0)'s centre is at (0.0, 0.0).
K is (..., 3, 3) with last row (0, 0, 1); a skew term K[0, 1] is honoured. Lens distortion is
not modelled: undistort keypoints before solving.
"""

import numpy as np
from numpy.typing import ArrayLike

MIN_DEPTH_M = 1e-6
"""Points with camera-frame depth Z at or below this (metres) count as behind the camera."""
_E3 = np.array([0.0, 0.0, 1.0])
_INTRINSICS_FIXED = np.array([[np.nan, np.nan, np.nan], [0.0, np.nan, np.nan], [0.0, 0.0, 1.0]])
"""The entries of K that intrinsics_ok requires (K[1, 0] = 0, last row (0, 0, 1)); NaN: any."""
_INTRINSICS_FREE = np.isnan(_INTRINSICS_FIXED)


def project(points: ArrayLike, K: ArrayLike) -> np.ndarray:
    """Project camera-frame points (..., N, 3) metres with K (..., 3, 3) to pixels (..., N, 2).

    Points at or behind the camera (Z <= MIN_DEPTH_M) get finite pixels of no meaning: check
    `points[..., 2] > MIN_DEPTH_M` where that matters.

    Example:
        >>> K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
        >>> project([[0.1, 0.0, 1.0]], K)
        array([[370., 240.]])
    """
    return project_with_jacobian(points, K)[0]


def project_with_jacobian(points: ArrayLike,
                          K: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project points and return (uv (..., N, 2), d uv / d X (..., N, 2, 3), in_front (..., N)).

    The Jacobian is taken with respect to the camera-frame point X = (x, y, z) in metres, in
    pixels per metre: d uv / d X = [K2 | -(uv - c)] / z = (K[:2] - uv e3^T) / z, with K2 the
    upper-left 2x2 block of K and c = (cx, cy).
    """
    points, K = np.asarray(points, dtype=np.float64), np.asarray(K, dtype=np.float64)
    homogeneous = points @ K.mT  # its third column is z: K[2] = (0, 0, 1)
    depth = homogeneous[..., 2:]
    in_front = depth > MIN_DEPTH_M
    inv_z = 1.0 / np.where(in_front, depth, 1.0)
    uv = homogeneous[..., :2] * inv_z
    jac = (K[..., None, :2, :] - uv[..., None] * _E3) * inv_z[..., None]
    return uv, jac, in_front[..., 0]


def intrinsics_ok(K: ArrayLike) -> np.ndarray:
    """Return a bool array (...,): K (..., 3, 3) is finite, fx, fy > 0, last row (0, 0, 1)."""
    K = np.asarray(K, dtype=np.float64)
    entries_ok = np.isfinite(K) & ((K == _INTRINSICS_FIXED) | _INTRINSICS_FREE)
    return entries_ok.all((-2, -1)) & (np.minimum(K[..., 0, 0], K[..., 1, 1]) > 0)


def project_object_points(points: ArrayLike, R: ArrayLike, t: ArrayLike, K: ArrayLike, *,
                          with_depth: bool = False, in_front_only: bool = False,
                          as_columns: bool = False,
                          ) -> np.ndarray | tuple[np.ndarray, ...] | None:
    """Return pixels (..., N, 2) of object points (..., N, 3) at poses R (..., 3, 3), t (..., 3).

    The one projection of object points (metres): x_cam = R x_obj + t, then K (3, 3) or
    (..., 3, 3); leading dimensions broadcast (one pose, or a batch of poses over one or a batch
    of point sets). Points at or behind the camera (Z <= MIN_DEPTH_M) get finite pixels of no
    meaning. with_depth: return (pixels, camera-frame depths Z (..., N) metres). in_front_only:
    return None when any point is at or behind the camera. as_columns: the pixels as two
    arrays (u, v), each (..., N), instead of (..., N, 2) (no copy into pairs).

    Example:
        >>> K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
        >>> project_object_points([[0.1, 0.0, 0.0]], np.eye(3), [0.0, 0.0, 1.0], K)
        array([[370., 240.]])
    """
    R, K = np.asarray(R, dtype=np.float64), np.asarray(K, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    # Coordinates as rows (..., 3, N): one BLAS product, then per-coordinate arithmetic (fast for
    # the silhouette's tens of thousands of points).
    x, y, z = np.moveaxis(R @ np.swapaxes(np.asarray(points, dtype=np.float64), -1, -2)
                          + t[..., None], -2, 0)
    in_front = z > MIN_DEPTH_M
    everywhere = bool(in_front.all())
    if in_front_only and not everywhere:
        return None
    if everywhere:
        x, y, w = x / z, y / z, 1.0
    else:  # as project: behind the camera, the homogeneous pixel divided by 1
        safe_z = np.where(in_front, z, 1.0)
        x, y, w = x / safe_z, y / safe_z, z / safe_z
    row = K[..., None, :, :] if K.ndim > 2 else K  # (..., 1, 3, 3) against (..., N)
    u, v = row[..., 0, 0] * x, row[..., 1, 0] * x  # then in place: fewer temporaries
    u += row[..., 0, 1] * y
    v += row[..., 1, 1] * y
    u += row[..., 0, 2] * w
    v += row[..., 1, 2] * w
    uv = (u, v) if as_columns else np.stack([u, v], -1)
    return (uv, z) if with_depth else uv
