"""The solver's iteration: batched Levenberg-Marquardt from closed-form or warm starts.

Per problem: Marquardt damping H + mu diag(H), a step accepted only if it lowers the robust
cost (and keeps every keypoint in front of the camera), mu x0.2 on acceptance and x10 on
rejection; a problem stops when a step changes the cost by at most tolerance x (cost + 1e-4
px^2 x sum D), when its next step is predicted (step . rhs, the local quadratic model) to change
it by under PREDICTED_STOP times that (then that step is not evaluated: the usual last step of a
converged fit), when mu exceeds 1e10, or after max_iterations (each computed step counts as an
iteration). Masks keep finished problems frozen, so a problem's answer does not depend on the
rest of its batch.
"""

import math
from typing import NamedTuple

import numpy as np

from pose_kp_ros.geometry.rotations import so3_exp
from pose_kp_ros.geometry.solver.problem import Problem, evaluate, identity, solve_rows
from pose_kp_ros.geometry.solver.start import closed_form_candidates

MU_START_COLD = 1e-3
MU_START_WARM = 1e-4
MU_MAX = 1e10
NOISE_FLOOR_PX2 = 1e-4
PREDICTED_STOP = 0.01
"""A step predicted to change the cost by under this fraction of the tolerance is not tried."""


class Fit(NamedTuple):
    """State of a batched fit: parameters, cost, normal matrix, squared errors, iterations."""

    R: np.ndarray           # (B, 3, 3)
    t: np.ndarray           # (B, 3) metres
    c: np.ndarray           # (B, M)
    cost: np.ndarray        # (B,)
    H: np.ndarray           # (B, 6 + M, 6 + M)
    sq: np.ndarray          # (B, N) squared pixel errors
    iterations: np.ndarray  # (B,) int64


def levenberg_marquardt(problem: Problem, active: np.ndarray, R: np.ndarray, t: np.ndarray,
                        c: np.ndarray, mu: np.ndarray, max_iterations: int,
                        tolerance: float) -> Fit:
    """Run batched LM from (R (B, 3, 3), t (B, 3), c (B, M)) for the active (B,) problems."""
    cost, H, rhs, sq = evaluate(R, t, c, problem)
    active = active & np.isfinite(cost)
    floor = NOISE_FLOOR_PX2 * problem.weight_sum
    iterations = np.zeros(len(active), dtype=np.int64)
    eye = identity(H.shape[-1])
    for _ in range(max_iterations):
        if not active.any():
            break
        damping = mu[:, None] * (H.diagonal(0, 1, 2) + 1e-12)
        step = solve_rows(H + damping[..., None] * eye, rhs)
        iterations += active
        # The local quadratic model predicts a cost decrease between step . rhs and twice it:
        # far below the tolerance ends the problem here, without evaluating the step.
        predicted = (step.mT @ rhs)[:, 0, 0]
        active = active & ~(predicted <= PREDICTED_STOP * tolerance * (cost + floor))
        if not active.any():
            break
        step = step[..., 0]
        R_new = so3_exp(step[:, 3:6]) @ R
        t_new = t + step[:, :3]
        c_new = c + step[:, 6:]
        cost_new, H_new, rhs_new, sq_new = evaluate(R_new, t_new, c_new, problem)
        accept = active & (cost_new < cost)
        converged = np.abs(cost - cost_new) <= tolerance * (cost + floor)
        if accept.all():  # the common case, and the same values as the masked merge below
            R, t, c, H, rhs, sq, cost = R_new, t_new, c_new, H_new, rhs_new, sq_new, cost_new
        elif accept.any():
            rows = accept[:, None]
            R, H, rhs = (np.where(rows[..., None], new, old) for new, old in
                         ((R_new, R), (H_new, H), (rhs_new, rhs)))
            t, c, sq = (np.where(rows, new, old) for new, old in
                        ((t_new, t), (c_new, c), (sq_new, sq)))
            cost = np.where(accept, cost_new, cost)
        mu = mu * np.where(accept, 0.2, 10.0)
        active = active & ~converged & (mu < MU_MAX)
    return Fit(R, t, c, cost, H, sq, iterations)


def cold_solve(problem: Problem, ok: np.ndarray, max_iterations: int, tolerance: float) -> Fit:
    """Solve the ok (B,) problems from their closed-form candidate of lowest cost."""
    candidates = closed_form_candidates(problem, ok)
    c = np.zeros((len(ok), len(problem.prior)))
    R, t = candidates[0]
    cost = evaluate(R, t, c, problem)[0]
    for R_other, t_other in candidates[1:]:
        cost_other = evaluate(R_other, t_other, c, problem)[0]
        better = cost_other < cost
        R = np.where(better[:, None, None], R_other, R)
        t = np.where(better[:, None], t_other, t)
        cost = np.where(better, cost_other, cost)
    mu = np.full(len(ok), MU_START_COLD)
    return levenberg_marquardt(problem, ok, R, t, c, mu, max_iterations, tolerance)


def warm_solve(problem: Problem, ok: np.ndarray,
               init: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], max_iterations: int,
               tolerance: float, fallback_rms_px: float) -> Fit:
    """Solve from init (R, t, c, init_ok) (see start.warm_start); re-solve poor rows cold.

    Rows whose init is unusable or whose warm fit ends with a robust RMS sqrt(cost / sum D)
    above fallback_rms_px are solved again from the closed form; the lower cost wins (0: every
    row with a cost above 0). With fallback_rms_px inf, rows without a usable init stay unsolved
    (cost inf: invalid).
    """
    R, t, c, init_ok = init
    mu = np.full(len(ok), MU_START_WARM)
    warm = levenberg_marquardt(problem, ok & init_ok, R, t, c, mu, max_iterations, tolerance)
    if math.isinf(fallback_rms_px):
        return warm._replace(cost=np.where(init_ok, warm.cost, np.inf))
    # Robust RMS: outliers the kernel down-weights must not trigger a cold re-solve.
    robust_rms = np.sqrt(warm.cost / np.maximum(problem.weight_sum, 1e-300))
    retry = ok & (~init_ok | ~np.isfinite(warm.cost) | ~(robust_rms <= fallback_rms_px))
    index = np.flatnonzero(retry)
    if len(index) == 0:
        return warm
    cold = cold_solve(problem.select(index), ok[index], max_iterations, tolerance)
    cold = cold._replace(iterations=cold.iterations + warm.iterations[index])
    better = cold.cost < warm.cost[index]
    merged = []
    for warm_field, cold_field in zip(warm, cold):
        field = np.array(warm_field)
        field[index] = np.where(better.reshape((-1,) + (1,) * (cold_field.ndim - 1)),
                                cold_field, warm_field[index])
        merged.append(field)
    return Fit(*merged)
