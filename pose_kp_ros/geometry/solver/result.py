"""The solver's result: PoseResult, and the covariance and validity of a finished fit."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
import operator
from typing import Any

import numpy as np

from pose_kp_ros.geometry.solver.iteration import Fit
from pose_kp_ros.geometry.solver.problem import Problem, all_finite, identity, solve_rows


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


result_fields: Callable[[PoseResult], tuple[Any, ...]] = operator.attrgetter(
    *(field.name for field in fields(PoseResult)))
"""result_fields(result): the PoseResult fields in declaration order (a tuple)."""


def result_row(result: PoseResult, i: int) -> PoseResult:
    """Return batch row i of a batched numpy PoseResult as a single-problem PoseResult (a copy)."""
    return PoseResult(*(np.array(field[i]) for field in result_fields(result)))


def stacked_results(rows: Sequence[PoseResult | None], num_basis: int) -> PoseResult | None:
    """Stack single-problem PoseResults into one batched PoseResult (None when all rows are None).

    rows: B single-problem PoseResults or None; a None row becomes an invalid, NaN row (to the
    solver as a warm start: "solve this problem from the closed form"). num_basis: M, the
    length of coeffs.
    """
    if all(row is None for row in rows):
        return None
    empty = PoseResult(R=np.full((3, 3), np.nan), t=np.full(3, np.nan),
                       coeffs=np.full(num_basis, np.nan), cost=np.nan, rms_px=np.nan,
                       iterations=0, valid=False, covariance=np.full((6, 6), np.nan))
    columns = zip(*(result_fields(empty if row is None else row) for row in rows))
    return PoseResult(*(np.stack([np.asarray(value) for value in column]) for column in columns))


def set_rows(result: PoseResult, rows: Sequence[int] | np.ndarray, other: PoseResult,
             other_rows: Sequence[int] | np.ndarray) -> None:
    """Copy rows `other_rows` of the batched PoseResult `other` into rows `rows` of `result`."""
    for mine, theirs in zip(result_fields(result), result_fields(other)):
        mine[rows] = theirs[other_rows]


def rms_px(problem: Problem, sq: np.ndarray) -> np.ndarray:
    """Return the confidence-weighted RMS pixel error (B,) from squared errors sq (B, N) px^2."""
    return np.sqrt(np.vecdot(problem.weight, sq) / np.maximum(problem.weight_sum, 1e-300))


def finish(problem: Problem, ok: np.ndarray, fit: Fit) -> PoseResult:
    """Return the batched PoseResult of a fit: covariance, validity, NaN in invalid rows.

    fit: (R (B, 3, 3), t (B, 3), c (B, M), cost (B,), H (B, P, P), sq (B, N), iterations (B,))
    with H the normal matrix at the solution; ok (B,): the problem was solvable at all. The
    covariance is the (t, w) block of sigma^2 H^-1, sigma^2 = cost / max(2 n - P, 1).
    """
    R, t, c, cost, H, sq, iterations = fit
    num_params = H.shape[-1]
    H_inv = solve_rows(H, identity(num_params))
    dof = np.maximum(2 * problem.used.sum(-1) - num_params, 1)
    covariance = H_inv[:, :6, :6] * (cost / dof)[:, None, None]
    valid = ok & (covariance.diagonal(0, 1, 2) >= 0).all(-1) \
        & all_finite(cost[:, None], covariance, R, t, c)
    values = [R, t, c, cost, rms_px(problem, sq), covariance]
    if not valid.all():
        values = [np.where(valid.reshape((-1,) + (1,) * (x.ndim - 1)), x, np.nan)
                  for x in values]
    R, t, c, cost, rms, covariance = values
    return PoseResult(R=R, t=t, coeffs=c, cost=cost, rms_px=rms, iterations=iterations,
                      valid=valid, covariance=covariance)
