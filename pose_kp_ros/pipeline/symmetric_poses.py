"""Published poses of symmetric objects: one of the equivalent answers, the same frame to frame.

A symmetric object (ObjectModel.symmetries, e.g. the LM-O eggbox and glue) looks the same in
several poses; the fit may land on any of them. The pipeline publishes the equivalent pose
nearest to the previous one of its track (the warm start of a track's crop, or the track a
pose is matched to), else the one nearest to the camera's axes, so ~/pose, ~/detections and TF
do not flip between equivalent answers (geometry.symmetry.canonical_pose). A keypoint network
trained on symmetric targets (docs/training.md) shows the equivalent a crop shows canonically
(geometry.symmetry.view_canonical_pose), so a warm start from the previous published pose is
first moved to that equivalent (`warm_start_equivalent`).
"""

from dataclasses import replace

import numpy as np

from pose_kp_ros.geometry.solver import PoseResult
from pose_kp_ros.geometry.symmetry import canonical_pose_covariance, view_canonical_pose
from pose_kp_ros.pipeline.object_pose import ObjectPose


def published_pose(pose: ObjectPose, group: tuple[np.ndarray, np.ndarray] | None,
                   reference: np.ndarray | None = None) -> ObjectPose:
    """Return the ObjectPose `pose` moved to its published equivalent (itself without a group).

    group: symmetry_group's rotations (K, 3, 3), translations (K, 3) metres, or None.
    reference: (3, 3) rotation to stay near; None takes the rotation of the request's warm start
    (a tracked crop), if any.
    """
    if group is None:
        return pose
    if reference is None and pose.request.init is not None:
        reference = pose.request.init.R
    R, t, covariance = canonical_pose_covariance(pose.R, pose.t, pose.result.covariance, group,
                                                 reference)
    if np.allclose(R, pose.R) and np.allclose(t, pose.t):
        return pose
    return replace(pose, R=R, t=t, result=replace(pose.result, R=R, t=t, covariance=covariance))


def warm_start_equivalent(init: PoseResult | None,
                          group: tuple[np.ndarray, np.ndarray] | None) -> PoseResult | None:
    """Return the warm starts `init` (batched PoseResult) moved to the equivalent crops show.

    A network trained on symmetric targets places the keypoints of the equivalent pose its
    (unrotated) crop shows canonically (view_canonical_pose with roll 0); a warm start from the
    other equivalent would start the fit half a turn away. group: symmetry_group's (K, 3, 3),
    (K, 3) metres, or None (init returned as is). Invalid (NaN) rows stay NaN.
    """
    if init is None or group is None:
        return init
    R, t = view_canonical_pose(init.R, init.t, group)
    return replace(init, R=R, t=t)
