"""Confidence-weighted full-perspective pose (and PCA shape) fit from 2D keypoints.

Minimises, per problem, over R in SO(3), t in R^3 and shape coefficients c in R^M:

    sum_i D_i rho(|| pi(K, R (B0_i + sum_j c_j B_ji) + t) - u_i ||^2)
        + shape_prior_weight * sum_j (c_j / prior_scale_j)^2

with D the keypoint confidences, rho a robust kernel on squared pixel errors and pi the pinhole
projection (Pavlakos et al., "6-DoF Object Pose from Semantic Keypoints", ICRA 2017, eq. 2-3,
here with full perspective). Levenberg-Marquardt with analytic Jacobians, batched over problems,
rotation updated on the left (R <- exp(dw) R, dw in the camera frame); closed-form start from
OpenCV's SQPnP (Terzakis and Lourakis, ECCV 2020) or a warm start. See docs/solver.md.
"""

from dataclasses import dataclass, replace
import math
import numbers
from typing import NamedTuple

import cv2
import numpy as np
import torch

from pose_kp_ros.geometry.camera import intrinsics_ok, project_with_jacobian
from pose_kp_ros.geometry.object_model import key_text
from pose_kp_ros.geometry.rotations import so3_exp

ROBUST_KERNELS = ('huber', 'cauchy', None)
INIT_RELATIVE_CONFIDENCE = 0.5
"""The closed-form start uses keypoints with conf >= this times the problem's largest conf."""
COLLINEAR_RATIO = 1e-8
"""Layouts whose second/first principal variance (lambda2 / lambda1) is below this are lines."""
_MU_START_COLD = 1e-3
_MU_START_WARM = 1e-4
_MU_MAX = 1e10
_NOISE_FLOOR_PX2 = 1e-4
_ROTATION_TOLERANCE = 1e-3


@dataclass
class PoseResult:
    """Poses of B problems (batch dimension absent when a single (N, 2) problem was solved).

    Attributes:
        R: (B, 3, 3) object-to-camera rotations.
        t: (B, 3) object origin in the camera frame, metres.
        coeffs: (B, M) shape coefficients (M = 0 for a rigid model).
        cost: (B,) final value of the objective (px^2 times confidence units).
        rms_px: (B,) confidence-weighted RMS reprojection error of the usable keypoints, pixels.
        iterations: (B,) Levenberg-Marquardt iterations run (warm start plus any fallback).
        valid: (B,) False when no trustworthy pose exists; then R, t, coeffs, cost, rms_px and
            covariance of that row are NaN.
        covariance: (B, 6, 6) pose covariance, order (tx, ty, tz, rx, ry, rz) as in
            geometry_msgs/PoseWithCovariance: metres and radians, rotation a small rotation
            vector about the camera axes applied on the left (R <- exp(r) R), shape marginalised.
    """

    R: object
    t: object
    coeffs: object
    cost: object
    rms_px: object
    iterations: object
    valid: object
    covariance: object


@dataclass
class _Problem:
    """Tensors of one batched solve (private)."""

    uv: torch.Tensor          # (B, N, 2) observed pixels, 0 where unusable
    weight: torch.Tensor      # (B, N) confidences, 0 where unusable
    used: torch.Tensor        # (B, N) bool
    K: torch.Tensor           # (B, 3, 3)
    mean: torch.Tensor        # (N, 3) B0, metres
    basis: torch.Tensor       # (M, N, 3)
    basis_t: torch.Tensor     # (N, 3, M)
    prior: torch.Tensor       # (M,) shape prior precision, px^2
    robust: str
    robust_scale_px: float

    def select(self, index):
        """Return the sub-problem of the batch rows `index` (a 1-D index tensor)."""
        return _Problem(self.uv[index], self.weight[index], self.used[index], self.K[index],
                        self.mean, self.basis, self.basis_t, self.prior, self.robust,
                        self.robust_scale_px)


class _Fit(NamedTuple):
    """State of a batched fit (private): parameters, cost, normal matrix, squared errors."""

    R: torch.Tensor           # (B, 3, 3)
    t: torch.Tensor           # (B, 3)
    c: torch.Tensor           # (B, M)
    cost: torch.Tensor        # (B,)
    H: torch.Tensor           # (B, 6 + M, 6 + M)
    sq: torch.Tensor          # (B, N) squared pixel errors
    iterations: torch.Tensor  # (B,) int64


