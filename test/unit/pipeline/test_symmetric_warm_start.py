"""Warm starts of symmetric objects move to the equivalent pose the keypoint network shows."""

from dataclasses import replace
import math

import numpy as np

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import so3_exp
from pose_kp_ros.geometry.solver import solve_pose
from pose_kp_ros.geometry.symmetry import equivalent_poses, symmetry_group, view_canonical_pose
from pose_kp_ros.pipeline.symmetric_poses import warm_start_equivalent

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])


def test_a_warm_start_from_the_other_equivalent_fits_the_network_keypoints(repo_root):
    """The previous frame's pose, published as the other equivalent, starts the fit right."""
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'eggbox.yaml')
    group = symmetry_group(model.symmetries)
    rng = np.random.default_rng(11)
    R = so3_exp(rng.normal(0, 1.5, (8, 3)))
    t = np.column_stack([rng.uniform(-0.1, 0.1, (8, 2)), rng.uniform(0.6, 1.0, 8)])
    R, t = view_canonical_pose(R, t, group)              # the pose the network's keypoints show
    uv = project_object_points(model.keypoints, R, t, K)
    previous = so3_exp(rng.normal(0, 0.03, (8, 3))) @ R, t + 0.005
    published = [pose[:, 1] for pose in equivalent_poses(*previous, group)]   # the other one
    init = replace(solve_pose(uv, None, K, model), R=published[0], t=published[1])
    options = {'fallback_rms_px': math.inf, 'robust': None}                 # no cold restart
    as_published = solve_pose(uv, None, K, model, init=init, **options)
    assert np.median(as_published.rms_px) > 5                        # half a turn away
    moved = warm_start_equivalent(init, group)
    np.testing.assert_allclose(moved.R, previous[0], atol=1e-12)
    fitted = solve_pose(uv, None, K, model, init=moved, **options)
    assert fitted.rms_px.max() < 1e-3
    np.testing.assert_allclose(fitted.R, R, atol=1e-5)


def test_asymmetric_objects_and_missing_warm_starts_pass_through(repo_root):
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'eggbox.yaml')
    group = symmetry_group(model.symmetries)
    uv = project_object_points(model.keypoints, np.eye(3), [0.0, 0.0, 0.8], K)
    init = solve_pose(np.stack([uv, uv]), None, K, model)
    assert warm_start_equivalent(init, None) is init and warm_start_equivalent(None, group) is None
    init.R[1], init.t[1] = np.nan, np.nan                # a crop without a warm start
    moved = warm_start_equivalent(init, group)
    assert np.isnan(moved.R[1]).all() and np.isnan(moved.t[1]).all()
    assert np.isfinite(moved.R[0]).all()
