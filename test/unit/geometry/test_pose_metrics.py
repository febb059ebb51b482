"""Pose-error metrics against hand-computed values."""

import numpy as np
import pytest

from pose_kp_ros.geometry.metrics import (
    accuracy_auc,
    accuracy_under,
    add,
    add_s,
    projection_error_2d,
    rotation_error_deg,
    translation_error,
)

RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
SQUARE = np.array([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0], [0, -1.0, 0]]) * 0.1


def test_rotation_and_translation_errors():
    R_est = np.stack([np.eye(3), RZ90, RZ90 @ RZ90])
    assert rotation_error_deg(R_est, np.eye(3)[None]) == pytest.approx([0.0, 90.0, 180.0])
    small = np.array([[1.0, -1e-6, 0], [1e-6, 1.0, 0], [0, 0, 1.0]])
    assert rotation_error_deg(small[None], np.eye(3)[None])[0] == \
        pytest.approx(np.degrees(1e-6), rel=1e-3)
    assert translation_error([[3.0, 4.0, 0.0]], [[0.0, 0.0, 0.0]]) == pytest.approx([5.0])


def test_add_and_add_s():
    t0 = np.array([[0.0, 0.0, 1.0]])
    I3 = np.eye(3)[None]
    assert add(I3, t0 + [0.01, 0, 0], I3, t0, SQUARE) == pytest.approx([0.01])
    # A 90 degree turn maps the square onto itself: ADD-S 0, ADD = distance of a quarter turn.
    assert add_s(RZ90[None], t0, I3, t0, SQUARE) == pytest.approx([0.0], abs=1e-12)
    assert add(RZ90[None], t0, I3, t0, SQUARE) == pytest.approx([0.1 * np.sqrt(2)])
    points = np.broadcast_to(SQUARE, (2, 4, 3))
    assert add(np.stack([I3[0]] * 2), np.vstack([t0, t0]), np.stack([I3[0]] * 2),
               np.vstack([t0, t0 + [0, 0.02, 0]]), points) == pytest.approx([0.0, 0.02])


def test_add_s_is_the_mean_closest_point_distance():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.1, 0.1, (300, 3))
    R = np.stack([RZ90, np.eye(3), RZ90.T])
    t_est = np.array([[0.0, 0.0, 1.0], [0.01, 0.0, 1.0], [0.0, -0.02, 0.9]])
    t_gt = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    est = points @ np.swapaxes(R, 1, 2) + t_est[:, None]
    gt = points + t_gt[:, None]
    brute = np.linalg.norm(gt[:, :, None] - est[:, None], axis=-1).min(-1).mean(-1)
    assert add_s(R, t_est, np.eye(3)[None], t_gt, points) == pytest.approx(brute, rel=1e-12)


def test_add_s_takes_a_large_mesh():
    # 200,000 points: a pairwise distance matrix would need 960 GB; a KD-tree does not.
    points = np.random.default_rng(2).uniform(-0.1, 0.1, (200_000, 3))
    t = np.array([[0.0, 0.0, 1.0]])
    assert add_s(np.eye(3)[None], t, np.eye(3)[None], t, points) == pytest.approx([0.0])


def test_projection_error_2d():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    I3 = np.eye(3)[None]
    error = projection_error_2d(I3, [[0.01, 0, 1.0]], I3, [[0.0, 0, 1.0]], SQUARE, K)
    assert error == pytest.approx([5.0])
    batched = projection_error_2d(I3, [[0.0, 0.02, 1.0]], I3, [[0.0, 0, 1.0]], SQUARE, K[None])
    assert batched == pytest.approx([10.0])


def test_accuracy_and_auc():
    errors = np.array([0.0, 0.05, 0.1, np.nan, 0.2])
    assert accuracy_under(errors, 0.1) == pytest.approx(3 / 5)
    assert accuracy_under(errors, np.array([0, 0, 0, 1, 1])) == pytest.approx(2 / 5)
    # Exact area: mean of max(0, 1 - e / T) = (1 + 0.5 + 0 + 0 + 0) / 5.
    assert accuracy_auc(errors, 0.1) == pytest.approx(0.3)
    assert accuracy_auc([], 0.1) == 0.0 and accuracy_under([], 0.1) == 0.0
