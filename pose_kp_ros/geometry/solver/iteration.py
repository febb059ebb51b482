"""The solver's iteration: Levenberg-Marquardt from closed-form or warm starts.

The iteration itself is compiled (compiled_fit.fit_rows, one problem at a time, so a problem's
answer does not depend on the rest of its batch); here: the cold start's choice among the
closed-form candidates, and the warm start with its cold fallback.
"""

import math
from typing import NamedTuple

import numpy as np

from pose_kp_ros.geometry.solver import compiled_fit
from pose_kp_ros.geometry.solver.problem import Problem
from pose_kp_ros.geometry.solver.start import closed_form_candidates


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
    """Run LM from (R (B, 3, 3), t (B, 3), c (B, M)) for the active (B,) problems.

    mu (B,): the starting damping. compiled_fit.fit_rows does the work (see there).
    """
    return Fit(*compiled_fit.fit_rows(*problem.compiled_arrays(), *_contiguous(R, t, c),
                                  np.ascontiguousarray(active), mu, max_iterations,
                                  tolerance))


def problem_costs(problem: Problem, R: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Return the cost (B,) of each problem at (R (B, 3, 3), t (B, 3), c (B, M))."""
    uv, weight, used, _, K, *model = problem.compiled_arrays()
    return compiled_fit.costs(uv, weight, used, K, *model, *_contiguous(R, t, c))


def _contiguous(*arrays):
    """Return the arrays as float64 and C-contiguous (views copied).

    One compiled specialisation then serves every caller.
    """
    return tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)


def cold_solve(problem: Problem, ok: np.ndarray, max_iterations: int, tolerance: float) -> Fit:
    """Solve the ok (B,) problems from their closed-form candidate of lowest cost."""
    candidates = closed_form_candidates(problem, ok)
    c = np.zeros((len(ok), len(problem.prior)))
    R, t = candidates[0]
    cost = problem_costs(problem, R, t, c)
    for R_other, t_other in candidates[1:]:
        cost_other = problem_costs(problem, R_other, t_other, c)
        better = cost_other < cost
        R = np.where(better[:, None, None], R_other, R)
        t = np.where(better[:, None], t_other, t)
        cost = np.where(better, cost_other, cost)
    mu = np.full(len(ok), compiled_fit.MU_START_COLD)
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
    mu = np.full(len(ok), compiled_fit.MU_START_WARM)
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