def solve_pose(uv, conf, K, model, init=None, *, robust='huber', robust_scale_px=4.0,
               max_iterations=20, min_confidence=0.0, confidence_power=1.0,
               shape_prior_weight=1.0, tolerance=1e-4, fallback_rms_px=8.0, dtype=None):
    """Fit object poses (and shape coefficients) to 2D keypoints; never raises on bad values.

    Args:
        uv: (B, N, 2) or (N, 2) keypoint pixels (u, v), OpenCV pixel-centre convention, keypoint
            order of model.keypoint_names. numpy array or torch tensor.
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
            tolerance * (cost + 1e-4 px^2 * sum(conf)).
        fallback_rms_px: warm-start rows whose robust RMS error sqrt(cost / sum(conf)) ends
            above this (pixels) are re-solved cold; inf: never, not
            even rows with an invalid or infeasible init (they then come back invalid).
        dtype: computation dtype; None: torch.float64 on CPU, torch.float32 on CUDA.

    Returns:
        PoseResult with numpy arrays for numpy inputs, tensors on the input's device for torch
        inputs, in the computation dtype.

    Raises:
        ValueError: only for wrong argument shapes or options, never for bad values.

    Example:
        >>> result = solve_pose(uv, conf, K, model)  # doctest: +SKIP
        >>> result.R[result.valid]  # doctest: +SKIP
    """
    for name, value in (('robust', robust), ('robust_scale_px', robust_scale_px),
                        ('max_iterations', max_iterations),
                        ('confidence_power', confidence_power),
                        ('shape_prior_weight', shape_prior_weight)):
        reason = option_error(name, value)
        if reason:
            raise ValueError(reason)
    as_torch = any(isinstance(x, torch.Tensor) for x in (uv, conf, K))
    device = next((x.device for x in (uv, conf, K) if isinstance(x, torch.Tensor)),
                  torch.device('cpu'))
    dtype = dtype or (torch.float64 if device.type == 'cpu' else torch.float32)
    uv = torch.as_tensor(uv, dtype=dtype, device=device)
    single = uv.ndim == 2
    if single:
        uv = uv[None]
    if uv.ndim != 3 or uv.shape[1:] != (model.num_keypoints, 2):
        raise ValueError(f'uv: expected (B, {model.num_keypoints}, 2) pixels, got '
                         f'{tuple(uv.shape)}')
    batch, num_kp = uv.shape[:2]
    conf = (torch.ones((batch, num_kp), dtype=dtype, device=device) if conf is None else
            torch.as_tensor(conf, dtype=dtype, device=device).reshape(-1, num_kp))
    if conf.shape[0] != batch:
        raise ValueError(f'conf: expected ({batch}, {num_kp}), got {tuple(conf.shape)}')
    K = torch.as_tensor(K, dtype=dtype, device=device)
    if K.shape[-2:] != (3, 3) or K.ndim not in (2, 3) or (K.ndim == 3 and K.shape[0] != batch):
        raise ValueError(f'K: expected (3, 3) or ({batch}, 3, 3), got {tuple(K.shape)}')
    K = K.expand(batch, 3, 3)

    problem, ok = _prepare(uv, conf, K, model, min_confidence, confidence_power, robust,
                           robust_scale_px, shape_prior_weight, dtype, device)
    if init is None:
        state = _cold_solve(problem, ok, max_iterations, tolerance)
    else:
        state = _warm_solve(problem, ok, _init_state(init, batch, model.num_basis, dtype, device),
                            max_iterations, tolerance, fallback_rms_px)
    result = _finish(problem, ok, state)
    if single:
        result = PoseResult(*(field[0] for field in _fields(result)))
    if not as_torch:
        result = PoseResult(*(field.cpu().numpy() for field in _fields(result)))
    return result


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
    'fallback_rms_px': ('a number > 0 (.inf: never)', lambda v: _number(v) and v > 0),
}
"""solve_pose keyword options (except dtype): (what is expected, check of a value)."""


