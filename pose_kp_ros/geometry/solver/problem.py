"""The solver's problem: sanitised inputs, the robust objective and its normal equations.

Plain functions over batched numpy float64 arrays (B problems of N keypoints, M shape
coefficients, P = 6 + M parameters ordered (t, w, c)); see docs/solver.md for the objective.
"""

from dataclasses import dataclass
import functools

import numpy as np

from pose_kp_ros.geometry.camera import intrinsics_ok, project_with_jacobian
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import hat

ROBUST_KERNELS = ('huber', 'cauchy', None)
_POSE_JACOBIAN_CONSTANT = np.eye(3, 6)
_POSE_JACOBIAN_LINEAR = np.concatenate([np.zeros((3, 3, 3)), -hat(np.eye(3))], -1).reshape(3, 18)
"""d X / d (t, w) = [I | -[q]x] is (q @ _POSE_JACOBIAN_LINEAR) as (3, 6) + the constant."""
_LINALG_GUFUNCS = np.linalg._umath_linalg
"""The LAPACK gufuncs numpy.linalg.solve and det call after their argument checks (numpy is
pinned in requirements.txt; test_pose_solver checks them against numpy.linalg)."""
COLLINEAR_RATIO = 1e-8
"""Layouts whose second/first principal variance (lambda2 / lambda1) is below this are lines."""


@dataclass
class Problem:
    """Arrays of one batched solve.

    Attributes:
        uv: (B, N, 2) observed pixels, 0 where unusable.
        weight: (B, N) keypoint weights D (conf ** confidence_power), 0 where unusable.
        used: (B, N) bool, the keypoint is usable.
        weight_sum: (B,) sum of weight.
        K: (B, 3, 3) camera matrices (the identity where K was invalid).
        mean: (N, 3) mean shape B0, metres.
        basis: (M, N, 3) shape basis, metres per unit coefficient.
        prior: (M,) shape prior precisions lambda / s_j^2, px^2.
        robust: robust kernel name (ROBUST_KERNELS).
        robust_scale_px: kernel scale k, pixels.
    """

    uv: np.ndarray
    weight: np.ndarray
    used: np.ndarray
    weight_sum: np.ndarray
    K: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    prior: np.ndarray
    robust: str | None
    robust_scale_px: float

    def select(self, index: np.ndarray) -> 'Problem':
        """Return the sub-problem of the batch rows `index` (a 1-D integer array)."""
        return Problem(self.uv[index], self.weight[index], self.used[index],
                       self.weight_sum[index], self.K[index], self.mean, self.basis, self.prior,
                       self.robust, self.robust_scale_px)


def usable(uv: np.ndarray, conf: np.ndarray, min_confidence: float) -> np.ndarray:
    """Return (..., N) True for keypoints the fit uses: finite, confidence > min_confidence."""
    return np.isfinite(uv).all(-1) & np.isfinite(conf) & (conf > min_confidence)


