"""The solver's compiled fit: objective, normal equations, Levenberg-Marquardt, covariance.

numba-compiled loops over the problems of a batch, one problem at a time (a problem's answer
cannot depend on the rest of its batch). Arrays as in problem.Problem: uv (B, N, 2) px, weight
(B, N), used (B, N) bool, K (B, 3, 3), mean (N, 3) m, basis (M, N, 3) m, prior (M,) px^2;
parameters ordered (t, w, c), P = 6 + M, the rotation moved on the left, R <- exp([w]x) R.
Compiled on first use and cached beside this file (or in numba's user cache directory where
that is read-only): tens of seconds once per machine and version, then well under a second at
start. The functions release the GIL, and call only each other (see compiled_inputs). See
docs/solver.md for the method.
"""

import math

import numpy as np

from pose_kp_ros.geometry.camera import MIN_DEPTH_M
from pose_kp_ros.geometry.solver.compiled_inputs import COMPILED

ROBUST_CODES = {None: 0, 'huber': 1, 'cauchy': 2}
"""The robust kernels' codes in the compiled functions."""
MU_START_COLD = 1e-3
MU_START_WARM = 1e-4
MU_MAX = 1e10
NOISE_FLOOR_PX2 = 1e-4
PREDICTED_STOP = 0.01
"""A step predicted to change the cost by under this fraction of the tolerance is not tried."""

@COMPILED
def _objective(uv, weight, used, K, mean, basis, prior, robust, scale, R, t, c, H, rhs, sq):
    """Return one problem's cost at (R (3, 3), t (3,), c (M,)); fill H (P, P), rhs (P,), sq (N,).

    cost is inf where a used point is at or behind the camera. H is the IRLS Gauss-Newton
    matrix J^T W J (W: D_i rho'(s_i)) plus the shape prior, rhs = -J^T W r (r = projection -
    observation) minus the prior's gradient, so the Gauss-Newton step solves H x = rhs.
    """
    num_basis = basis.shape[0]
    params = 6 + num_basis
    H[:, :] = 0.0
    rhs[:] = 0.0
    jac_u = np.empty(params)
    jac_v = np.empty(params)
    k2 = scale * scale
    cost = 0.0
    feasible = True
    for i in range(mean.shape[0]):
        p0, p1, p2 = mean[i, 0], mean[i, 1], mean[i, 2]
        for j in range(num_basis):
            p0 += c[j] * basis[j, i, 0]
            p1 += c[j] * basis[j, i, 1]
            p2 += c[j] * basis[j, i, 2]
        q0 = R[0, 0] * p0 + R[0, 1] * p1 + R[0, 2] * p2
        q1 = R[1, 0] * p0 + R[1, 1] * p1 + R[1, 2] * p2
        q2 = R[2, 0] * p0 + R[2, 1] * p1 + R[2, 2] * p2
        x0, x1, x2 = q0 + t[0], q1 + t[1], q2 + t[2]
        in_front = x2 > MIN_DEPTH_M
        if used[i] and not in_front:
            feasible = False
        inv_z = 1.0 / x2 if in_front else 1.0
        u = (K[0, 0] * x0 + K[0, 1] * x1 + K[0, 2] * x2) * inv_z
        v = (K[1, 0] * x0 + K[1, 1] * x1 + K[1, 2] * x2) * inv_z
        r0, r1 = uv[i, 0] - u, uv[i, 1] - v
        s = r0 * r0 + r1 * r1
        sq[i] = s
        if robust == 1:  # Huber: rho' = k / max(sqrt(s), k), rho = s rho' (2 - rho')
            grad = scale / math.sqrt(max(s, k2))
            rho = s * grad * (2.0 - grad)
        elif robust == 2:  # Cauchy
            grad = 1.0 / (1.0 + s / k2)
            rho = k2 * math.log1p(s / k2)
        else:
            grad = 1.0
            rho = s
        cost += weight[i] * rho
        w = weight[i] * grad
        if w == 0.0:
            continue
        # d uv / d X = (K[:2] - uv e3^T) / z; d X / d (t, w, c) = [I | -[q]x | R B_j].
        a0, a1, a2 = K[0, 0] * inv_z, K[0, 1] * inv_z, (K[0, 2] - u) * inv_z
        b0, b1, b2 = K[1, 0] * inv_z, K[1, 1] * inv_z, (K[1, 2] - v) * inv_z
        jac_u[0], jac_u[1], jac_u[2] = a0, a1, a2
        jac_v[0], jac_v[1], jac_v[2] = b0, b1, b2
        jac_u[3], jac_u[4], jac_u[5] = a2 * q1 - a1 * q2, a0 * q2 - a2 * q0, a1 * q0 - a0 * q1
        jac_v[3], jac_v[4], jac_v[5] = b2 * q1 - b1 * q2, b0 * q2 - b2 * q0, b1 * q0 - b0 * q1
        for j in range(num_basis):
            d0 = R[0, 0] * basis[j, i, 0] + R[0, 1] * basis[j, i, 1] + R[0, 2] * basis[j, i, 2]
            d1 = R[1, 0] * basis[j, i, 0] + R[1, 1] * basis[j, i, 1] + R[1, 2] * basis[j, i, 2]
            d2 = R[2, 0] * basis[j, i, 0] + R[2, 1] * basis[j, i, 1] + R[2, 2] * basis[j, i, 2]
            jac_u[6 + j] = a0 * d0 + a1 * d1 + a2 * d2
            jac_v[6 + j] = b0 * d0 + b1 * d1 + b2 * d2
        for k in range(params):
            wu, wv = w * jac_u[k], w * jac_v[k]
            rhs[k] += wu * r0 + wv * r1
            for m in range(k + 1):
                H[k, m] += wu * jac_u[m] + wv * jac_v[m]
    for k in range(params):
        for m in range(k):
            H[m, k] = H[k, m]
    for j in range(num_basis):
        cost += prior[j] * c[j] * c[j]
        H[6 + j, 6 + j] += prior[j]
        rhs[6 + j] -= prior[j] * c[j]
    return cost if feasible else np.inf


