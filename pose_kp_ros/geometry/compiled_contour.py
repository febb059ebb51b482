"""The silhouette refinement's compiled parts: outline geometry, edge search, normal equations.

numba-compiled loops over a contour's points (see geometry/solver/compiled_inputs for the
compilation and its on-disk cache; the functions here call only each other). Poses move as in
solve_pose: R <- exp([w]x) R, t <- t + dt, parameters (t, w); pixels are pinhole pixels.
"""

import math

import numpy as np

from pose_kp_ros.geometry.camera import MIN_DEPTH_M
from pose_kp_ros.geometry.solver.compiled_inputs import COMPILED

HUBER_PX = 1.0
"""Edge residuals beyond this many pixels are down-weighted (chosen on held-out renders)."""


@COMPILED
def _pose_jacobian(point, R, t, K, jac):
    """Project an object point (3,) at (R, t); fill jac (2, 6) = d uv / d (t, w); return (u, v, z).

    d uv / d X = (K[:2] - uv e3^T) / z and d X / d (t, w) = [I | -[R p]x]: the solver's
    objective (solver/compiled_fit) writes the same per point; numba's cache rule keeps them in
    their own modules, and test_compiled_contour holds this one to camera.project_with_jacobian.
    """
    q0 = R[0, 0] * point[0] + R[0, 1] * point[1] + R[0, 2] * point[2]
    q1 = R[1, 0] * point[0] + R[1, 1] * point[1] + R[1, 2] * point[2]
    q2 = R[2, 0] * point[0] + R[2, 1] * point[1] + R[2, 2] * point[2]
    x0, x1, z = q0 + t[0], q1 + t[1], q2 + t[2]
    inv_z = 1.0 / z if z > MIN_DEPTH_M else 1.0
    u = (K[0, 0] * x0 + K[0, 1] * x1 + K[0, 2] * z) * inv_z
    v = (K[1, 0] * x0 + K[1, 1] * x1 + K[1, 2] * z) * inv_z
    a0, a1, a2 = K[0, 0] * inv_z, K[0, 1] * inv_z, (K[0, 2] - u) * inv_z
    b0, b1, b2 = K[1, 0] * inv_z, K[1, 1] * inv_z, (K[1, 2] - v) * inv_z
    jac[0, 0], jac[0, 1], jac[0, 2] = a0, a1, a2
    jac[1, 0], jac[1, 1], jac[1, 2] = b0, b1, b2
    jac[0, 3], jac[0, 4], jac[0, 5] = a2 * q1 - a1 * q2, a0 * q2 - a2 * q0, a1 * q0 - a0 * q1
    jac[1, 3], jac[1, 4], jac[1, 5] = b2 * q1 - b1 * q2, b0 * q2 - b2 * q0, b1 * q0 - b0 * q1
    return u, v, z


@COMPILED
def outline_geometry(points: np.ndarray, directions: np.ndarray, keypoint_points: np.ndarray,
                     R: np.ndarray, t: np.ndarray, K: np.ndarray) -> tuple:
    """Return the outline and keypoint terms of a contour model at pose (R (3, 3), t (3,) m).

    points, directions (M, 3): the ContourModel (object frame); keypoint_points (N, 3) m.
    Returns (uv (M, 2) px, normals (M, 2) unit outward normals of the projected outline,
    rows (M, 6) d (normal . uv) / d (t, w), keypoint uv (N, 2), keypoint jacobians (N, 2, 6),
    keypoints in front (N,) bool, ok): ok is False when a contour point is at or behind the
    camera or its normal vanishes.
    """
    count = len(points)
    uv = np.empty((count, 2))
    normals = np.empty((count, 2))
    rows = np.empty((count, 6))
    jac = np.empty((2, 6))
    ok = True
    for m in range(count):
        u, v, z = _pose_jacobian(points[m], R, t, K, jac)
        ok = ok and z > MIN_DEPTH_M
        uv[m, 0], uv[m, 1] = u, v
        d = R @ directions[m]  # the direction in the camera frame; its image is the normal
        n0 = jac[0, 0] * d[0] + jac[0, 1] * d[1] + jac[0, 2] * d[2]
        n1 = jac[1, 0] * d[0] + jac[1, 1] * d[1] + jac[1, 2] * d[2]
        length = math.sqrt(n0 * n0 + n1 * n1)
        ok = ok and length > 1e-12
        n0, n1 = n0 / length, n1 / length
        normals[m, 0], normals[m, 1] = n0, n1
        for k in range(6):
            rows[m, k] = n0 * jac[0, k] + n1 * jac[1, k]
    keypoint_uv = np.empty((len(keypoint_points), 2))
    keypoint_jac = np.empty((len(keypoint_points), 2, 6))
    in_front = np.empty(len(keypoint_points), dtype=np.bool_)
    for i in range(len(keypoint_points)):
        u, v, z = _pose_jacobian(keypoint_points[i], R, t, K, keypoint_jac[i])
        keypoint_uv[i, 0], keypoint_uv[i, 1] = u, v
        in_front[i] = z > MIN_DEPTH_M
    return uv, normals, rows, keypoint_uv, keypoint_jac, in_front, ok


