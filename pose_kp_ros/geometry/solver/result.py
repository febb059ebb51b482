"""The solver's result: PoseResult, and the covariance and validity of a finished fit."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
import operator
from typing import Any

import numpy as np

from pose_kp_ros.geometry.solver.compiled_fit import finished
from pose_kp_ros.geometry.solver.iteration import Fit
from pose_kp_ros.geometry.solver.problem import Problem


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


def finish(problem: Problem, ok: np.ndarray, fit: Fit) -> PoseResult:
    """Return the batched PoseResult of a fit: covariance, validity, NaN in invalid rows.

    fit: (R (B, 3, 3), t (B, 3), c (B, M), cost (B,), H (B, P, P), sq (B, N), iterations (B,))
    with H the normal matrix at the solution; ok (B,): the problem was solvable at all. The
    covariance is the (t, w) block of sigma^2 H^-1, sigma^2 = cost / max(2 n - P, 1)
    (compiled_fit.finished).
    """
    R, t, c, cost, rms, covariance, valid = finished(
        problem.weight, problem.weight_sum, problem.used, ok, fit.R, fit.t, fit.c, fit.cost,
        fit.H, fit.sq)
    return PoseResult(R=R, t=t, coeffs=c, cost=cost, rms_px=rms, iterations=fit.iterations,
                      valid=valid, covariance=covariance)
