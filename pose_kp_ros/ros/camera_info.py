"""sensor_msgs/CameraInfo -> the pinhole intrinsics the pipeline uses, with validation.

Two cases (REP 104):
- rectified input (`image_rect*`): pixels are already pinhole; use P's left 3x3 (or K when
  `use_projection` is false) and no distortion;
- raw input (`image_raw`): use K and D; keypoints are undistorted before the fit
  (`pose_kp_ros.geometry.distortion.undistort_pixels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pose_kp_ros.geometry.distortion import DistortionError, check_distortion, has_distortion

if TYPE_CHECKING:
    from sensor_msgs.msg import CameraInfo


class CameraInfoError(ValueError):
    """A CameraInfo that cannot be used (zero/NaN intrinsics, bad distortion, ...)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera of one image stream.

    Attributes:
        K: (3, 3) float64 camera matrix of the pixels the keypoints are measured in.
        D: (k,) float64 distortion coefficients still present in the image (empty if none).
        distortion_model: REP 104 model name of D.
        width, height: image size in pixels (0 when the CameraInfo leaves it unset).
    """

    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    width: int
    height: int

    @property
    def needs_undistortion(self) -> bool:
        """Return True when keypoints must be undistorted before the pinhole fit."""
        return has_distortion(self.D)


def intrinsics_from_camera_info(msg: CameraInfo, rectified: bool = False,
                                use_projection: bool = True) -> CameraIntrinsics:
    """Return CameraIntrinsics for a CameraInfo; raise CameraInfoError with the reason if unusable.

    `rectified` says the image topic carries rectified pixels; `use_projection` then picks P's
    left 3x3 (what image_proc's rectification produces) rather than K.
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    source = 'K'
    if rectified and use_projection:
        if np.all(P == 0.0):
            raise CameraInfoError('P is all zeros but rectified input with use_projection was '
                                  'asked: set use_projection false or publish P')
        K, source = P[:, :3].copy(), 'P'
    fx, fy = K[0, 0], K[1, 1]
    if not np.all(np.isfinite(K)):
        raise CameraInfoError(f'{source} has non-finite values: {K.reshape(-1).tolist()}')
    if fx <= 0.0 or fy <= 0.0:
        raise CameraInfoError(f'{source} has fx={fx:g}, fy={fy:g}: focal lengths must be > 0 '
                              '(is the camera calibrated?)')
    if K[2, 2] != 1.0 or K[1, 0] != 0.0 or K[2, 0] != 0.0 or K[2, 1] != 0.0:
        raise CameraInfoError(f'{source} is not a camera matrix [[fx s cx] [0 fy cy] [0 0 1]]: '
                              f'{K.reshape(-1).tolist()}')
    if rectified:
        D = np.zeros(0)
    else:
        try:
            D = check_distortion(msg.distortion_model, msg.d)
        except DistortionError as error:
            raise CameraInfoError(str(error)) from None
    return CameraIntrinsics(K=K, D=D, distortion_model=msg.distortion_model,
                            width=int(msg.width), height=int(msg.height))
