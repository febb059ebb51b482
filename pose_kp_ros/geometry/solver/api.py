"""solve_pose and evaluate_pose: arguments, options, and numpy or torch in and out."""

from dataclasses import replace
import functools
import inspect
import math
import numbers
import sys
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.object_model import ObjectModel, key_text
from pose_kp_ros.geometry.solver.iteration import cold_solve, warm_solve
from pose_kp_ros.geometry.solver.problem import ROBUST_KERNELS, fit_weights, prepare
from pose_kp_ros.geometry.solver.result import PoseResult, finish, result_fields
from pose_kp_ros.geometry.solver.start import warm_start
from pose_kp_ros.geometry.synthetic import random_keypoint_model


def solve_pose(uv: ArrayLike, conf: ArrayLike | None, K: ArrayLike, model: ObjectModel,
               init: PoseResult | None = None, *, robust: str | None = 'huber',
               robust_scale_px: float = 4.0, max_iterations: int = 20,
               min_confidence: float = 0.0, confidence_power: float = 1.0,
               shape_prior_weight: float = 1.0, tolerance: float = 1e-4,
               fallback_rms_px: float = 8.0, dtype: Any = None) -> PoseResult:
    """Fit object poses (and shape coefficients) to 2D keypoints; never raises on bad values.

    Args:
        uv: (B, N, 2) or (N, 2) keypoint pixels (u, v), OpenCV pixel-centre convention, keypoint
            order of model.keypoint_names. numpy array or torch tensor (also conf, K).
        conf: (B, N) or (N,) confidences >= 0 (None: all 1). Keypoints with conf <=
            min_confidence, NaN/inf conf or NaN/inf uv are ignored.
        K: (3, 3) or (B, 3, 3) camera matrices (undistorted pixels).
        model: ObjectModel; its basis (if any) makes the fit deformable.
        init: optional PoseResult to warm-start from (same batch size B, or 1 broadcast).
            Invalid rows, and rows whose warm fit ends with rms_px > fallback_rms_px, are
            solved again from the closed form; the lower cost wins.
        robust: 'huber', 'cauchy' or None (plain weighted least squares).
        robust_scale_px: kernel scale in pixels (errors beyond it are down-weighted).
        max_iterations: Levenberg-Marquardt iteration cap per start.
        min_confidence: keypoints at or below this confidence are ignored.
        confidence_power: the fit weights D are conf ** confidence_power. Above 1 it
            approximates inverse-variance weighting for a network whose keypoint error grows
            quickly as its confidence drops (docs/solver.md).
        shape_prior_weight: lambda of the prior term lambda * sum_j (c_j / prior_scale_j)^2, in
            px^2 (about the keypoint noise variance).
        tolerance: stop a problem when an accepted step lowers the cost by less than
            tolerance * (cost + 1e-4 px^2 * sum(conf)), or its next step is predicted to lower
            it by under 1% of that (iteration.PREDICTED_STOP).
        fallback_rms_px: warm-start rows whose robust RMS error sqrt(cost / sum(conf)) ends
            above this (pixels) are re-solved cold; 0: every warm row is solved cold too (a
            warm start in a wrong basin, e.g. a flipped pose, then loses to a better cold fit);
            inf: never, not even rows with an invalid or infeasible init (they then come back
            invalid).
        dtype: dtype of the float results (numpy or torch dtype); None: float64, or float32
            for tensors on a GPU. The fit itself always runs in numpy float64 on the CPU.

    Returns:
        PoseResult with numpy arrays for numpy inputs, tensors on the input's device for torch
        inputs.

    Raises:
        ValueError: only for wrong argument shapes or options, never for bad values.

    Example:
        >>> result = solve_pose(uv, conf, K, model)  # doctest: +SKIP
        >>> result.R[result.valid]  # doctest: +SKIP
    """
    checked = (robust, robust_scale_px, max_iterations, confidence_power, shape_prior_weight)
    try:
        reason = _cached_option_error(*checked)
    except TypeError:  # an unhashable value: not cached
        reason = _option_error(*checked)
    if reason:
        raise ValueError(reason)
    tensor = _tensor_of(uv, conf, K)
    uv = as_numpy(uv)
    single = uv.ndim == 2
    if single:
        uv = uv[None]
    if uv.ndim != 3 or uv.shape[1:] != (model.num_keypoints, 2):
        raise ValueError(f'uv: expected (B, {model.num_keypoints}, 2) pixels, got '
                         f'{tuple(uv.shape)}')
    batch, num_kp = uv.shape[:2]
    conf = np.ones((batch, num_kp)) if conf is None else as_numpy(conf).reshape(-1, num_kp)
    if conf.shape[0] != batch:
        raise ValueError(f'conf: expected ({batch}, {num_kp}), got {tuple(conf.shape)}')
    K = as_numpy(K)
    if K.shape[-2:] != (3, 3) or K.ndim not in (2, 3) or (K.ndim == 3 and K.shape[0] != batch):
        raise ValueError(f'K: expected (3, 3) or ({batch}, 3, 3), got {tuple(K.shape)}')
    with np.errstate(all='ignore'):  # NaN, inf and overflow are data here: rows turn invalid
        problem, ok = prepare(uv, conf, K if K.ndim == 3 else K[None].repeat(batch, 0), model,
                              min_confidence, confidence_power, robust, robust_scale_px,
                              shape_prior_weight)
        if init is None:
            fit = cold_solve(problem, ok, max_iterations, tolerance)
        else:
            start = warm_start(*(as_numpy(getattr(init, name), dtype=None)
                                 for name in ('R', 't', 'coeffs', 'valid')),
                               batch, model.num_basis)
            fit = warm_solve(problem, ok, start, max_iterations, tolerance, fallback_rms_px)
        result = finish(problem, ok, fit)
    if single:
        result = PoseResult(*(field[0, ...] for field in result_fields(result)))
    return _converted(result, tensor, dtype)