@COMPILED
def _solve(A, B):
    """Return X solving A X = B (A (P, P), B (P, K)): LU, partial pivoting; NaN if singular."""
    size = len(A)
    lu = A.copy()
    X = B.copy()
    for k in range(size):
        pivot = k
        for row in range(k + 1, size):
            if abs(lu[row, k]) > abs(lu[pivot, k]):
                pivot = row
        if lu[pivot, k] == 0.0:
            X[:, :] = np.nan
            return X
        if pivot != k:
            for col in range(size):
                lu[k, col], lu[pivot, col] = lu[pivot, col], lu[k, col]
            for col in range(X.shape[1]):
                X[k, col], X[pivot, col] = X[pivot, col], X[k, col]
        for row in range(k + 1, size):
            factor = lu[row, k] / lu[k, k]
            for col in range(k + 1, size):
                lu[row, col] -= factor * lu[k, col]
            for col in range(X.shape[1]):
                X[row, col] -= factor * X[k, col]
    for k in range(size - 1, -1, -1):
        for col in range(X.shape[1]):
            total = X[k, col]
            for m in range(k + 1, size):
                total -= lu[k, m] * X[m, col]
            X[k, col] = total / lu[k, k]
    return X


@COMPILED
def _rotated(w, R):
    """Return exp([w]x) R for a rotation vector w (3,) radians and R (3, 3) (half-angle form).

    exp([w]x) = I + (s cos h) W + (s^2 / 2) W^2 with h = |w| / 2, s = sin h / h, W = [w]x.
    """
    half = 0.5 * math.sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
    safe_half = max(half, 2.2250738585072014e-308)
    s = math.sin(safe_half) / safe_half
    first, second = s * math.cos(half), 0.5 * s * s
    W = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
    rotation = np.eye(3) + first * W + second * (W @ W)
    return rotation @ R


