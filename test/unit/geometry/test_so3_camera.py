"""SO(3) exponential/logarithm and pinhole projection with its Jacobian."""

import numpy as np
import pytest
import torch

from pose_kp_ros.geometry.camera import MIN_DEPTH_M, intrinsics_ok, project, project_with_jacobian
from pose_kp_ros.geometry.rotations import hat, rotation_angle, so3_exp, so3_log


def test_hat_is_the_cross_product():
    w, v = torch.randn(2, 5, 3, dtype=torch.float64)
    np.testing.assert_allclose((hat(w) @ v[..., None])[..., 0], torch.linalg.cross(w, v),
                               atol=1e-15)


@pytest.mark.parametrize('angle', [0.0, 1e-9, 1e-4, 0.5, 2.0, np.pi - 1e-6, np.pi])
def test_exp_log_round_trip(angle):
    axis = torch.nn.functional.normalize(torch.randn(16, 3, dtype=torch.float64), dim=-1)
    w = axis * angle
    R = so3_exp(w)
    np.testing.assert_allclose(R @ R.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-14)
    np.testing.assert_allclose(torch.linalg.det(R), 1.0, atol=1e-14)
    np.testing.assert_allclose(rotation_angle(R), angle, atol=1e-7)
    back = so3_exp(so3_log(R))
    np.testing.assert_allclose(back, R, atol=1e-7)


def test_exp_matches_matrix_exponential():
    w = torch.randn(8, 3, dtype=torch.float64)
    np.testing.assert_allclose(so3_exp(w), torch.linalg.matrix_exp(hat(w)), atol=1e-12)


def test_projection_and_jacobian_match_autograd():
    K = torch.tensor([[500.0, 1.5, 320.0], [0.0, 480.0, 240.0], [0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    X = torch.randn(3, 4, 3, dtype=torch.float64)
    X[..., 2] = X[..., 2].abs() + 0.5
    uv, jac, in_front = project_with_jacobian(X, K)
    homogeneous = X @ K.T
    np.testing.assert_allclose(uv, homogeneous[..., :2] / homogeneous[..., 2:], atol=1e-12)
    full = torch.autograd.functional.jacobian(lambda x: project(x, K), X)
    expected = torch.stack([full[b, n, :, b, n, :] for b in range(3) for n in range(4)])
    np.testing.assert_allclose(jac.reshape(12, 2, 3), expected, atol=1e-10)
    assert in_front.all()


def test_points_behind_camera_are_flagged():
    K = torch.eye(3, dtype=torch.float64)
    X = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, MIN_DEPTH_M]],
                     dtype=torch.float64)
    uv, _, in_front = project_with_jacobian(X, K)
    assert in_front.tolist() == [True, False, False] and torch.isfinite(uv).all()


def test_intrinsics_ok():
    good = torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    bad = [good * float('nan'), torch.diag(torch.tensor([0.0, 500.0, 1.0])),
           torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 2]]),
           torch.tensor([[500.0, 0, 320], [1.0, 500, 240], [0, 0, 1]])]
    assert intrinsics_ok(torch.stack([good] + bad)).tolist() == [True, False, False, False, False]
