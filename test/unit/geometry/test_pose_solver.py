"""Behaviour of solve_pose: recovery, batching, dtypes, shape, warm start, outliers, bad input."""

import numpy as np
import pytest
import torch

from pose_kp_ros import ObjectModel, PoseResult, solve_pose
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.metrics import rotation_error_deg, translation_error
from pose_kp_ros.geometry.rotations import so3_exp
from pose_kp_ros.geometry.synthetic import LMO_K, random_keypoint_model, random_poses


def _noisy_problem(rng, model, count, noise_px=1.0):
    R, t = random_poses(rng, count)
    noise = rng.normal(0.0, noise_px, (count, model.num_keypoints, 2))
    uv = project_object_points(model.keypoints, R, t, LMO_K) + noise
    return R, t, uv, np.ones((count, model.num_keypoints))


def _perturbed(result, rng, angle_rad=0.03, shift_m=0.01):
    """Return a PoseResult like `result` moved by a small random motion (a previous frame)."""
    w = rng.normal(size=(len(result.R), 3))
    w *= angle_rad / np.linalg.norm(w, axis=1, keepdims=True)
    R = so3_exp(w) @ result.R
    t = result.t + rng.normal(size=result.t.shape) * shift_m / np.sqrt(3)
    return PoseResult(R, t, result.coeffs, result.cost, result.rms_px, result.iterations,
                      result.valid, result.covariance)


@pytest.mark.parametrize('robust', ['huber', 'cauchy', None])
def test_exact_recovery_on_noiseless_data(rng, model, robust):
    R, t = random_poses(rng, 32)
    uv = project_object_points(model.keypoints, R, t, LMO_K)
    result = solve_pose(uv, np.ones((32, 10)), LMO_K, model, robust=robust)
    assert result.valid.all()
    np.testing.assert_allclose(result.R, R, atol=1e-8)
    np.testing.assert_allclose(result.t, t, atol=1e-8)
    assert result.rms_px.max() < 1e-6
    assert result.coeffs.shape == (32, 0)


def test_result_kinds_and_shapes(rng, model):
    R, t, uv, conf = _noisy_problem(rng, model, 3)
    as_numpy = solve_pose(uv, conf, LMO_K, model)
    assert isinstance(as_numpy.R, np.ndarray) and as_numpy.R.shape == (3, 3, 3)
    assert as_numpy.covariance.shape == (3, 6, 6) and as_numpy.valid.dtype == bool
    as_torch = solve_pose(torch.as_tensor(uv), torch.as_tensor(conf), torch.as_tensor(LMO_K),
                          model)
    assert isinstance(as_torch.t, torch.Tensor) and as_torch.t.dtype == torch.float64
    np.testing.assert_allclose(as_torch.t.numpy(), as_numpy.t, atol=1e-12)
    single = solve_pose(uv[0], conf[0], LMO_K, model)
    assert single.R.shape == (3, 3) and single.t.shape == (3,) and single.valid.shape == ()
    np.testing.assert_allclose(single.t, as_numpy.t[0], atol=1e-12)
    per_problem_K = solve_pose(uv, conf, np.repeat(LMO_K[None], 3, 0), model)
    np.testing.assert_allclose(per_problem_K.R, as_numpy.R, atol=1e-12)
    ones = solve_pose(uv, None, LMO_K, model)
    np.testing.assert_allclose(ones.t, as_numpy.t, atol=1e-12)


def test_batched_equals_one_by_one(rng, model):
    R, t, uv, conf = _noisy_problem(rng, model, 12)
    conf = rng.uniform(0.3, 1.0, conf.shape)
    batched = solve_pose(uv, conf, LMO_K, model)
    for b in range(12):
        alone = solve_pose(uv[b:b + 1], conf[b:b + 1], LMO_K, model)
        np.testing.assert_allclose(alone.R[0], batched.R[b], atol=1e-9)
        np.testing.assert_allclose(alone.t[0], batched.t[b], atol=1e-9)
        np.testing.assert_allclose(alone.covariance[0], batched.covariance[b], rtol=1e-6,
                                   atol=1e-15)
        assert alone.iterations[0] == batched.iterations[b]


