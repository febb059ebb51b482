"""Published poses of symmetric objects: one of the equivalent answers, the same frame to frame.

A symmetric object (ObjectModel.symmetries, e.g. the LM-O eggbox and glue) looks the same in
several poses; the fit may land on any of them. The pipeline publishes the equivalent pose
nearest to the previous one of its track (the warm start of a track's crop, or the track a
pose is matched to), else the one nearest to the camera's axes, so ~/pose, ~/detections and TF
do not flip between equivalent answers (geometry.symmetry.canonical_pose).
"""

from dataclasses import replace

import numpy as np

from pose_kp_ros.geometry.symmetry import canonical_pose_covariance
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
