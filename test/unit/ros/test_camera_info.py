"""CameraInfo -> intrinsics: rectified vs raw, P vs K, undistortion, and every bad-input error."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from pose_kp_ros.geometry.distortion import DistortionError, undistort_pixels
from pose_kp_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info

K_LMO = [572.4114, 0.0, 325.2611, 0.0, 573.57043, 242.04899, 0.0, 0.0, 1.0]


def camera_info(k=K_LMO, d=(0.1, -0.2, 0.001, 0.002, 0.05), model='plumb_bob', p=None):
    msg = CameraInfo(width=640, height=480, distortion_model=model)
    msg.k = list(map(float, k))
    msg.d = list(map(float, d))
    msg.p = list(map(float, p)) if p is not None else [
        600.0, 0.0, 320.0, 0.0, 0.0, 600.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def test_rectified_uses_p_and_no_distortion():
    cam = intrinsics_from_camera_info(camera_info(), rectified=True, use_projection=True)
    assert cam.K[0, 0] == 600.0 and cam.K[0, 2] == 320.0
    assert not cam.needs_undistortion


def test_rectified_can_use_k():
    cam = intrinsics_from_camera_info(camera_info(), rectified=True, use_projection=False)
    assert cam.K[0, 0] == pytest.approx(572.4114)


def test_raw_keeps_k_and_distortion():
    cam = intrinsics_from_camera_info(camera_info(), rectified=False)
    assert cam.K[1, 1] == pytest.approx(573.57043)
    assert cam.needs_undistortion and cam.D.shape == (5,)


@pytest.mark.parametrize('model, d', [
    ('plumb_bob', (0.1, -0.2, 0.001, 0.002, 0.05)),
    ('rational_polynomial', (0.1, -0.2, 0.001, 0.002, 0.05, 0.01, -0.01, 0.002)),
])
def test_undistort_inverts_opencv_projection(model, d):
    K = np.array(K_LMO).reshape(3, 3)
    rng = np.random.default_rng(1)
    points = np.c_[rng.uniform(-0.3, 0.3, (50, 2)), rng.uniform(0.6, 1.4, 50)]
    ideal = (points[:, :2] / points[:, 2:]) @ K[:2, :2].T + K[:2, 2]
    distorted = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, np.array(d))[0][:, 0]
    assert np.abs(distorted - ideal).max() > 1.0  # the distortion is real
    recovered = undistort_pixels(distorted, K, d, model)
    assert np.abs(recovered - ideal).max() < 1e-4


def test_undistort_fisheye():
    K = np.array(K_LMO).reshape(3, 3)
    d = np.array([0.05, -0.01, 0.002, -0.001])
    points = np.array([[0.1, -0.05, 1.0], [-0.2, 0.15, 0.8]]).reshape(-1, 1, 3)
    distorted = cv2.fisheye.projectPoints(points, np.zeros(3), np.zeros(3), K, d)[0][:, 0]
    ideal = (points[:, 0, :2] / points[:, 0, 2:]) @ K[:2, :2].T + K[:2, 2]
    assert np.abs(undistort_pixels(distorted, K, d, 'equidistant') - ideal).max() < 1e-3


def test_undistort_keeps_batch_shape_and_nan():
    uv = np.full((2, 3, 2), 100.0)
    uv[1, 2] = np.nan
    out = undistort_pixels(uv, np.array(K_LMO).reshape(3, 3), (0.1, 0, 0, 0, 0), 'plumb_bob')
    assert out.shape == (2, 3, 2) and np.isnan(out[1, 2]).all() and np.isfinite(out[0]).all()


@pytest.mark.parametrize('kwargs, message', [
    ({'k': [0.0] * 9}, 'focal lengths must be > 0'),
    ({'k': [np.nan] + K_LMO[1:]}, 'non-finite'),
    ({'k': K_LMO[:8] + [0.0]}, 'not a camera matrix'),
    ({'model': 'kannala_brandt'}, "unsupported distortion model 'kannala_brandt'"),
    ({'d': (0.1, 0.2)}, 'needs 4 or 5 coefficients'),
    ({'d': (np.inf, 0, 0, 0, 0)}, 'not finite'),
])
def test_bad_camera_info_raises_clear_error(kwargs, message):
    with pytest.raises(CameraInfoError, match=message):
        intrinsics_from_camera_info(camera_info(**kwargs), rectified=False)


def test_rectified_with_empty_p_is_an_error():
    with pytest.raises(CameraInfoError, match='P is all zeros'):
        intrinsics_from_camera_info(camera_info(p=[0.0] * 12), rectified=True)


def test_distortion_error_is_a_value_error():
    with pytest.raises(DistortionError):
        undistort_pixels(np.zeros((1, 2)), np.eye(3), (1, 0, 0, 0, 0), 'unknown')
