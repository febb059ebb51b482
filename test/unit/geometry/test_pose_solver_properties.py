"""Property-based tests of solve_pose over random poses, layouts and confidences (hypothesis)."""

from hypothesis import assume, given, settings
from hypothesis import strategies as st
import numpy as np

from pose_kp_ros import ObjectModel, solve_pose
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.metrics import rotation_error_deg
from pose_kp_ros.geometry.synthetic import LMO_K, random_poses

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
"""Derandomized: the same examples on every run, so CI does not fail by chance on a case that
another run happened to find (the one found so far is kept as test_tiny_flat_object_far_away)."""


def _layout(seed, num_keypoints, extents):
    """Return keypoints (N, 3) uniform in a box with the given edge lengths (metres)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.5, 0.5, (num_keypoints, 3)) * np.asarray(extents)
    centred = points - points.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    assume(singular[1] > 0.05 * singular[0])  # not nearly collinear
    return ObjectModel('random', [f'k{i}' for i in range(num_keypoints)], points,
                       diameter=float(np.linalg.norm(extents)))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), num_keypoints=st.integers(6, 14),
       extents=st.tuples(*[st.floats(0.05, 0.4)] * 2, st.floats(0.0, 0.4)),
       depth=st.floats(0.3, 3.0))
def test_noiseless_problems_are_solved_exactly(seed, num_keypoints, extents, depth):
    check_noiseless_solve(_layout(seed, num_keypoints, extents), seed, depth)


def check_noiseless_solve(model, seed, depth):
    """Four noiseless problems of `model` at `depth` metres are solved exactly."""
    R, t = random_poses(np.random.default_rng(seed + 1), 4, depth_m=(depth, depth))
    uv = project_object_points(model.keypoints, R, t, LMO_K)
    conf = np.random.default_rng(seed + 2).uniform(0.1, 1.0, (4, model.num_keypoints))
    result = solve_pose(uv, conf, LMO_K, model)
    assert result.valid.all()
    assert result.rms_px.max() < 1e-4
    assert rotation_error_deg(result.R, R).max() < 1e-3
    np.testing.assert_allclose(result.t, t, atol=1e-5 * depth)


def test_tiny_flat_object_far_away():
    """Keypoints on a 6 x 5.5 cm plane, seen from 3 m, all noiseless: every problem is solved.

    Hypothesis found the case once (seed 3739604, with the former QR rotation sampler). Row 2
    here is seen 69 degrees off face-on and spans 3.1 x 2.6 px: OpenCV's SQPnP raises on image
    points this clustered (`point_coordinate_variance >= POINT_VARIANCE_THRESHOLD`); the
    solver then starts from IPPE and EPnP (start.FALLBACK_METHODS). Without them about 1.7-1.8%
    of problems with these extents at 3 m got no pose (seeds 0-2999); seed 22 is the first that
    shows it with geometry.rotations.random_rotations.
    """
    seed, extents = 22, np.array([0.0625, 0.0546875, 0.0])
    points = np.random.default_rng(seed).uniform(-0.5, 0.5, (6, 3)) * extents
    model = ObjectModel('random', [f'k{i}' for i in range(6)], points,
                        diameter=float(np.linalg.norm(extents)))
    check_noiseless_solve(model, seed, 3.0)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), num_keypoints=st.integers(4, 12),
       noise_px=st.floats(0.0, 5.0), drop=st.integers(0, 8))
def test_results_are_finite_when_valid_and_keypoint_order_does_not_matter(
        seed, num_keypoints, noise_px, drop):
    rng = np.random.default_rng(seed)
    model = _layout(seed, num_keypoints, (0.25, 0.25, 0.25))
    R, t = random_poses(rng, 3)
    uv = (project_object_points(model.keypoints, R, t, LMO_K)
          + rng.normal(0, noise_px, (3, num_keypoints, 2)))
    conf = rng.uniform(0.2, 1.0, (3, num_keypoints))
    conf[:, :drop] = 0.0
    result = solve_pose(uv, conf, LMO_K, model)
    assert (result.valid == ((conf > 0).sum(1) >= 4)).all()
    for name in ('R', 't', 'cost', 'rms_px', 'covariance'):
        assert np.isfinite(getattr(result, name)[result.valid]).all()
    order = rng.permutation(num_keypoints)
    shuffled_model = ObjectModel('random', [model.keypoint_names[i] for i in order],
                                 model.keypoints[order], diameter=model.diameter)
    shuffled = solve_pose(uv[:, order], conf[:, order], LMO_K, shuffled_model)
    assert (shuffled.valid == result.valid).all()
    # Same optimum up to the stopping tolerance: far below the estimate's own uncertainty.
    # (With 4-5 noisy keypoints several local minima compete; compare well-posed rows only.)
    both = result.valid & ((conf > 0).sum(1) >= 6)
    rotation_std_deg = np.degrees(np.sqrt(np.diagonal(result.covariance[both], axis1=1,
                                                      axis2=2)[:, 3:].max(-1)))
    difference = rotation_error_deg(shuffled.R[both], result.R[both])
    assert (difference <= 0.1 * rotation_std_deg + 1e-6).all()