def compile_solver() -> None:
    """Compile the solver's numba functions, or load them from numba's cache.

    Tens of seconds once per machine and version (the cache lives beside the modules, or in
    numba's user cache directory where they are read-only), well under a second after that.
    Solves one small synthetic problem cold, warm and evaluated, with a shape basis; the
    pipeline calls this while it loads, so that no frame waits for the compiler.
    """
    rng = np.random.default_rng(0)
    rigid = random_keypoint_model(rng, 6, 0.2, name='compile_solver')
    model = replace(rigid, basis=rng.normal(0.0, 0.01, (1, 6, 3)), prior_scale=np.ones(1))
    camera = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
    uv = project_object_points(model.keypoints, np.eye(3), np.array([0.0, 0.0, 1.0]), camera)
    result = solve_pose(uv, None, camera, model)
    evaluate_pose(uv, None, camera, model, solve_pose(uv, None, camera, model, init=result))
    fit_weights(uv, np.ones(6))


OPTION_DEFAULTS = {name: parameter.default
                   for name, parameter in inspect.signature(solve_pose).parameters.items()
                   if parameter.kind is parameter.KEYWORD_ONLY and name != 'dtype'}
"""solve_pose's keyword options (except dtype) and their defaults, from its signature."""


def completed_options(options: dict) -> dict:
    """Return solve_pose keyword `options` with the defaults of those not given."""
    return {**OPTION_DEFAULTS, **options}


def evaluate_pose(uv: ArrayLike, conf: ArrayLike | None, K: ArrayLike, model: ObjectModel,
                  pose: PoseResult, **options: Any) -> PoseResult:
    """Return the PoseResult of `pose` kept as it is: its cost, rms_px and covariance.

    The same terms as `solve_pose` (same arguments and options), evaluated at pose's R, t and
    coeffs without iterating, e.g. for a pose moved by another refinement. `valid` is False
    where the pose is unusable (not a rotation, a keypoint behind the camera, too few keypoints).
    """
    options = {**options, 'max_iterations': 0, 'fallback_rms_px': math.inf}
    return replace(solve_pose(uv, conf, K, model, init=pose, **options),
                   iterations=pose.iterations)


