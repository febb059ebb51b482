"""Bilinear sampling of gradient images in the silhouette refinement's compiled edge search."""

import cv2
import numpy as np

from pose_kp_ros.geometry.compiled_contour import normal_gradients


def test_normal_gradients_sample_bilinearly_with_zero_outside(rng):
    gx = rng.normal(size=(7, 9)).astype(np.float32)
    gy = rng.normal(size=(7, 9)).astype(np.float32)
    x = np.array([[2.0, 2.5, 8.0, -1.0, 9.0], [0.0, 3.25, 8.5, -0.5, 4.0]])
    y = np.array([[3.0, 3.0, 6.0, 2.0, 1.0], [0.0, 4.75, 6.0, -0.5, 7.0]])
    normals = np.array([[1.0, 0.0], [0.6, 0.8]])
    along = normal_gradients(gx, gy, x, y, normals)
    # Reference: OpenCV's bilinear remap with a zero border, in float64 (no fixed-point maps).
    sampled = [cv2.remap(g.astype(np.float64), x.astype(np.float32), y.astype(np.float32),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
               for g in (gx, gy)]
    expected = np.abs(sampled[0] * normals[:, :1] + sampled[1] * normals[:, 1:])
    np.testing.assert_allclose(along, expected, atol=1e-5)
    assert along[0, 0] == abs(gx[3, 2])                      # a pixel centre: its value
    assert along[0, 3] == 0.0 and along[0, 4] == 0.0         # a whole pixel outside: 0
    np.testing.assert_allclose(along[0, 1], abs(gx[3, 2] + gx[3, 3]) / 2, rtol=1e-6)
    np.testing.assert_allclose(along[1, 3], 0.25 * abs(0.6 * gx[0, 0] + 0.8 * gy[0, 0]),
                               rtol=1e-6)                    # a corner: a quarter of the pixel


def test_pose_jacobian_matches_the_numpy_projection_and_its_jacobian(rng):
    from pose_kp_ros.geometry.camera import project_with_jacobian
    from pose_kp_ros.geometry.compiled_contour import _pose_jacobian
    from pose_kp_ros.geometry.rotations import hat, so3_exp
    from pose_kp_ros.geometry.synthetic import LMO_K

    R, t = so3_exp([0.3, -0.2, 0.5]), np.array([0.05, -0.02, 0.7])
    for point in rng.uniform(-0.1, 0.1, (5, 3)):
        jac = np.empty((2, 6))
        u, v, z = _pose_jacobian(point, R, t, LMO_K, jac)
        rotated = R @ point
        uv, d_uv_d_x, _ = (value[0] for value in project_with_jacobian((rotated + t)[None],
                                                                         LMO_K))
        np.testing.assert_allclose([u, v, z], [*uv, rotated[2] + t[2]], rtol=1e-12)
        np.testing.assert_allclose(jac, np.hstack([d_uv_d_x, d_uv_d_x @ -hat(rotated)]),
                                   rtol=1e-10, atol=1e-9)