@COMPILED
def normal_gradients(gx: np.ndarray, gy: np.ndarray, x: np.ndarray, y: np.ndarray,
                     normals: np.ndarray) -> np.ndarray:
    """Return |image gradient . normal| (M, O) at pixels (x, y) (M, O), normals (M, 2).

    gx, gy: float32 (H, W) gradient images, sampled bilinearly (0 outside the image).
    """
    height, width = gx.shape
    along = np.empty(x.shape)
    for m in range(x.shape[0]):
        for o in range(x.shape[1]):
            column, row = math.floor(x[m, o]), math.floor(y[m, o])
            fx, fy = x[m, o] - column, y[m, o] - row
            value_x = value_y = 0.0
            for dy in range(2):
                for dx in range(2):
                    c, r = column + dx, row + dy
                    if 0 <= c < width and 0 <= r < height:
                        weight = (fx if dx else 1.0 - fx) * (fy if dy else 1.0 - fy)
                        value_x += weight * gx[int(r), int(c)]
                        value_y += weight * gy[int(r), int(c)]
            along[m, o] = abs(value_x * normals[m, 0] + value_y * normals[m, 1])
    return along


@COMPILED
def edge_normal_equations(along: np.ndarray, grid: np.ndarray, rows: np.ndarray,
                          keypoints: np.ndarray, keypoint_uv: np.ndarray,
                          keypoint_jac: np.ndarray, keypoint_in_front: np.ndarray,
                          keypoint_weights: np.ndarray, keypoint_huber_px: float,
                          contour_balance: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the Gauss-Newton normal matrix (6, 6) and right-hand side (6,) of one step.

    along (M, O): `normal_gradients` at the offsets grid (O,) px along each outline normal;
    each contour point's residual is the offset of its strongest edge, weighted by the edge's
    strength over the mean strength and Huber (HUBER_PX); the contour term's total weight is
    contour_balance times the keypoints' (1 without keypoints). Keypoints (N, 2) px with
    weights (N,) (0: unused) pull towards their measured pixels, Huber keypoint_huber_px.
    """
    count = along.shape[0]
    residual = np.empty(count)
    strength = np.empty(count)
    for m in range(count):
        best = 0
        for o in range(1, along.shape[1]):
            if along[m, o] > along[m, best]:
                best = o
        residual[m] = grid[best]
        strength[m] = along[m, best]
    weights = strength / max(np.mean(strength), 1e-6)
    for m in range(count):
        weights[m] *= min(1.0, HUBER_PX / max(abs(residual[m]), 1e-9))
    total = np.sum(keypoint_weights) if len(keypoint_weights) else 1.0
    scale = contour_balance * total / max(np.sum(weights), 1e-9)
    normal = np.zeros((6, 6))
    rhs = np.zeros(6)
    for m in range(count):
        w = weights[m] * scale
        for k in range(6):
            rhs[k] += w * rows[m, k] * residual[m]
            for j in range(6):
                normal[k, j] += w * rows[m, k] * rows[m, j]
    for i in range(len(keypoints)):
        if not keypoint_weights[i] > 0:
            continue  # unused: no residual (its weight is 0 anyway)
        e0 = keypoints[i, 0] - keypoint_uv[i, 0]
        e1 = keypoints[i, 1] - keypoint_uv[i, 1]
        huber = min(1.0, keypoint_huber_px / max(math.sqrt(e0 * e0 + e1 * e1), 1e-9))
        w = keypoint_weights[i] * huber * (1.0 if keypoint_in_front[i] else 0.0)
        for k in range(6):
            rhs[k] += w * (keypoint_jac[i, 0, k] * e0 + keypoint_jac[i, 1, k] * e1)
            for j in range(6):
                normal[k, j] += w * (keypoint_jac[i, 0, k] * keypoint_jac[i, 0, j]
                                     + keypoint_jac[i, 1, k] * keypoint_jac[i, 1, j])
    return normal, rhs