def test_float32_agrees_with_float64(rng, model):
    R, t, uv, conf = _noisy_problem(rng, model, 16)
    r64 = solve_pose(uv, conf, LMO_K, model)
    r32 = solve_pose(torch.as_tensor(uv), torch.as_tensor(conf), LMO_K, model,
                     dtype=torch.float32)
    assert r32.R.dtype == torch.float32 and r32.valid.all()
    assert rotation_error_deg(r32.R.numpy(), r64.R).max() < 0.01
    assert translation_error(r32.t.numpy(), r64.t).max() < 1e-4
    np.testing.assert_allclose(r32.rms_px.numpy(), r64.rms_px, rtol=1e-3)


def test_shape_coefficients_are_recovered(rng):
    # A basis without a uniform-scale mode: shape and depth are then both observable (with a
    # scale mode they are not, see test_shape_basis.py).
    rigid = random_keypoint_model(rng, 10)
    basis = rng.normal(size=(2, 10, 3)) * 0.02
    model = ObjectModel('deformable', rigid.keypoint_names, rigid.keypoints, basis=basis,
                        prior_scale=[1.0, 1.0], diameter=0.3)
    coeffs = rng.normal(size=(8, 2))
    R, t = random_poses(rng, 8, depth_m=(0.4, 0.6))
    uv = project_object_points(model.shape(coeffs), R, t, LMO_K)
    result = solve_pose(uv, np.ones((8, 10)), LMO_K, model, shape_prior_weight=0.0,
                        tolerance=1e-12)
    assert result.valid.all()
    np.testing.assert_allclose(result.coeffs, coeffs, atol=1e-6)
    np.testing.assert_allclose(result.t, t, atol=1e-8)


def test_shape_prior_pulls_towards_mean(rng):
    category = ObjectModel.from_yaml('objects/box_category.yaml')
    R, t = random_poses(rng, 4, depth_m=(0.5, 0.8))
    coeffs = np.tile(category.prior_scale, (4, 1))
    uv = project_object_points(category.shape(coeffs), R, t, LMO_K) + rng.normal(0, 1.0, (4, 8, 2))
    weak = solve_pose(uv, np.ones((4, 8)), LMO_K, category, shape_prior_weight=1e-6)
    strong = solve_pose(uv, np.ones((4, 8)), LMO_K, category, shape_prior_weight=1e6)
    assert np.abs(strong.coeffs).max() < 0.1 * np.abs(weak.coeffs).max()


def test_warm_start_converges_in_few_iterations(rng, model):
    R, t, uv, conf = _noisy_problem(rng, model, 64)
    cold = solve_pose(uv, conf, LMO_K, model)
    warm = solve_pose(uv, conf, LMO_K, model, init=_perturbed(cold, rng))
    assert warm.valid.all()
    assert warm.iterations.max() <= 4
    assert rotation_error_deg(warm.R, cold.R).max() < 0.01
    assert translation_error(warm.t, cold.t).max() < 1e-4


def test_warm_start_broadcasts_a_single_previous_result(rng, model):
    R, t = random_poses(rng, 1)
    uv = project_object_points(model.keypoints, R, t, LMO_K)
    cold = solve_pose(uv[0], np.ones(10), LMO_K, model)
    warm = solve_pose(np.repeat(uv, 3, 0), np.ones((3, 10)), LMO_K, model, init=cold)
    np.testing.assert_allclose(warm.t, np.repeat(t, 3, 0), atol=1e-8)


def test_bad_warm_start_falls_back_to_closed_form(rng, model):
    R, t, uv, conf = _noisy_problem(rng, model, 8)
    flipped = PoseResult(R=np.tile(np.diag([1.0, -1.0, -1.0]), (8, 1, 1)) @ R, t=t * 1.5,
                         coeffs=np.zeros((8, 0)), cost=None, rms_px=None, iterations=None,
                         valid=np.ones(8, bool), covariance=None)
    warm = solve_pose(uv, conf, LMO_K, model, init=flipped)
    assert warm.valid.all()
    assert rotation_error_deg(warm.R, R).max() < 2.0


