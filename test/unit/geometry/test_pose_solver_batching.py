"""A problem solved alone (the single-problem path) and inside a batch gives the same answer.

Fixed seeds: noise, outliers, low and zero confidences, warm starts good and bad, cold starts,
rigid and deformable models; every PoseResult field is compared with tight tolerances.
"""

import numpy as np
import pytest

from pose_kp_ros import ObjectModel, PoseResult, solve_pose
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.rotations import so3_exp
from pose_kp_ros.geometry.synthetic import LMO_K, random_keypoint_model, random_poses

BATCH = 12
FIELDS = ('R', 't', 'coeffs', 'cost', 'rms_px', 'covariance')


def _deformable(rng):
    rigid = random_keypoint_model(rng, 10)
    return ObjectModel('deformable', rigid.keypoint_names, rigid.keypoints,
                       basis=rng.normal(size=(2, 10, 3)) * 0.02, prior_scale=[1.0, 0.5],
                       diameter=0.3)


def _problems(kind, seed):
    """Return (model, uv (B, N, 2), conf (B, N), R, t, coeffs) of one scenario."""
    rng = np.random.default_rng(seed)
    model = _deformable(rng) if kind == 'deformable' else random_keypoint_model(rng, 10)
    coeffs = rng.normal(size=(BATCH, model.num_basis))
    R, t = random_poses(rng, BATCH)
    uv = (project_object_points(model.shape(coeffs), R, t, LMO_K)
          + rng.normal(0.0, 1.5, (BATCH, 10, 2)))
    conf = rng.uniform(0.3, 1.0, (BATCH, 10))
    if kind == 'outliers':
        sign = rng.choice([-1.0, 1.0], (BATCH, 2, 2))
        uv[:, :2] += rng.uniform(20.0, 80.0, (BATCH, 2, 1)) * sign
        conf[:, :2] = 0.05
    elif kind == 'low_confidence':
        conf = rng.uniform(0.0, 0.2, (BATCH, 10))
        conf[rng.uniform(size=conf.shape) < 0.3] = 0.0  # some rows end up with < 4 keypoints
    return model, uv, conf, R, t, coeffs


def _warm_starts(rng, R, t, coeffs):
    """Return a batched PoseResult near the truth, with a few rows unusable or far off."""
    w = rng.normal(size=(BATCH, 3))
    w *= np.radians(rng.uniform(0.5, 5.0, (BATCH, 1))) / np.linalg.norm(w, axis=1, keepdims=True)
    R0 = so3_exp(w) @ R
    t0 = t + rng.normal(0.0, 0.01, t.shape)
    valid = np.ones(BATCH, bool)
    valid[0] = False                                  # no previous pose: solved cold
    R0[1] = np.diag([1.0, -1.0, -1.0]) @ R0[1]        # flipped: falls back to the closed form
    t0[2] = -t0[2]                                    # behind the camera
    return PoseResult(R=R0, t=t0, coeffs=coeffs * 0.8, cost=None, rms_px=None, iterations=None,
                      valid=valid, covariance=None)


def _row(result, b):
    values = (getattr(result, f) for f in PoseResult.__dataclass_fields__)
    return PoseResult(*(None if value is None else np.asarray(value)[b] for value in values))


def _assert_same(alone, batched, b):
    assert alone.valid == batched.valid[b]
    assert alone.iterations == batched.iterations[b]
    for name in FIELDS:
        np.testing.assert_allclose(getattr(alone, name), getattr(batched, name)[b], rtol=1e-9,
                                   atol=1e-12, err_msg=f'{name} of row {b}')


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('kind', ['noise', 'outliers', 'low_confidence', 'deformable'])
@pytest.mark.parametrize('start', ['cold', 'warm'])
def test_alone_equals_batched(kind, start, seed):
    model, uv, conf, R, t, coeffs = _problems(kind, seed)
    init = _warm_starts(np.random.default_rng(seed + 100), R, t, coeffs) \
        if start == 'warm' else None
    batched = solve_pose(uv, conf, LMO_K, model, init=init)
    assert batched.valid.any()
    for b in range(BATCH):
        alone = solve_pose(uv[b], conf[b], LMO_K, model,
                           init=None if init is None else _row(init, b))
        _assert_same(alone, batched, b)


@pytest.mark.parametrize('batch', [1, 3, 10, 50])
def test_every_batch_size_gives_the_same_rows(batch):
    model, uv, conf, R, t, coeffs = _problems('outliers', 7)
    uv, conf = np.tile(uv, (5, 1, 1))[:batch], np.tile(conf, (5, 1))[:batch]
    reference = solve_pose(np.tile(uv, (2, 1, 1)), np.tile(conf, (2, 1)), LMO_K, model)
    result = solve_pose(uv, conf, LMO_K, model)
    for b in range(batch):
        _assert_same(_row(result, b), reference, b)


def test_rows_taken_stacked_and_set_back():
    """result_row, stacked_results (None rows: no warm start) and set_rows round-trip."""
    from pose_kp_ros.geometry.solver import result_row, set_rows, stacked_results
    model, uv, conf, *_ = _problems('deformable', 3)
    result = solve_pose(uv, conf, LMO_K, model)
    assert stacked_results([None, None], model.num_basis) is None
    stacked = stacked_results([result_row(result, 2), None, result_row(result, 0)],
                              model.num_basis)
    assert list(stacked.valid) == [result.valid[2], False, result.valid[0]]
    assert np.isnan(stacked.R[1]).all() and stacked.coeffs.shape == (3, model.num_basis)
    cold = solve_pose(uv[[2, 1, 0]], conf[[2, 1, 0]], LMO_K, model)
    warm = solve_pose(uv[[2, 1, 0]], conf[[2, 1, 0]], LMO_K, model, init=stacked)
    _assert_same(result_row(cold, 1), warm, 1)  # the None row was solved cold
    set_rows(result, [0, 2], stacked, [0, 2])  # rows 0 and 2 swapped
    _assert_same(result_row(stacked, 0), result, 0)
    _assert_same(result_row(stacked, 2), result, 2)


def test_completed_options_are_the_solvers_defaults_and_the_given_ones():
    from pose_kp_ros.geometry.solver import OPTION_CHECKS, completed_options
    options = completed_options({'robust_scale_px': 2.0})
    assert set(options) == set(OPTION_CHECKS)
    assert options['robust_scale_px'] == 2.0 and options['confidence_power'] == 1.0