def option_error(name, value):
    """Return None if solve_pose accepts `value` for option `name`, else a one-line reason."""
    if name not in OPTION_CHECKS:
        return f'{key_text(name)}: unknown solver option (known: {", ".join(OPTION_CHECKS)})'
    expected, ok = OPTION_CHECKS[name]
    try:
        accepted = bool(ok(value))
    except TypeError:  # unhashable or incomparable values
        accepted = False
    return None if accepted else f'{name}: expected {expected}, got {value!r}'


def evaluate_pose(uv, conf, K, model, pose: PoseResult, **options) -> PoseResult:
    """Return the PoseResult of `pose` kept as it is: its cost, rms_px and covariance.

    The same terms as `solve_pose` (same arguments and options), evaluated at pose's R, t and
    coeffs without iterating, e.g. for a pose moved by another refinement. `valid` is False
    where the pose is unusable (not a rotation, a keypoint behind the camera, too few keypoints).
    """
    options = {**options, 'max_iterations': 0, 'fallback_rms_px': math.inf}
    return replace(solve_pose(uv, conf, K, model, init=pose, **options),
                   iterations=pose.iterations)


def _fields(result):
    """Return the PoseResult fields in declaration order."""
    return (result.R, result.t, result.coeffs, result.cost, result.rms_px, result.iterations,
            result.valid, result.covariance)


def _prepare(uv, conf, K, model, min_confidence, confidence_power, robust, robust_scale_px,
             shape_prior_weight, dtype, device):
    """Sanitise inputs into a _Problem and return it with ok (B,): solvable at all."""
    used = _usable(uv, conf, min_confidence)
    K_ok = intrinsics_ok(K)
    K = torch.where(K_ok[:, None, None], K, torch.eye(3, dtype=dtype, device=device))
    mean = torch.as_tensor(model.keypoints, dtype=dtype, device=device)
    basis = torch.as_tensor(model.basis, dtype=dtype, device=device)
    prior = shape_prior_weight / torch.as_tensor(model.prior_scale, dtype=dtype,
                                                 device=device) ** 2
    problem = _Problem(uv=torch.where(used[..., None], uv, 0.0),
                       weight=fit_weights(uv, conf, min_confidence, confidence_power),
                       used=used, K=K, mean=mean,
                       basis=basis, basis_t=basis.permute(1, 2, 0), prior=prior,
                       robust=robust, robust_scale_px=float(robust_scale_px))
    count = used.sum(-1)
    return problem, K_ok & (count >= 4) & ~_collinear(mean, used)


def _usable(uv, conf, min_confidence):
    """Return (..., N) True for keypoints the fit uses: finite, confidence > min_confidence."""
    return torch.isfinite(uv).all(-1) & torch.isfinite(conf) & (conf > min_confidence)


def fit_weights(uv, conf, min_confidence=0.0, confidence_power=1.0):
    """Return the fit's keypoint weights (..., N): conf ** confidence_power, 0 where unused.

    uv (..., N, 2) pixels and conf (..., N) as tensors (float64 recommended).
    """
    return torch.where(_usable(uv, conf, min_confidence), conf, 0.0) ** float(confidence_power)


def _collinear(points, used):
    """Return (B,) True where the used points (N, 3) lie (nearly) on a line or coincide.

    With S the scatter matrix, lambda1 lambda2 <= I2 = ((tr S)^2 - tr(S^2)) / 2 <= 3 lambda1
    lambda2 and tr S <= 3 lambda1, so I2 / tr(S)^2 bounds lambda2 / lambda1 within a factor 9.
    """
    mask = used[..., None].to(points.dtype)
    count = mask.sum(1, keepdim=True).clamp_min(1.0)
    centred = (points - (points * mask).sum(1, keepdim=True) / count) * mask
    scatter = centred.transpose(1, 2) @ centred
    trace = scatter.diagonal(dim1=-2, dim2=-1).sum(-1)
    invariant2 = (trace * trace - (scatter * scatter).sum((-2, -1))) / 2.0
    return ~(invariant2 > COLLINEAR_RATIO * trace * trace)