def test_confidence_power_follows_noise_that_grows_as_confidence_drops(rng, model):
    """Weights conf ** 4 beat plain conf weights when noise grows as confidence drops.

    Keypoint noise is 0.5 px at conf 0.9 and 4 px at conf 0.45 (a trained network's shape), for
    which conf ** 4 is close to inverse-variance weighting.
    """
    R, t = random_poses(rng, 64)
    conf = np.where(rng.uniform(size=(64, 10)) < 0.4, 0.45, 0.9)
    sigma = np.where(conf > 0.5, 0.5, 4.0)[..., None]
    uv = project_object_points(model.keypoints, R, t, LMO_K) + rng.normal(size=(64, 10, 2)) * sigma
    plain = solve_pose(uv, conf, LMO_K, model, robust=None)
    default = solve_pose(uv, conf, LMO_K, model, robust=None, confidence_power=1.0)
    np.testing.assert_array_equal(plain.t, default.t)
    weighted = solve_pose(uv, conf, LMO_K, model, robust=None, confidence_power=4.0)
    assert weighted.valid.all()
    assert (np.median(translation_error(weighted.t, t)) <
            0.8 * np.median(translation_error(plain.t, t)))
    with pytest.raises(ValueError, match='confidence_power'):
        solve_pose(uv, conf, LMO_K, model, confidence_power=0.0)


def test_low_confidence_outliers_barely_hurt(rng, model):
    R, t, uv, conf = _noisy_problem(rng, model, 64)
    clean = solve_pose(uv, conf, LMO_K, model)
    offsets = rng.uniform(30.0, 80.0, (64, 2, 1)) * rng.choice([-1.0, 1.0], (64, 2, 2))
    uv[:, :2] += offsets
    conf[:, :2] = 0.05
    for robust in ('huber', None):
        hurt = solve_pose(uv, conf, LMO_K, model, robust=robust)
        assert hurt.valid.all()
        median_hurt = np.median(rotation_error_deg(hurt.R, R))
        extra = median_hurt - np.median(rotation_error_deg(clean.R, R))
        max_median, max_extra = (1.0, 0.2) if robust else (3.0, 2.0)
        assert median_hurt < max_median and extra < max_extra


def test_covariance_matches_monte_carlo_spread(model):
    rng = np.random.default_rng(5)
    R, t = random_poses(rng, 1)
    uv = project_object_points(model.keypoints, R, t, LMO_K) + rng.normal(0.0, 1.0, (400, 10, 2))
    result = solve_pose(uv, np.ones((400, 10)), LMO_K, model, robust=None)
    cov = result.covariance
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-15)
    assert (np.linalg.eigvalsh(cov) > 0).all()
    empirical_t = np.std(result.t, axis=0)
    predicted_t = np.sqrt(np.median(np.diagonal(cov, axis1=1, axis2=2), axis=0))[:3]
    np.testing.assert_allclose(empirical_t, predicted_t, rtol=0.25)
    w = np.stack([np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / 2
                  for m in result.R @ R[0].T])
    predicted_w = np.sqrt(np.median(np.diagonal(cov, axis1=1, axis2=2), axis=0))[3:]
    np.testing.assert_allclose(np.std(w, axis=0), predicted_w, rtol=0.25)


def _degenerate_cases(model, rng):
    R, t = random_poses(rng, 1)
    uv = project_object_points(model.keypoints, R, t, LMO_K)[0]
    conf = np.ones(10)
    few = conf.copy()
    few[3:] = 0.0
    nan_uv = uv.copy()
    nan_uv[:7] = np.nan
    inf_uv = uv.copy()
    inf_uv[:, 0] = np.inf
    nan_conf = np.full(10, np.nan)
    bad_Ks = [np.full((3, 3), np.nan), np.diag([-500.0, 500.0, 1.0]),
              np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 0]])]
    cases = [('three usable keypoints', uv, few, LMO_K), ('NaN pixels', nan_uv, conf, LMO_K),
             ('inf pixels', inf_uv, conf, LMO_K), ('NaN confidences', uv, nan_conf, LMO_K),
             ('negative confidences', uv, -conf, LMO_K)]
    cases += [(f'bad K {i}', uv, conf, K) for i, K in enumerate(bad_Ks)]
    return cases, uv


