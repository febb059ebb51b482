"""PCA shape basis: the algorithm, the build-shape-basis tool, a fit with the built category."""

import numpy as np

from pose_kp_ros import ObjectModel, solve_pose
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.rotations import random_rotations
from pose_kp_ros.geometry.shape_basis import pca_shape_basis
from pose_kp_ros.geometry.synthetic import LMO_K, random_poses
from pose_kp_ros.tools import build_shape_basis
from pose_kp_ros.tools.cli import SUBCOMMANDS


def _boxes(repo_root):
    paths = sorted((repo_root / 'objects').glob('box_*.yaml'))
    return [p for p in paths if p.name != 'box_category.yaml']


def test_pca_of_boxes_has_three_modes_and_reconstructs_inputs(repo_root):
    shapes = np.stack([ObjectModel.from_yaml(p).keypoints for p in _boxes(repo_root)])
    mean, basis, prior_scale = pca_shape_basis(shapes)
    assert basis.shape == (3, 8, 3)  # boxes vary in width, height and depth only
    assert (np.diff(prior_scale) < 0).all()
    flat = basis.reshape(3, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(3), atol=1e-12)
    coeffs = (shapes - mean).reshape(len(shapes), -1) @ flat.T
    np.testing.assert_allclose(mean + np.tensordot(coeffs, basis, 1), shapes, atol=1e-12)
    np.testing.assert_allclose(coeffs.std(0, ddof=1), prior_scale, rtol=1e-9)


def test_procrustes_alignment_removes_rigid_motion(repo_root, rng):
    shapes = np.stack([ObjectModel.from_yaml(p).keypoints for p in _boxes(repo_root)])
    moved = shapes @ np.swapaxes(random_rotations(rng, len(shapes)), 1, 2) + \
        rng.normal(size=(len(shapes), 1, 3))
    _, _, expected = pca_shape_basis(shapes)
    mean, basis, prior_scale = pca_shape_basis(moved)
    np.testing.assert_allclose(prior_scale, expected, rtol=1e-6)
    _, _, unaligned = pca_shape_basis(moved, align=False)
    assert len(unaligned) > 3


def test_tool_writes_the_committed_category(repo_root, tmp_path, capsys):
    assert 'build-shape-basis' in SUBCOMMANDS
    output = tmp_path / 'box_category.yaml'
    args = [str(p) for p in _boxes(repo_root)] + ['--name', 'box_category', '--output',
                                                  str(output)]
    assert build_shape_basis.main(args) == 0
    assert '3 basis shapes' in capsys.readouterr().out
    built = ObjectModel.from_yaml(output)
    committed = ObjectModel.from_yaml(repo_root / 'objects' / 'box_category.yaml')
    np.testing.assert_allclose(built.basis, committed.basis, atol=1e-9)
    np.testing.assert_allclose(built.keypoints, committed.keypoints, atol=1e-9)
    assert built.diameter == max(ObjectModel.from_yaml(p).diameter for p in _boxes(repo_root))


def test_tool_rejects_mismatched_keypoints(repo_root, tmp_path, capsys):
    other = tmp_path / 'other.yaml'
    ObjectModel('other', ['a', 'b', 'c', 'd'], np.eye(4, 3), diameter=1.0).to_yaml(other)
    code = build_shape_basis.main([str(_boxes(repo_root)[0]), str(other), '--name', 'x',
                                   '--output', str(tmp_path / 'out.yaml')])
    assert code == 1 and 'keypoint_names: differ' in capsys.readouterr().err


def test_solver_recovers_box_coefficients_up_to_scale(repo_root, rng):
    """Perspective images fix a shape only up to scale (s X, s t project alike).

    So the fitted box must equal the true box scaled by the fitted/true depth ratio, and the
    coefficients must be those of that scaled box; the rotation is exact.
    """
    category = ObjectModel.from_yaml(repo_root / 'objects' / 'box_category.yaml')
    true_coeffs = rng.normal(size=(6, 3)) * category.prior_scale * 0.5
    true_shapes = category.shape(true_coeffs)
    R, t = random_poses(rng, 6, depth_m=(0.5, 0.8))
    uv = project_object_points(true_shapes, R, t, LMO_K)
    result = solve_pose(uv, np.ones((6, 8)), LMO_K, category, shape_prior_weight=1e-6,
                        tolerance=1e-12)
    assert result.valid.all()
    np.testing.assert_allclose(result.R, R, atol=1e-6)
    scale = result.t[:, 2] / t[:, 2]
    np.testing.assert_allclose(result.t, t * scale[:, None], atol=1e-7)
    scaled = true_shapes * scale[:, None, None]
    expected = (scaled - category.keypoints).reshape(6, -1) @ category.basis.reshape(3, -1).T
    np.testing.assert_allclose(result.coeffs, expected, atol=1e-6)