def _robust(sq, problem):
    """Return (rho(sq), d rho / d sq) for squared pixel errors sq (B, N)."""
    if problem.robust is None:
        return sq, torch.ones_like(sq)
    k2 = problem.robust_scale_px ** 2
    if problem.robust == 'huber':
        norm = sq.clamp_min(k2).sqrt()
        inlier = sq <= k2
        return (torch.where(inlier, sq, 2.0 * problem.robust_scale_px * norm - k2),
                torch.where(inlier, 1.0, problem.robust_scale_px / norm))
    return k2 * torch.log1p(sq / k2), 1.0 / (1.0 + sq / k2)


def _evaluate(R, t, c, problem):
    """Return cost (B,), normal matrix H (B, P, P), gradient g (B, P), squared errors (B, N).

    Parameters are ordered (t, w, c), P = 6 + M; cost is inf where a used point is behind the
    camera. H is the IRLS Gauss-Newton matrix J^T W J plus the shape prior.
    """
    batch, num_kp = problem.uv.shape[:2]
    num_basis = problem.basis.shape[0]
    shape = problem.mean if num_basis == 0 else \
        problem.mean + (c @ problem.basis.reshape(num_basis, -1)).reshape(batch, num_kp, 3)
    rotated = shape @ R.transpose(1, 2)
    uv_hat, jac_x, in_front = project_with_jacobian(rotated + t[:, None], problem.K)
    error = uv_hat - problem.uv
    sq = (error * error).sum(-1)
    rho, rho_grad = _robust(sq, problem)
    jac_w = torch.linalg.cross(rotated[:, :, None].expand_as(jac_x), jac_x)
    parts = [jac_x, jac_w]
    if num_basis:
        parts.append(jac_x @ R[:, None] @ problem.basis_t)
    jac = torch.cat(parts, -1).reshape(batch, 2 * num_kp, 6 + num_basis)
    weight = (problem.weight * rho_grad)[..., None].expand(batch, num_kp, 2).reshape(batch, -1)
    jac_t_w = jac.transpose(1, 2) * weight[:, None]
    H = jac_t_w @ jac
    g = (jac_t_w @ error.reshape(batch, -1, 1))[..., 0]
    cost = (problem.weight * rho).sum(-1)
    if num_basis:
        cost = cost + (problem.prior * c * c).sum(-1)
        H = H + torch.diag(torch.nn.functional.pad(problem.prior, (6, 0)))
        g = g + torch.nn.functional.pad(problem.prior * c, (6, 0))
    feasible = (in_front | ~problem.used).all(-1)
    return torch.where(feasible, cost, math.inf), H, g, sq


def _levenberg_marquardt(problem, active, R, t, c, mu, max_iterations, tolerance):
    """Run batched LM from (R, t, c) for the active problems and return a _Fit."""
    cost, H, g, sq = _evaluate(R, t, c, problem)
    active = active & torch.isfinite(cost)
    floor = _NOISE_FLOOR_PX2 * problem.weight.sum(-1)
    iterations = torch.zeros_like(active, dtype=torch.int64)
    check_every = 1 if problem.uv.device.type == 'cpu' else 4
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    for iteration in range(max_iterations):
        if iteration % check_every == 0 and not bool(active.any()):
            break
        damping = mu[:, None] * (H.diagonal(dim1=-2, dim2=-1) + 1e-12)
        step = torch.linalg.solve_ex(H + damping[..., None] * eye, -g[..., None])[0][..., 0]
        R_new = so3_exp(step[:, 3:6]) @ R
        t_new = t + step[:, :3]
        c_new = c + step[:, 6:]
        cost_new, H_new, g_new, sq_new = _evaluate(R_new, t_new, c_new, problem)
        accept = active & (cost_new < cost)
        converged = (cost - cost_new).abs() <= tolerance * (cost + floor)
        iterations = iterations + active.to(torch.int64)
        R = torch.where(accept[:, None, None], R_new, R)
        t = torch.where(accept[:, None], t_new, t)
        c = torch.where(accept[:, None], c_new, c)
        H = torch.where(accept[:, None, None], H_new, H)
        g = torch.where(accept[:, None], g_new, g)
        sq = torch.where(accept[:, None], sq_new, sq)
        cost = torch.where(accept, cost_new, cost)
        mu = torch.where(accept, mu * 0.2, mu * 10.0)
        active = active & ~converged & (mu < _MU_MAX)
    return _Fit(R, t, c, cost, H, sq, iterations)