_CHECKED_OPTIONS = ('robust', 'robust_scale_px', 'max_iterations', 'confidence_power',
                    'shape_prior_weight')


def _option_error(*values):
    """Return the first option_error of solve_pose's _CHECKED_OPTIONS `values`, or None."""
    return next(filter(None, map(option_error, _CHECKED_OPTIONS, values)), None)


# The same values come with every call: remember the verdicts (typed: 1 and True differ).
_cached_option_error = functools.lru_cache(maxsize=256, typed=True)(_option_error)


def _number(value):
    """Return True for a real number (numpy too) that is not a bool, NaN or beyond float."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        return False
    try:
        return not math.isnan(float(value))
    except OverflowError:  # an integer beyond the float range
        return False


OPTION_CHECKS = {
    'robust': ('huber, cauchy or null', lambda v: v in ROBUST_KERNELS),
    'robust_scale_px': ('a finite number > 0',
                        lambda v: _number(v) and 0 < v < math.inf),
    'max_iterations': ('an integer >= 0',
                       lambda v: _number(v) and isinstance(v, numbers.Integral) and v >= 0),
    'min_confidence': ('a number', _number),
    'confidence_power': ('a finite number > 0', lambda v: _number(v) and 0 < v < math.inf),
    'shape_prior_weight': ('a finite number >= 0', lambda v: _number(v) and 0 <= v < math.inf),
    'tolerance': ('a finite number > 0', lambda v: _number(v) and 0 < v < math.inf),
    'fallback_rms_px': ('a number >= 0 (0: always, .inf: never)',
                        lambda v: _number(v) and v >= 0),
}
"""solve_pose keyword options (except dtype): (what is expected, check of a value)."""


def option_error(name: str, value: object) -> str | None:
    """Return None if solve_pose accepts `value` for option `name`, else a one-line reason."""
    if name not in OPTION_CHECKS:
        return f'{key_text(name)}: unknown solver option (known: {", ".join(OPTION_CHECKS)})'
    expected, ok = OPTION_CHECKS[name]
    try:
        accepted = bool(ok(value))
    except TypeError:  # unhashable or incomparable values
        accepted = False
    return None if accepted else f'{name}: expected {expected}, got {value!r}'


def _tensor_of(*values):
    """Return the first torch tensor among values, or None (torch is never imported here).

    A tensor can only exist once its caller has imported torch, so sys.modules tells.
    """
    torch = sys.modules.get('torch')
    return None if torch is None else next(
        (value for value in values if isinstance(value, torch.Tensor)), None)


def as_numpy(value: ArrayLike, dtype: DTypeLike = np.float64) -> np.ndarray:
    """Return value (array-like or torch tensor, any device) as a numpy array of dtype."""
    if _tensor_of(value) is not None:
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _converted(result, tensor, dtype):
    """Return the float64 numpy result with float fields in dtype, as tensors like `tensor`.

    tensor: a torch tensor of the inputs (its device and module), or None for numpy results.
    """
    if tensor is None and dtype is None:
        return result
    if dtype is not None:
        float_dtype = np.dtype(str(dtype).removeprefix('torch.'))
    else:
        float_dtype = np.float32 if tensor is not None and tensor.device.type != 'cpu' else \
            np.float64
    values = [field if name in ('iterations', 'valid') else field.astype(float_dtype, copy=False)
              for name, field in zip(PoseResult.__dataclass_fields__, result_fields(result))]
    if tensor is not None:
        torch = sys.modules['torch']
        values = [torch.as_tensor(value, device=tensor.device) for value in values]
    return PoseResult(*values)
