"""Fuzz solve_pose with poisoned values: NaN / inf / huge / degenerate uv, conf, K and init.

test/unit/geometry/test_pose_solver_properties.py covers clean random problems; here every batch
mixes clean rows with rows poisoned in one way, and checks the contract: no exception, a valid row
is finite with a rotation, an invalid row is NaN everywhere, and poisoned rows do not change the
clean rows' answers.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np

from pose_kp_ros import solve_pose
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.solver import PoseResult
from pose_kp_ros.geometry.synthetic import (
    LMO_K,
    random_keypoint_model,
    random_poses,
)

BOUNDARY = 'pose solver'
MODEL = random_keypoint_model(np.random.default_rng(7))
N = MODEL.num_keypoints
bad = st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, 1e30, 0.0, -1.0, 5e-324])
FIELDS = ('R', 't', 'coeffs', 'cost', 'rms_px', 'covariance')


def _clean(seed, batch):
    """Return uv (B, N, 2), conf (B, N) of noiseless problems in the LM-O camera."""
    rng = np.random.default_rng(seed)
    R, t = random_poses(rng, batch)
    return project_object_points(MODEL.keypoints, R, t, LMO_K), rng.uniform(0.3, 1.0, (batch, N))


@st.composite
def poisons(draw):
    """Return (kind, where, value): how one row of a batch is broken."""
    kind = draw(st.sampled_from(['uv', 'conf', 'K', 'K_row', 'few', 'all_uv']))
    where = draw(st.lists(st.integers(0, N - 1), min_size=1, max_size=N, unique=True))
    return kind, where, draw(bad)


def _poison(uv, conf, K, row, poison):
    """Break batch row `row` of uv, conf, K (B, 3, 3) in place."""
    kind, where, value = poison
    if kind == 'uv':
        uv[row, where, [index % 2 for index in where]] = value  # u or v
    elif kind == 'all_uv':
        uv[row] = value
    elif kind == 'conf':
        conf[row, where] = value
    elif kind == 'few':  # fewer than 4 usable keypoints
        conf[row, 3:] = 0.0
    elif kind == 'K':
        K[row, where[0] % 2, where[0] % 2] = value  # a focal length
    else:
        K[row, 2, where[0] % 3] = value  # the last row


def _check_contract(result, batch):
    assert result.valid.shape == (batch,)
    for name in FIELDS:
        values = getattr(result, name)
        assert np.isfinite(values[result.valid]).all(), name
        assert np.isnan(values[~result.valid]).all(), name
    R = result.R[result.valid]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-6)
    assert (np.linalg.det(R) > 0).all()


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), clean=st.integers(1, 3),
       poisoned=st.lists(poisons(), min_size=1, max_size=3))
def test_poisoned_rows_are_invalid_or_finite_and_leave_clean_rows_alone(seed, clean, poisoned):
    uv, conf = _clean(seed, clean + len(poisoned))
    K = np.repeat(LMO_K[None], len(uv), 0)
    reference = solve_pose(uv[:clean], conf[:clean], K[:clean], MODEL)
    for offset, poison in enumerate(poisoned):
        _poison(uv, conf, K, clean + offset, poison)
    result = solve_pose(uv, conf, K, MODEL)
    _check_contract(result, len(uv))
    assert result.valid[:clean].all() and reference.valid.all()
    np.testing.assert_allclose(result.t[:clean], reference.t, atol=1e-9)
    for offset, (kind, where, value) in enumerate(poisoned):
        row = clean + offset
        usable = np.isfinite(uv[row]).all(-1) & np.isfinite(conf[row]) & (conf[row] > 0)
        K_ok = np.isfinite(K[row]).all() and K[row, 0, 0] > 0 and K[row, 1, 1] > 0 \
            and K[row, 2].tolist() == [0.0, 0.0, 1.0]
        if usable.sum() < 4 or not K_ok:
            assert not result.valid[row], (kind, where, value)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3),
       R_kind=st.sampled_from(['true', 'constant', 'reflected', 'scaled']),
       R_value=bad | st.floats(-2.0, 2.0), t_value=bad | st.floats(-10.0, 10.0),
       claimed_valid=st.booleans(), fallback=st.sampled_from([8.0, np.inf]))
def test_garbage_warm_starts_never_raise_and_never_give_nan_as_valid(
        seed, batch, R_kind, R_value, t_value, claimed_valid, fallback):
    uv, conf = _clean(seed, batch)
    R_true = random_poses(np.random.default_rng(seed), batch)[0]
    R_init = {'true': R_true, 'constant': np.full((batch, 3, 3), R_value),
              'reflected': -R_true, 'scaled': R_true * R_value}[R_kind]
    init = PoseResult(R=R_init, t=np.full((batch, 3), t_value),
                      coeffs=np.zeros((batch, 0)), cost=np.zeros(batch),
                      rms_px=np.zeros(batch), iterations=np.zeros(batch, np.int64),
                      valid=np.full(batch, claimed_valid), covariance=np.zeros((batch, 6, 6)))
    result = solve_pose(uv, conf, LMO_K, MODEL, init=init, fallback_rms_px=fallback)
    _check_contract(result, batch)
    if np.isfinite(fallback):  # bad warm starts fall back to the closed form
        assert result.valid.all()
    usable_init = claimed_valid and np.isfinite(t_value) and (
        R_kind == 'true' or (R_kind == 'scaled' and R_value == 1.0))
    if not usable_init and np.isinf(fallback):  # no fallback: unusable inits stay invalid
        assert not result.valid.any()


@settings(max_examples=40, deadline=None)
@given(scale=st.sampled_from([1e-300, 1e-12, 1e12, 1e150, 1e300]),
       target=st.sampled_from(['uv', 'conf', 'K_focal']))
def test_huge_and_tiny_magnitudes_never_raise(scale, target):
    uv, conf = _clean(3, 2)
    K = LMO_K.copy()
    if target == 'uv':
        uv = uv * scale
    elif target == 'conf':
        conf = conf * scale
    else:
        K[0, 0] *= scale
        K[1, 1] *= scale
    _check_contract(solve_pose(uv, conf, K, MODEL), 2)