def _closed_form_candidates(problem, ok):
    """Return closed-form starts on the mean shape, on confident and on all usable keypoints.

    Every solution of SQPnP (and, for 4 points, of AP3P) is a candidate.

    Returns a list of C (R (B, 3, 3), t (B, 3)) slots; rows with fewer than C solutions (or
    none) are padded with R = I, t = (0, 0, -1), which is infeasible (cost inf).
    """
    uv = problem.uv.cpu().numpy()
    weight = problem.weight.cpu().numpy()
    K = problem.K.cpu().numpy()
    mean = problem.mean.cpu().numpy()
    solutions = [[] for _ in range(len(uv))]
    for b in np.flatnonzero(ok.cpu().numpy()):
        usable = weight[b] > 0
        confident = weight[b] >= INIT_RELATIVE_CONFIDENCE * weight[b].max()
        subsets = [usable] if confident.sum() < 4 or confident.sum() == usable.sum() else \
            [confident, usable]
        for subset in subsets:
            # SQPnP misses the pose of ~2% of noiseless 4-point sets; AP3P does not.
            methods = (cv2.SOLVEPNP_SQPNP,) + ((cv2.SOLVEPNP_AP3P,) if subset.sum() == 4 else ())
            for method in methods:
                try:
                    _, rvecs, tvecs, _ = cv2.solvePnPGeneric(mean[subset], uv[b, subset], K[b],
                                                             None, flags=method)
                except cv2.error:
                    continue
                solutions[b] += [(cv2.Rodrigues(r)[0], tv[:, 0]) for r, tv in zip(rvecs, tvecs)
                                 if np.isfinite(r).all() and np.isfinite(tv).all()]
    slots = max(1, max(len(found) for found in solutions))
    R = np.tile(np.eye(3), (slots, len(uv), 1, 1))
    t = np.tile([0.0, 0.0, -1.0], (slots, len(uv), 1))
    for b, found in enumerate(solutions):
        for k, (R_found, t_found) in enumerate(found):
            R[k, b], t[k, b] = R_found, t_found
    to_tensor = lambda a: torch.as_tensor(a, dtype=problem.uv.dtype,  # noqa: E731
                                          device=problem.uv.device)
    return [(to_tensor(R[k]), to_tensor(t[k])) for k in range(slots)]


def _cold_solve(problem, ok, max_iterations, tolerance):
    """Solve from the closed-form candidate of lowest cost; return a _Fit."""
    candidates = _closed_form_candidates(problem, ok)
    c = torch.zeros((len(ok), problem.basis.shape[0]), dtype=problem.uv.dtype,
                    device=problem.uv.device)
    R, t = candidates[0]
    cost = _evaluate(R, t, c, problem)[0]
    for R_other, t_other in candidates[1:]:
        cost_other = _evaluate(R_other, t_other, c, problem)[0]
        better = cost_other < cost
        R = torch.where(better[:, None, None], R_other, R)
        t = torch.where(better[:, None], t_other, t)
        cost = torch.where(better, cost_other, cost)
    mu = torch.full_like(cost, _MU_START_COLD)
    return _levenberg_marquardt(problem, ok, R, t, c, mu, max_iterations, tolerance)


def _warm_solve(problem, ok, init, max_iterations, tolerance, fallback_rms_px):
    """Solve from init (R, t, c, init_ok); re-solve cold where the warm result is poor."""
    R, t, c, init_ok = init
    mu = torch.full(ok.shape, _MU_START_WARM, dtype=problem.uv.dtype, device=problem.uv.device)
    warm = _levenberg_marquardt(problem, ok & init_ok, R, t, c, mu, max_iterations, tolerance)
    if math.isinf(fallback_rms_px):  # rows without a usable init stay unsolved (invalid)
        return warm._replace(cost=torch.where(init_ok, warm.cost, math.inf))
    # Robust RMS: outliers the kernel down-weights must not trigger a cold re-solve.
    robust_rms = (warm.cost / problem.weight.sum(-1).clamp_min(1e-300)).sqrt()
    retry = ok & (~init_ok | ~torch.isfinite(warm.cost) | ~(robust_rms <= fallback_rms_px))
    index = retry.nonzero()[:, 0]
    if len(index) == 0:
        return warm
    cold = _cold_solve(problem.select(index), ok[index], max_iterations, tolerance)
    cold = cold._replace(iterations=cold.iterations + warm.iterations[index])
    better = cold.cost < warm.cost[index]
    merged = []
    for warm_field, cold_field in zip(warm, cold):
        keep = better.reshape((-1,) + (1,) * (cold_field.ndim - 1))
        merged.append(warm_field.index_copy(0, index,
                                            torch.where(keep, cold_field, warm_field[index])))
    return _Fit(*merged)


