"""SO(3) exponential and angle, random rotations, pinhole projection with its Jacobian."""

import numpy as np
import pytest
from scipy.linalg import expm
from scipy.spatial.transform import Rotation

from pose_kp_ros.geometry.camera import (
    MIN_DEPTH_M,
    intrinsics_ok,
    project,
    project_object_points,
    project_with_jacobian,
)
from pose_kp_ros.geometry.rotations import (
    hat,
    random_rotations,
    rotation_angle,
    so3_exp,
)


def test_hat_is_the_cross_product():
    w, v = np.random.default_rng(0).normal(size=(2, 5, 3))
    np.testing.assert_allclose((hat(w) @ v[..., None])[..., 0], np.cross(w, v), atol=1e-15)


@pytest.mark.parametrize('angle', [0.0, 1e-9, 1e-4, 0.5, 2.0, np.pi - 1e-6, np.pi])
def test_exp_is_a_rotation_of_the_given_angle_and_axis(angle):
    axis = np.random.default_rng(1).normal(size=(16, 3))
    w = axis / np.linalg.norm(axis, axis=-1, keepdims=True) * angle
    R = so3_exp(w)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)
    np.testing.assert_allclose(rotation_angle(R), angle, atol=1e-7)
    np.testing.assert_allclose(R, Rotation.from_rotvec(w).as_matrix(), atol=1e-12)


def test_exp_matches_matrix_exponential():
    w = np.random.default_rng(2).normal(size=(8, 3))
    np.testing.assert_allclose(so3_exp(w), [expm(W) for W in hat(w)], atol=1e-12)


def test_projection_and_jacobian_match_finite_differences():
    K = np.array([[500.0, 1.5, 320.0], [0.0, 480.0, 240.0], [0.0, 0.0, 1.0]])
    X = np.random.default_rng(3).normal(size=(3, 4, 3))
    X[..., 2] = np.abs(X[..., 2]) + 0.5
    uv, jac, in_front = project_with_jacobian(X, K)
    homogeneous = X @ K.T
    np.testing.assert_allclose(uv, homogeneous[..., :2] / homogeneous[..., 2:], atol=1e-12)
    step = 1e-6
    central = np.stack([project(X + step * e, K) - project(X - step * e, K)
                        for e in np.eye(3)], -1) / (2 * step)
    np.testing.assert_allclose(jac, central, rtol=1e-7, atol=1e-4)
    assert in_front.all()


def test_points_behind_camera_are_flagged():
    X = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, MIN_DEPTH_M]])
    uv, _, in_front = project_with_jacobian(X, np.eye(3))
    assert in_front.tolist() == [True, False, False] and np.isfinite(uv).all()


def test_object_points_projection_batched_and_single_agree():
    """One pose at a time, a batch of poses, and project() of the posed points give one answer."""
    rng = np.random.default_rng(4)
    K = np.array([[500.0, 1.5, 320.0], [0.0, 480.0, 240.0], [0.0, 0.0, 1.0]])
    R = so3_exp(rng.normal(size=(5, 3)))
    t = rng.normal(0.0, 0.1, (5, 3)) + [0.0, 0.0, 2.0]
    points = rng.normal(0.0, 0.2, (7, 3))
    batched, depth = project_object_points(points, R, t, K, with_depth=True)
    assert batched.shape == (5, 7, 2) and depth.shape == (5, 7)
    for b in range(5):
        single = project_object_points(points, R[b], t[b], K, in_front_only=True)
        np.testing.assert_allclose(single, batched[b], rtol=0, atol=1e-9)
        np.testing.assert_allclose(project(points @ R[b].T + t[b], K), single, atol=1e-9)
        np.testing.assert_allclose(depth[b], (points @ R[b].T + t[b])[:, 2], atol=1e-15)
    per_pose_points = np.broadcast_to(points, (5, 7, 3))
    np.testing.assert_allclose(project_object_points(per_pose_points, R, t, np.stack([K] * 5)),
                               batched, atol=1e-9)


def test_object_points_behind_the_camera():
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -2.0]])
    uv = project_object_points(points, np.eye(3), [0.1, 0.2, 1.0], np.eye(3))
    np.testing.assert_allclose(uv, project(points + [0.1, 0.2, 1.0], np.eye(3)))
    assert project_object_points(points, np.eye(3), [0.1, 0.2, 1.0], np.eye(3),
                                 in_front_only=True) is None


def test_intrinsics_ok():
    good = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    bad = [good * np.nan, np.diag([0.0, 500.0, 1.0]),
           np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 2]]),
           np.array([[500.0, 0, 320], [1.0, 500, 240], [0, 0, 1]])]
    assert intrinsics_ok(np.stack([good] + bad)).tolist() == [True, False, False, False, False]


@pytest.mark.parametrize('seed', [0, 1, 7, 123])
def test_one_random_rotation_draws_what_the_renderer_always_drew(seed):
    """Count 1 equals the renderer's former sampler bit for bit (renders stay reproducible)."""
    rng, former = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(3):  # and the generator is left in the same state
        expected = Rotation.from_quat(former.normal(size=4)).as_matrix()
        np.testing.assert_array_equal(random_rotations(rng, 1)[0], expected)
    assert rng.random() == former.random()


def test_random_rotations_are_uniform_rotations():
    R = random_rotations(np.random.default_rng(2), 20000)
    assert R.shape == (20000, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # Haar measure: E[R] = 0, and the angle's density is (1 - cos a) / pi (mean pi/2 + 2/pi)
    np.testing.assert_allclose(R.mean(0), 0.0, atol=0.02)
    assert rotation_angle(R).mean() == pytest.approx(np.pi / 2 + 2 / np.pi, abs=0.02)
