"""Pose-error metrics: batched pure functions over numpy arrays (torch CPU tensors also accepted).

Shapes: rotations (B, 3, 3), translations (B, 3) metres, model points (N, 3) or (B, N, 3) metres,
K (3, 3) or (B, 3, 3). Every function returns a numpy array (B,) unless said otherwise.
Definitions follow the BOP toolkit's pose_error.py (Hodan et al., "BOP: Benchmark for 6D Object
Pose Estimation", ECCV 2018) where it has them.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.rotations import rotation_angle


def _transform(R, t, points):
    """Return R points + t, (B, N, 3), for R (B, 3, 3), t (B, 3), points (N, 3) or (B, N, 3)."""
    R, t, points = np.asarray(R, float), np.asarray(t, float), np.asarray(points, float)
    return points @ np.swapaxes(R, -1, -2) + t[..., None, :]


def rotation_error_deg(R_est: ArrayLike, R_gt: ArrayLike) -> np.ndarray:
    """Return the angle of R_est R_gt^T in degrees, (B,), in [0, 180].

    Reference: Hodan et al., "On Evaluation of 6D Object Pose Estimation", ECCVW 2016, e_RE
    (computed with atan2, accurate for small angles, unlike arccos of the trace).
    """
    relative = np.asarray(R_est, float) @ np.swapaxes(np.asarray(R_gt, float), -1, -2)
    return np.degrees(rotation_angle(relative))


def translation_error(t_est: ArrayLike, t_gt: ArrayLike) -> np.ndarray:
    """Return the Euclidean distance ||t_est - t_gt|| (B,), in the unit of t (metres).

    Reference: Hodan et al., ECCVW 2016, e_TE.
    """
    return np.linalg.norm(np.asarray(t_est, float) - np.asarray(t_gt, float), axis=-1)


def add(R_est: ArrayLike, t_est: ArrayLike, R_gt: ArrayLike, t_gt: ArrayLike,
        points: ArrayLike) -> np.ndarray:
    """Return ADD, the mean distance between model points under both poses, (B,), metres.

    Reference: Hinterstoisser et al., "Model Based Training, Detection and Pose Estimation of
    Texture-Less 3D Objects in Heavily Cluttered Scenes", ACCV 2012, eq. 1.
    """
    diff = _transform(R_est, t_est, points) - _transform(R_gt, t_gt, points)
    return np.linalg.norm(diff, axis=-1).mean(-1)


def add_s(R_est: ArrayLike, t_est: ArrayLike, R_gt: ArrayLike, t_gt: ArrayLike,
          points: ArrayLike) -> np.ndarray:
    """Return ADD-S (ADI) for symmetric objects, (B,), metres.

    Mean over the ground-truth-posed points of the distance to the closest estimate-posed point.
    Reference: Hinterstoisser et al., ACCV 2012, eq. 2. Closest points from a KD-tree per pose
    (as the BOP toolkit): O(B N log N), so whole meshes can be used.
    """
    est, gt = np.broadcast_arrays(_transform(R_est, t_est, points),
                                  _transform(R_gt, t_gt, points))
    count = est.shape[-2]
    distances = [cKDTree(e).query(g)[0].mean() for e, g in
                 zip(est.reshape(-1, count, 3), gt.reshape(-1, count, 3))]
    return np.asarray(distances, dtype=np.float64).reshape(est.shape[:-2])


def projection_error_2d(R_est: ArrayLike, t_est: ArrayLike, R_gt: ArrayLike, t_gt: ArrayLike,
                        points: ArrayLike, K: ArrayLike) -> np.ndarray:
    """Return the mean pixel distance between model points projected under both poses, (B,).

    Reference: Brachmann et al., "Uncertainty-Driven 6D Pose Estimation of Objects and Scenes
    from a Single RGB Image", CVPR 2016 (2D projection metric, usual threshold 5 px).
    """
    diff = (project_object_points(points, R_est, t_est, K)
            - project_object_points(points, R_gt, t_gt, K))
    return np.linalg.norm(diff, axis=-1).mean(-1)


def accuracy_under(errors: ArrayLike, threshold: ArrayLike) -> float:
    """Return the fraction of errors (B,) at or below threshold (scalar or (B,)), a float.

    NaN errors (e.g. failed estimates) count as failures. Example: ADD accuracy at 0.1 d is
    accuracy_under(add(...), 0.1 * diameter) (Hinterstoisser et al., ACCV 2012).
    """
    errors = np.asarray(errors, float)
    with np.errstate(invalid='ignore'):
        return float(np.mean(errors <= threshold)) if errors.size else 0.0


def accuracy_auc(errors: ArrayLike, max_threshold: float) -> float:
    """Return the area under the accuracy-vs-threshold curve on [0, max_threshold], in [0, 1].

    The curve acc(tau) = fraction of errors <= tau is integrated exactly:
    AUC = mean_i max(0, 1 - e_i / max_threshold); NaN errors count as failures. Used with ADD(-S)
    in Xiang et al., "PoseCNN", RSS 2018 (there up to 0.1 m, sampled); here give e.g.
    max_threshold = 0.1 * diameter for the 'ADD AUC up to 0.1 d' of later papers.
    """
    errors = np.asarray(errors, float)
    if errors.size == 0:
        return 0.0
    area = np.clip(1.0 - errors / max_threshold, 0.0, 1.0)
    return float(np.mean(np.nan_to_num(area, nan=0.0)))