def _init_state(init, batch, num_basis, dtype, device):
    """Return (R, t, c, ok) tensors of batch B from a PoseResult (batch B, 1 or unbatched)."""
    def tensor(x):
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                               device=device)

    R = tensor(init.R).to(dtype)
    single = R.ndim == 2
    lift = (lambda x: x[None]) if single else (lambda x: x)
    R = lift(R)
    t = lift(tensor(init.t).to(dtype))
    c = lift(tensor(init.coeffs).to(dtype)).reshape(R.shape[0], -1)
    valid = lift(tensor(init.valid).to(torch.bool)).reshape(-1)
    if R.shape[0] not in (1, batch) or c.shape[1] != num_basis:
        raise ValueError(f'init: expected a PoseResult of batch {batch} (or 1) with {num_basis} '
                         f'shape coefficients, got R {tuple(R.shape)}, coeffs {tuple(c.shape)}')
    ok = valid & torch.isfinite(R).flatten(1).all(-1) & torch.isfinite(t).all(-1) & \
        torch.isfinite(c).all(-1)
    eye = torch.eye(3, dtype=dtype, device=device)
    R = torch.where(ok[:, None, None], R, eye)
    # Only rotations warm-start: LM moves R on SO(3), it cannot repair a non-rotation.
    ok = ok & ((R @ R.transpose(1, 2) - eye).abs().flatten(1).amax(-1) < _ROTATION_TOLERANCE) \
        & (torch.linalg.det(R) > 0)
    R = torch.where(ok[:, None, None], R, eye)
    t = torch.where(ok[:, None], t, 1.0)
    c = torch.where(ok[:, None], c, 0.0)
    return (R.expand(batch, 3, 3), t.expand(batch, 3), c.expand(batch, num_basis),
            ok.expand(batch))


def _rms_px(problem, sq):
    """Return the confidence-weighted RMS pixel error (B,) from squared errors (B, N)."""
    return ((problem.weight * sq).sum(-1) / problem.weight.sum(-1).clamp_min(1e-300)).sqrt()


def _finish(problem, ok, fit):
    """Return the PoseResult of a _Fit: covariance, validity, NaN in invalid rows."""
    R, t, c, cost, H, sq, iterations = fit
    num_params = H.shape[-1]
    H_inv, info = torch.linalg.inv_ex(H)
    dof = (2 * problem.used.sum(-1) - num_params).clamp_min(1).to(H.dtype)
    covariance = H_inv[:, :6, :6] * (cost / dof)[:, None, None]
    variances = covariance.diagonal(dim1=-2, dim2=-1)
    valid = (ok & (info == 0) & torch.isfinite(cost) & (variances >= 0).all(-1)
             & torch.isfinite(covariance).flatten(1).all(-1) & torch.isfinite(R).flatten(1).all(-1)
             & torch.isfinite(t).all(-1) & torch.isfinite(c).all(-1))
    nan = torch.tensor(math.nan, dtype=H.dtype, device=H.device)
    return PoseResult(R=torch.where(valid[:, None, None], R, nan),
                      t=torch.where(valid[:, None], t, nan),
                      coeffs=torch.where(valid[:, None], c, nan),
                      cost=torch.where(valid, cost, nan),
                      rms_px=torch.where(valid, _rms_px(problem, sq), nan),
                      iterations=iterations, valid=valid,
                      covariance=torch.where(valid[:, None, None], covariance, nan))