def test_degenerate_inputs_give_invalid_not_errors(rng, model):
    cases, good_uv = _degenerate_cases(model, rng)
    names = [name for name, *_ in cases]
    uv = np.stack([c[1] for c in cases] + [good_uv])
    conf = np.stack([c[2] for c in cases] + [np.ones(10)])
    K = np.stack([c[3] for c in cases] + [LMO_K])
    result = solve_pose(uv, conf, K, model)
    assert not result.valid[:-1].any(), [n for n, v in zip(names, result.valid) if v]
    assert result.valid[-1] and np.isfinite(result.covariance[-1]).all()
    assert np.isnan(result.t[:-1]).all() and np.isnan(result.R[:-1]).all()


def test_collinear_layout_is_invalid(rng):
    line = np.outer(np.linspace(-0.1, 0.1, 6), [1.0, 0.5, 0.2])
    model = ObjectModel('stick', [f'k{i}' for i in range(6)], line, diameter=0.25)
    R, t = random_poses(rng, 2)
    result = solve_pose(project_object_points(line, R, t, LMO_K), np.ones((2, 6)), LMO_K, model)
    assert not result.valid.any()
    # Only the collinear subset usable in an otherwise good model: invalid too.
    good = random_keypoint_model(rng, 8)
    points = good.keypoints.copy()
    points[:4] = line[:4]
    model = ObjectModel('partly_line', good.keypoint_names, points, diameter=0.3)
    conf = np.ones((2, 8))
    conf[:, 4:] = 0.0
    uv = project_object_points(points, R, t, LMO_K)
    assert not solve_pose(uv, conf, LMO_K, model).valid.any()


def test_points_behind_the_camera_are_invalid(rng, model):
    R, t = random_poses(rng, 2)
    uv = project_object_points(model.keypoints, R, t, LMO_K)
    behind = PoseResult(R=R, t=-t, coeffs=np.zeros((2, 0)), cost=None, rms_px=None,
                        iterations=None, valid=np.ones(2, bool), covariance=None)
    stuck = solve_pose(uv, np.ones((2, 10)), LMO_K, model, init=behind,
                       fallback_rms_px=np.inf)
    assert not stuck.valid.any()
    rescued = solve_pose(uv, np.ones((2, 10)), LMO_K, model, init=behind)
    assert rescued.valid.all()
    np.testing.assert_allclose(rescued.t, t, atol=1e-8)


def test_wrong_argument_shapes_raise_value_error(model):
    with pytest.raises(ValueError, match='uv'):
        solve_pose(np.zeros((2, 9, 2)), np.ones((2, 9)), LMO_K, model)
    with pytest.raises(ValueError, match='conf'):
        solve_pose(np.zeros((2, 10, 2)), np.ones((3, 10)), LMO_K, model)
    with pytest.raises(ValueError, match='K'):
        solve_pose(np.zeros((2, 10, 2)), np.ones((2, 10)), np.eye(4), model)
    with pytest.raises(ValueError, match='robust'):
        solve_pose(np.zeros((2, 10, 2)), np.ones((2, 10)), LMO_K, model, robust='tukey')


def test_compiled_linear_solve_matches_numpy_linalg_and_singular_systems_are_nan(rng):
    from pose_kp_ros.geometry.solver.compiled_fit import _solve
    A = rng.normal(size=(3, 6, 6))
    A[1, 0, 0] = 0.0  # needs a row exchange
    for matrix in A:
        B = rng.normal(size=(6, 2))
        np.testing.assert_allclose(_solve(matrix, B), np.linalg.solve(matrix, B), rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(_solve(matrix, np.eye(6)), np.linalg.inv(matrix),
                                   rtol=1e-10, atol=1e-12)
    singular = A[0].copy()
    singular[3] = 2.0 * singular[1]
    singular[:, 5] = 0.0
    assert np.isnan(_solve(singular, np.ones((6, 1)))).all()
    assert np.isnan(_solve(np.zeros((6, 6)), np.ones((6, 1)))).all()
