"""Pinhole camera projection over numpy arrays, batched, with its analytic Jacobian.

Pixels follow OpenCV's convention: (u, v) = (K X) / Z, pixel (0, 0)'s centre is at (0.0, 0.0).
K is (..., 3, 3) with last row (0, 0, 1); a skew term K[0, 1] is honoured. Lens distortion is
not modelled: undistort keypoints before solving.
"""

import numpy as np

MIN_DEPTH_M = 1e-6
"""Points with camera-frame depth Z at or below this (metres) count as behind the camera."""
_E3 = np.array([0.0, 0.0, 1.0])


def project(points, K):
    """Project camera-frame points (..., N, 3) metres with K (..., 3, 3) to pixels (..., N, 2).

    Points at or behind the camera (Z <= MIN_DEPTH_M) get finite pixels of no meaning: check
    `points[..., 2] > MIN_DEPTH_M` where that matters.

    Example:
        >>> K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
        >>> project([[0.1, 0.0, 1.0]], K)
        array([[370., 240.]])
    """
    return project_with_jacobian(points, K)[0]


def project_with_jacobian(points, K):
    """Project points and return (uv (..., N, 2), d uv / d X (..., N, 2, 3), in_front (..., N)).

    The Jacobian is taken with respect to the camera-frame point X = (x, y, z) in metres, in
    pixels per metre: d uv / d X = [K2 | -(uv - c)] / z = (K[:2] - uv e3^T) / z, with K2 the
    upper-left 2x2 block of K and c = (cx, cy).
    """
    points, K = np.asarray(points, dtype=np.float64), np.asarray(K, dtype=np.float64)
    homogeneous = points @ np.swapaxes(K, -1, -2)  # its third column is z: K[2] = (0, 0, 1)
    depth = homogeneous[..., 2:]
    in_front = depth > MIN_DEPTH_M
    inv_z = 1.0 / np.where(in_front, depth, 1.0)
    uv = homogeneous[..., :2] * inv_z
    jac = (K[..., None, :2, :] - uv[..., None] * _E3) * inv_z[..., None]
    return uv, jac, in_front[..., 0]


def intrinsics_ok(K):
    """Return a bool array (...,): K (..., 3, 3) is finite, fx, fy > 0, last row (0, 0, 1)."""
    K = np.asarray(K, dtype=np.float64)
    return (np.isfinite(K).all((-2, -1)) & (K[..., (0, 1), (0, 1)] > 0).all(-1)
            & (K[..., (1, 2, 2, 2), (0, 0, 1, 2)] == (0.0, 0.0, 0.0, 1.0)).all(-1))


def project_object_points(points, R, t, K):
    """Return pixels (P, 2) of object points (P, 3) metres at pose R (3, 3), t (3,) (numpy).

    Returns None when any point is at or behind the camera (Z <= MIN_DEPTH_M).
    """
    # Coordinates as rows (3, P): one BLAS product, then per-coordinate arithmetic (fast for
    # the silhouette's tens of thousands of points).
    x, y, z = (np.asarray(R, dtype=np.float64) @ np.asarray(points, dtype=np.float64).T
               + np.asarray(t, dtype=np.float64).reshape(3, 1))
    if not np.all(z > MIN_DEPTH_M):
        return None
    K = np.asarray(K, dtype=np.float64)
    x, y = x / z, y / z
    return np.stack([K[0, 0] * x + K[0, 1] * y + K[0, 2], K[1, 0] * x + K[1, 1] * y + K[1, 2]], 1)
