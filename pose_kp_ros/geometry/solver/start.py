"""The solver's starting poses: closed-form candidates (OpenCV) and warm starts.

Closed form: OpenCV's SQPnP (Terzakis and Lourakis, ECCV 2020) on the mean shape, and AP3P for
4-point sets; IPPE and EPnP where those find nothing (SQPnP refuses image points clustered in a
few pixels); warm: a previous PoseResult's rotation, translation and shape coefficients.
"""

import cv2
import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros.geometry.solver.compiled_inputs import warm_starts
from pose_kp_ros.geometry.solver.problem import Problem

INIT_RELATIVE_CONFIDENCE = 0.5
"""The closed-form start uses keypoints with conf >= this times the problem's largest conf."""
FALLBACK_METHODS = (cv2.SOLVEPNP_IPPE, cv2.SOLVEPNP_EPNP)
"""Closed-form methods tried where SQPnP (and AP3P) found nothing: IPPE (planar points, both
of its solutions), EPnP (any). Their candidates compete like the others (lowest cost wins)."""


def closed_form_candidates(problem: Problem,
                           ok: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return closed-form starts on the mean shape, on confident and on all usable keypoints.

    Every solution of SQPnP (and, for 4 points, of AP3P; where they find none, of
    FALLBACK_METHODS) is a candidate; this per-problem
    OpenCV call is the solver's only Python loop over problems.

    Returns a list of C (R (B, 3, 3), t (B, 3) metres) slots; rows with fewer than C solutions
    (or none) are padded with R = I, t = (0, 0, -1), which is infeasible (cost inf).
    """
    solutions = [[] for _ in range(len(ok))]
    for b in np.flatnonzero(ok):
        weight = problem.weight[b]
        usable = weight > 0
        confident = weight >= INIT_RELATIVE_CONFIDENCE * weight.max()
        subsets = [usable] if confident.sum() < 4 or confident.sum() == usable.sum() else \
            [confident, usable]
        for subset in subsets:
            # SQPnP misses the pose of ~2% of noiseless 4-point sets; AP3P does not.
            methods = (cv2.SOLVEPNP_SQPNP,) + ((cv2.SOLVEPNP_AP3P,) if subset.sum() == 4 else ())
            found = _closed_form(problem.mean[subset], problem.uv[b, subset], problem.K[b],
                                 methods)
            if not found:  # SQPnP refuses image points this clustered (a small far object)
                found = _closed_form(problem.mean[subset], problem.uv[b, subset],
                                     problem.K[b], FALLBACK_METHODS)
            solutions[b] += found
    slots = max(1, max(len(found) for found in solutions))
    R = np.tile(np.eye(3), (slots, len(ok), 1, 1))
    t = np.tile([0.0, 0.0, -1.0], (slots, len(ok), 1))
    for b, found in enumerate(solutions):
        for k, (R_found, t_found) in enumerate(found):
            R[k, b], t[k, b] = R_found, t_found
    return list(zip(R, t))


def _closed_form(points: np.ndarray, uv: np.ndarray, K: np.ndarray,
                 methods: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the finite (R (3, 3), t (3,)) solutions of OpenCV's PnP `methods`, in order.

    points: (N, 3) model points, metres; uv: (N, 2) pixels; K: (3, 3). A method that raises
    (degenerate input for it) adds nothing.
    """
    solutions = []
    for method in methods:
        try:
            _, rvecs, tvecs, _ = cv2.solvePnPGeneric(points, uv, K, None, flags=method)
        except cv2.error:
            continue
        solutions += [(cv2.Rodrigues(r)[0], tv[:, 0]) for r, tv in zip(rvecs, tvecs)
                      if np.isfinite(r).all() and np.isfinite(tv).all()]
    return solutions


def warm_start(R: ArrayLike, t: ArrayLike, coeffs: ArrayLike, valid: ArrayLike, batch: int,
               num_basis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (R (B, 3, 3), t (B, 3), c (B, M), ok (B,)) from a previous pose of batch B or 1.

    R, t, coeffs, valid: a PoseResult's fields as numpy arrays, batched or single. Rows that
    are invalid, not finite or not a rotation get ok False (compiled_inputs.warm_starts).

    Raises:
        ValueError: for a batch other than B or 1, or a number of coefficients other than M.
    """
    R = np.asarray(R, dtype=np.float64)
    lift = (lambda x: x[None]) if R.ndim == 2 else (lambda x: x)
    R = lift(R)
    t = lift(np.asarray(t, dtype=np.float64))
    c = lift(np.asarray(coeffs, dtype=np.float64)).reshape(R.shape[0], -1)
    valid = lift(np.asarray(valid, dtype=bool)).reshape(-1)
    if R.shape[0] not in (1, batch) or t.shape != (R.shape[0], 3) or c.shape[1] != num_basis:
        raise ValueError(f'init: expected a PoseResult of batch {batch} (or 1) with {num_basis} '
                         f'shape coefficients, got R {tuple(R.shape)}, t {tuple(t.shape)}, '
                         f'coeffs {tuple(c.shape)}')
    return warm_starts(*(np.ascontiguousarray(x) for x in (R, t, c, valid)), batch)