@COMPILED
def fit_rows(uv: np.ndarray, weight: np.ndarray, used: np.ndarray, weight_sum: np.ndarray,
             K: np.ndarray, mean: np.ndarray, basis: np.ndarray, prior: np.ndarray, robust: int,
             scale: float, R: np.ndarray, t: np.ndarray, c: np.ndarray, active: np.ndarray,
             mu_start: np.ndarray, max_iterations: int, tolerance: float) -> tuple:
    """Levenberg-Marquardt from (R (B, 3, 3), t (B, 3), c (B, M)) for the active (B,) problems.

    Returns (R, t, c, cost (B,), H (B, P, P), sq (B, N), iterations (B,)): inactive problems
    keep their start with its cost and normal matrix. Per problem: Marquardt damping H + mu
    diag(H) from mu_start, a step accepted only if it lowers the cost (inf behind the camera),
    mu x0.2 on acceptance and x10 on rejection; it stops when a step changes the cost by at most
    tolerance x (cost + NOISE_FLOOR_PX2 x sum D), when the next step is predicted (step . rhs)
    to change it by under PREDICTED_STOP times that (the step is then not evaluated), when mu
    reaches MU_MAX, or after max_iterations computed steps.
    """
    batch, num_kp = weight.shape
    params = 6 + basis.shape[0]
    R, t, c = R.copy(), t.copy(), c.copy()
    cost = np.empty(batch)
    H = np.empty((batch, params, params))
    sq = np.empty((batch, num_kp))
    iterations = np.zeros(batch, dtype=np.int64)
    rhs = np.empty(params)
    H_new, rhs_new, sq_new = np.empty((params, params)), np.empty(params), np.empty(num_kp)
    for b in range(batch):
        arrays = (uv[b], weight[b], used[b], K[b], mean, basis, prior, robust, scale)
        cost[b] = _objective(*arrays, R[b], t[b], c[b], H[b], rhs, sq[b])
        if not (active[b] and np.isfinite(cost[b])):
            continue
        floor = NOISE_FLOOR_PX2 * weight_sum[b]
        mu = mu_start[b]
        for _ in range(max_iterations):
            damped = H[b].copy()
            for k in range(params):
                damped[k, k] += mu * (H[b, k, k] + 1e-12)
            step = np.ascontiguousarray(_solve(damped, rhs.reshape((params, 1)))[:, 0])
            iterations[b] += 1
            # The local quadratic model predicts a decrease between step . rhs and twice it.
            if np.dot(step, rhs) <= PREDICTED_STOP * tolerance * (cost[b] + floor):
                break
            R_new = _rotated(step[3:6], R[b])
            t_new = t[b] + step[:3]
            c_new = c[b] + step[6:]
            cost_new = _objective(*arrays, R_new, t_new, c_new, H_new, rhs_new, sq_new)
            converged = abs(cost[b] - cost_new) <= tolerance * (cost[b] + floor)
            if cost_new < cost[b]:
                R[b], t[b], c[b], cost[b] = R_new, t_new, c_new, cost_new
                H[b], rhs[:], sq[b] = H_new, rhs_new, sq_new
                mu *= 0.2
            else:
                mu *= 10.0
            if converged or not mu < MU_MAX:
                break
    return R, t, c, cost, H, sq, iterations


@COMPILED
def costs(uv: np.ndarray, weight: np.ndarray, used: np.ndarray, K: np.ndarray, mean: np.ndarray,
          basis: np.ndarray, prior: np.ndarray, robust: int, scale: float, R: np.ndarray,
          t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Return the cost (B,) of each problem at (R (B, 3, 3), t (B, 3), c (B, M))."""
    batch, num_kp = weight.shape
    params = 6 + basis.shape[0]
    H, rhs, sq = np.empty((params, params)), np.empty(params), np.empty(num_kp)
    result = np.empty(batch)
    for b in range(batch):
        result[b] = _objective(uv[b], weight[b], used[b], K[b], mean, basis, prior, robust,
                               scale, R[b], t[b], c[b], H, rhs, sq)
    return result


@COMPILED
def finished(weight: np.ndarray, weight_sum: np.ndarray, used: np.ndarray, ok: np.ndarray,
             R: np.ndarray, t: np.ndarray, c: np.ndarray, cost: np.ndarray, H: np.ndarray,
             sq: np.ndarray) -> tuple:
    """Return (R, t, c, cost, rms_px (B,), covariance (B, 6, 6), valid (B,)) of a finished fit.

    H (B, P, P): the normal matrix at the solution; sq (B, N) squared errors px^2; ok (B,): the
    problem was solvable at all. The covariance is the (t, w) block of sigma^2 H^-1, sigma^2 =
    cost / max(2 n - P, 1); rms_px the weight-weighted RMS pixel error. Rows that are not valid
    (not ok, a negative variance or any non-finite value) are NaN.
    """
    batch, params = H.shape[0], H.shape[1]
    R, t, c, cost = R.copy(), t.copy(), c.copy(), cost.copy()
    rms = np.empty(batch)
    covariance = np.empty((batch, 6, 6))
    valid = np.zeros(batch, dtype=np.bool_)
    for b in range(batch):
        dof = max(2 * np.sum(used[b]) - params, 1)
        covariance[b] = _solve(H[b], np.eye(params))[:6, :6] * (cost[b] / dof)
        rms[b] = math.sqrt(np.dot(weight[b], sq[b]) / max(weight_sum[b], 1e-300))
        valid[b] = (ok[b] and np.all(np.diag(covariance[b]) >= 0) and np.isfinite(cost[b])
                    and np.all(np.isfinite(covariance[b]))
                    and np.all(np.isfinite(R[b])) and np.all(np.isfinite(t[b]))
                    and np.all(np.isfinite(c[b])))
        if not valid[b]:
            R[b], t[b], c[b], covariance[b] = np.nan, np.nan, np.nan, np.nan
            cost[b], rms[b] = np.nan, np.nan
    return R, t, c, cost, rms, covariance, valid