def fit_weights(uv: np.ndarray, conf: np.ndarray, min_confidence: float = 0.0,
                confidence_power: float = 1.0) -> np.ndarray:
    """Return the fit's keypoint weights (..., N): conf ** confidence_power, 0 where unused.

    uv (..., N, 2) pixels and conf (..., N) confidences, numpy arrays.
    """
    uv, conf = np.asarray(uv, dtype=np.float64), np.asarray(conf, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        return _weights(usable(uv, conf, min_confidence), conf, confidence_power)


def _weights(used, conf, confidence_power):
    """Return conf ** confidence_power where used, else 0 (both (..., N))."""
    return np.where(used, conf, 0.0) ** float(confidence_power)


def prepare(uv: np.ndarray, conf: np.ndarray, K: np.ndarray, model: ObjectModel,
            min_confidence: float, confidence_power: float, robust: str | None,
            robust_scale_px: float, shape_prior_weight: float) -> tuple[Problem, np.ndarray]:
    """Sanitise inputs into a Problem and return it with ok (B,): solvable at all.

    uv (B, N, 2) px, conf (B, N), K (B, 3, 3) float64 arrays; model an ObjectModel. A problem
    is not solvable with fewer than 4 usable keypoints, a collinear usable layout or invalid K.
    """
    used = usable(uv, conf, min_confidence)
    K_ok = intrinsics_ok(K)
    mean = model.keypoints
    if used.all():  # the common case: the same values as below, with fewer array operations
        layout_ok = len(mean) >= 4 and not _all_collinear(mean.tobytes())
        solvable = np.full(len(used), layout_ok)
    else:
        uv = np.where(used[..., None], uv, 0.0)
        solvable = (used.sum(-1) >= 4) & ~collinear(mean, used)
    weight = _weights(used, conf, confidence_power)
    problem = Problem(uv=uv, weight=weight, used=used, weight_sum=weight.sum(-1),
                      K=K if K_ok.all() else np.where(K_ok[:, None, None], K, np.eye(3)),
                      mean=mean, basis=model.basis,
                      prior=shape_prior_weight / model.prior_scale ** 2, robust=robust,
                      robust_scale_px=float(robust_scale_px))
    return problem, K_ok & solvable


@functools.lru_cache(maxsize=64)
def _all_collinear(points: bytes) -> bool:
    """Return collinear() of a whole layout, given as the bytes of its float64 (N, 3) points."""
    layout = np.frombuffer(points).reshape(-1, 3)
    return bool(collinear(layout, np.ones((1, len(layout)), bool))[0])


def collinear(points: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Return (B,) True where the used points (N, 3) of used (B, N) lie on a line or coincide.

    With S the scatter matrix, lambda1 lambda2 <= I2 = ((tr S)^2 - tr(S^2)) / 2 <= 3 lambda1
    lambda2 and tr S <= 3 lambda1, so I2 / tr(S)^2 bounds lambda2 / lambda1 within a factor 9.
    """
    mask = used[..., None].astype(np.float64)
    count = np.maximum(mask.sum(1, keepdims=True), 1.0)
    centred = (points - (points * mask).sum(1, keepdims=True) / count) * mask
    scatter = np.swapaxes(centred, 1, 2) @ centred
    trace = np.trace(scatter, axis1=1, axis2=2)
    invariant2 = (trace * trace - (scatter * scatter).sum((1, 2))) / 2.0
    return ~(invariant2 > COLLINEAR_RATIO * trace * trace)


def robust_kernel(sq: np.ndarray, robust: str | None,
                  scale_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (rho(sq), d rho / d sq) for squared pixel errors sq (B, N), px^2.

    Huber with r = max(sqrt(sq), k): rho' = k / r (exactly 1 for inliers) and rho = sq rho'
    (2 - rho'), which is sq for inliers and 2 k sqrt(sq) - k^2 beyond k.
    """
    if robust is None:
        return sq, np.ones_like(sq)
    k2 = scale_px * scale_px
    if robust == 'huber':
        grad = scale_px / np.sqrt(np.maximum(sq, k2))
        return sq * grad * (2.0 - grad), grad
    ratio = sq / k2
    return k2 * np.log1p(ratio), 1.0 / (1.0 + ratio)


def evaluate(R: np.ndarray, t: np.ndarray, c: np.ndarray,
             problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return cost (B,), normal matrix H (B, P, P), rhs (B, P, 1), squared errors (B, N).

    At rotations R (B, 3, 3), translations t (B, 3) metres and shape coefficients c (B, M).
    cost is inf where a used point is at or behind the camera. H is the IRLS Gauss-Newton
    matrix J^T W J (W: D_i rho'(s_i)) plus the shape prior, the right-hand side the descent
    direction -J^T W r (r = projection - observation) minus the prior's gradient, so the
    Gauss-Newton step solves H x = rhs. The rotation parameters w move R on the left,
    R <- exp([w]x) R, so d X / d w = -[R P]x.
    """
    batch, num_kp = problem.used.shape
    num_basis = len(problem.prior)
    shape = problem.mean if num_basis == 0 else \
        problem.mean + (c @ problem.basis.reshape(num_basis, -1)).reshape(batch, num_kp, 3)
    rotated = shape @ R.mT
    uv_hat, jac_x, in_front = project_with_jacobian(rotated + t[:, None], problem.K)
    residual = problem.uv - uv_hat
    sq = np.vecdot(residual, residual)
    rho, rho_grad = robust_kernel(sq, problem.robust, problem.robust_scale_px)
    # d X / d (t, w) = [I | -[R P]x] per point (B, N, 3, 6), then (, R B_j) for the shape.
    jac_point = (rotated @ _POSE_JACOBIAN_LINEAR).reshape(batch, num_kp, 3, 6) \
        + _POSE_JACOBIAN_CONSTANT
    if num_basis:
        jac_point = np.concatenate([jac_point, R[:, None] @ problem.basis.transpose(1, 2, 0)],
                                   -1)
    jac = jac_x @ jac_point  # (B, N, 2, P)
    jac_t_w = (jac * (problem.weight * rho_grad)[..., None, None]).reshape(
        batch, -1, 6 + num_basis).mT
    H = jac_t_w @ jac.reshape(batch, -1, 6 + num_basis)
    rhs = jac_t_w @ residual.reshape(batch, -1, 1)
    cost = np.vecdot(problem.weight, rho)
    if num_basis:
        cost = cost + np.vecdot(problem.prior * c, c)
        H[:, 6:, 6:] += np.diag(problem.prior)
        rhs[:, 6:, 0] -= problem.prior * c
    # Every used point in front of the camera (bool >=: in front, or not used).
    return np.where((in_front >= problem.used).all(-1), cost, np.inf), H, rhs, sq


def all_finite(*arrays: np.ndarray) -> np.ndarray:
    """Return (B,) True where every value of the row is finite, for arrays (B, ...)."""
    return np.isfinite(np.concatenate([a.reshape(len(a), -1) for a in arrays], 1)).all(1)


@functools.cache
def identity(size: int) -> np.ndarray:
    """Return the (size, size) identity matrix (cached, read-only)."""
    eye = np.eye(size)
    eye.flags.writeable = False
    return eye


def solve_rows(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return x (B, P, K) solving A x = b per row, A (B, P, P), b (B, P, K) or (P, K).

    Rows whose A is singular get NaN (call it under np.errstate(invalid='ignore'), as solve_pose
    does, or numpy warns). numpy.linalg's own per-matrix LAPACK gufunc without the checks around
    it (a fifth of the time for one 6x6 row): a row's answer does not depend on the other rows.
    """
    return _LINALG_GUFUNCS.solve(A, b)


def determinants(A: np.ndarray) -> np.ndarray:
    """Return det(A) (B,) of square matrices A (B, P, P): numpy.linalg's gufunc, unchecked."""
    return _LINALG_GUFUNCS.det(A)
