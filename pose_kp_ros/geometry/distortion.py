"""Lens distortion: map measured (distorted) pixels to where a pinhole camera would see them.

The solver assumes a pinhole camera `K`. When the image is not rectified, keypoints found in it are
undistorted first with the camera's distortion model, keeping `K` as the new camera matrix, so the
fit runs unchanged. Models follow sensor_msgs/CameraInfo (REP 104): 'plumb_bob' (k1 k2 p1 p2 k3),
'rational_polynomial' (k1 k2 p1 p2 k3 k4 k5 k6) and 'equidistant' (fisheye k1 k2 k3 k4).
"""

import cv2
import numpy as np
from numpy.typing import ArrayLike

SUPPORTED_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')


class DistortionError(ValueError):
    """A distortion model or coefficient vector that cannot be used (the message says why)."""


def has_distortion(D: ArrayLike) -> bool:
    """Return True when any distortion coefficient of D (k,) is non-zero."""
    return bool(np.any(np.asarray(D, dtype=np.float64) != 0.0))


def check_distortion(model: str, D: ArrayLike) -> np.ndarray:
    """Return D as float64 (k,) after checking it suits `model`; raise DistortionError if not."""
    D = np.asarray(D, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(D)):
        raise DistortionError(f'distortion coefficients are not finite: {D.tolist()}')
    if not has_distortion(D):
        return D
    if model not in SUPPORTED_MODELS:
        raise DistortionError(f"unsupported distortion model '{model}' "
                              f"(supported: {', '.join(SUPPORTED_MODELS)})")
    counts = {'plumb_bob': (4, 5), 'rational_polynomial': (8,), 'equidistant': (4,)}[model]
    if D.size not in counts and not (model == 'rational_polynomial' and D.size in (12, 14)):
        raise DistortionError(f"'{model}' needs {' or '.join(map(str, counts))} coefficients, "
                              f'got {D.size}')
    return D


def undistort_pixels(uv: ArrayLike, K: ArrayLike, D: ArrayLike, model: str) -> np.ndarray:
    """Return pinhole pixels (..., 2) for distorted pixels `uv` (..., 2) of camera K (3, 3), D.

    Non-finite input points stay non-finite; with all-zero D the points are returned unchanged.
    """
    uv = np.asarray(uv, dtype=np.float64)
    D = check_distortion(model, D)
    if not has_distortion(D):
        return uv.copy()
    K = np.asarray(K, dtype=np.float64)
    flat = uv.reshape(-1, 1, 2)
    finite = np.all(np.isfinite(flat), axis=-1)[:, 0]
    out = np.full_like(flat, np.nan)
    if finite.any():
        points = np.ascontiguousarray(flat[finite])
        if model == 'equidistant':
            out[finite] = cv2.fisheye.undistortPoints(points, K, D, P=K)
        else:
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
            if hasattr(cv2, 'undistortPointsIter'):  # OpenCV 4.x
                out[finite] = cv2.undistortPointsIter(points, K, D, None, K, criteria)
            else:  # OpenCV 5 folded the iteration criteria into undistortPoints
                out[finite] = cv2.undistortPoints(points, K, D, R=None, P=K, criteria=criteria)
    return out.reshape(uv.shape)


def distort_pixels(uv: ArrayLike, K: ArrayLike, D: ArrayLike, model: str) -> np.ndarray:
    """Return distorted pixels (..., 2) for pinhole pixels `uv` (..., 2); inverts undistort_pixels.

    With all-zero D the points are returned unchanged.
    """
    uv = np.asarray(uv, dtype=np.float64)
    D = check_distortion(model, D)
    if not has_distortion(D):
        return uv.copy()
    K = np.asarray(K, dtype=np.float64)
    flat = uv.reshape(-1, 2)
    normalised = np.stack([(flat[:, 0] - K[0, 2]) / K[0, 0], (flat[:, 1] - K[1, 2]) / K[1, 1],
                           np.ones(len(flat))], 1)[:, None, :]
    if model == 'equidistant':
        out = cv2.fisheye.distortPoints(np.ascontiguousarray(normalised[:, :, :2]), K, D)
    else:
        out, _ = cv2.projectPoints(normalised, np.zeros(3), np.zeros(3), K, D)
    return out.reshape(uv.shape)
