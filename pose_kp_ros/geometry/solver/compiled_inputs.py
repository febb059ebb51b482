"""The solver's compiled input checks: usable keypoints, weights, layouts and warm starts.

numba-compiled loops over the rows of a batch (see compiled_fit for the compilation and its
cache). Functions of this module call only each other: numba's cache of a function is renewed
when its own file changes, not when a function it calls from another file does.
"""

import numba
import numpy as np

COMPILED = numba.njit(cache=True, nogil=True, error_model='numpy')
"""The solver's compilation: cached on disk, GIL-free, float division by zero gives inf or
NaN as in numpy."""
COLLINEAR_RATIO = 1e-8
"""Layouts whose second/first principal variance (lambda2 / lambda1) is below this are lines."""
ROTATION_TOLERANCE = 1e-3
"""A warm start's R counts as a rotation when |R R^T - I| stays below this everywhere."""


@COMPILED
def keypoint_weights(uv: np.ndarray, conf: np.ndarray, min_confidence: float,
                     confidence_power: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (weight (B, N), used (B, N) bool) for uv (B, N, 2) px and conf (B, N).

    used: finite pixels and confidence, confidence > min_confidence; weight: conf **
    confidence_power where used, else 0.
    """
    batch, num_kp = conf.shape
    weight = np.zeros((batch, num_kp))
    used = np.zeros((batch, num_kp), dtype=np.bool_)
    for b in range(batch):
        for i in range(num_kp):
            if (np.isfinite(uv[b, i, 0]) and np.isfinite(uv[b, i, 1])
                    and np.isfinite(conf[b, i]) and conf[b, i] > min_confidence):
                used[b, i] = True
                weight[b, i] = conf[b, i] ** confidence_power
    return weight, used


@COMPILED
def collinear(points: np.ndarray, used: np.ndarray) -> bool:
    """Return True if the used (N,) of points (N, 3) lie on a line or coincide.

    With S the scatter matrix, lambda1 lambda2 <= I2 = ((tr S)^2 - tr(S^2)) / 2 <= 3 lambda1
    lambda2 and tr S <= 3 lambda1, so I2 / tr(S)^2 bounds lambda2 / lambda1 within a factor 9.
    """
    count = 0
    centroid = np.zeros(3)
    for i in range(len(points)):
        if used[i]:
            count += 1
            centroid += points[i]
    centroid /= max(count, 1)
    scatter = np.zeros((3, 3))
    for i in range(len(points)):
        if used[i]:
            d = points[i] - centroid
            scatter += np.outer(d, d)
    trace = scatter[0, 0] + scatter[1, 1] + scatter[2, 2]
    invariant2 = (trace * trace - np.sum(scatter * scatter)) / 2.0
    return not invariant2 > COLLINEAR_RATIO * trace * trace


@COMPILED
def sanitised(uv: np.ndarray, conf: np.ndarray, K: np.ndarray, K_ok: np.ndarray, mean: np.ndarray,
              min_confidence: float, confidence_power: float) -> tuple:
    """Return (uv, weight, used, weight_sum, K, ok) of a batch, ready for the fit.

    uv (B, N, 2) px, conf (B, N), K (B, 3, 3) with K_ok (B,) its validity, mean (N, 3) the
    model's keypoints. Unused keypoints get uv 0 and weight 0, invalid K the identity; ok: at
    least 4 usable keypoints, not collinear, valid K.
    """
    weight, used = keypoint_weights(uv, conf, min_confidence, confidence_power)
    batch = len(conf)
    uv = uv.copy()
    K = K.copy()
    weight_sum = np.zeros(batch)
    ok = np.zeros(batch, dtype=np.bool_)
    for b in range(batch):
        weight_sum[b] = np.sum(weight[b])
        for i in range(len(mean)):
            if not used[b, i]:
                uv[b, i] = 0.0
        if not K_ok[b]:
            K[b] = np.eye(3)
        ok[b] = K_ok[b] and np.sum(used[b]) >= 4 and not collinear(mean, used[b])
    return uv, weight, used, weight_sum, K, ok


@COMPILED
def warm_starts(R: np.ndarray, t: np.ndarray, c: np.ndarray, valid: np.ndarray,
                batch: int) -> tuple:
    """Return (R (B, 3, 3), t (B, 3), c (B, M), ok (B,)) from previous poses of batch B or 1.

    R (B', 3, 3), t (B', 3), c (B', M), valid (B',) with B' = B or 1 (one pose for every row).
    Rows that are invalid, not finite or not a rotation (|R R^T - I| >= ROTATION_TOLERANCE
    somewhere, or det R <= 0: LM moves R on SO(3), it cannot repair a non-rotation) get ok
    False and the harmless values R = I, t = (1, 1, 1), c = 0.
    """
    R_out = np.empty((batch, 3, 3))
    t_out = np.empty((batch, 3))
    c_out = np.empty((batch, c.shape[1]))
    ok = np.zeros(batch, dtype=np.bool_)
    for b in range(batch):
        source = b if len(R) == batch else 0
        rotation = R[source]
        good = (valid[source] and np.all(np.isfinite(rotation))
                and np.all(np.isfinite(t[source])) and np.all(np.isfinite(c[source])))
        if good:
            error = np.abs(rotation @ rotation.T - np.eye(3))
            good = np.max(error) < ROTATION_TOLERANCE and _determinant(rotation) > 0
        ok[b] = good
        if good:
            R_out[b], t_out[b], c_out[b] = rotation, t[source], c[source]
        else:
            R_out[b], t_out[b], c_out[b] = np.eye(3), 1.0, 0.0
    return R_out, t_out, c_out, ok


@COMPILED
def _determinant(A):
    """Return det A of a (3, 3) matrix."""
    return (A[0, 0] * (A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1])
            - A[0, 1] * (A[1, 0] * A[2, 2] - A[1, 2] * A[2, 0])
            + A[0, 2] * (A[1, 0] * A[2, 1] - A[1, 1] * A[2, 0]))
