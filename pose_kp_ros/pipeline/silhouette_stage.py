"""The estimator's silhouette stage: accepted poses refined on their silhouettes' image edges.

Each pose of an object with a mesh is refined in 6 DoF on the image edges jointly with its
undistorted keypoints and fit weights, from several depths (pose_kp_ros.geometry.
contour_alignment.refine_pose; `contour_search_px`, `contour_balance`, `contour_depth_starts`);
it then gets the keypoint fit's rms_px and covariance evaluated where it now is, and is dropped
if that breaks max_reprojection_error_px. The image gradients are computed once per frame, in
the region the poses' refinements can reach (`silhouette_region`).
"""

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from pose_kp_ros.geometry.boxes import grown_box, projected_box
from pose_kp_ros.geometry.contour_alignment import refine_pose
from pose_kp_ros.geometry.distortion import has_distortion
from pose_kp_ros.geometry.image_edges import image_gradients
from pose_kp_ros.geometry.solver import evaluate_pose
from pose_kp_ros.pipeline.config import PipelineConfig
from pose_kp_ros.pipeline.object_pose import Frame, ObjectPose
from pose_kp_ros.pipeline.object_runtime import ObjectRuntime
from pose_kp_ros.pipeline.stage_timer import StageTimer

SILHOUETTE_MARGIN = 0.25     # of a pose's outline box size, each side (see silhouette_region)
SILHOUETTE_MARGIN_PX = 32.0  # pixels, each side


def refined_on_silhouettes(frame: Frame, poses: list[ObjectPose],
                           objects: Mapping[str, ObjectRuntime], config: PipelineConfig,
                           options: dict, max_reprojection_error_px: float,
                           timer: StageTimer) -> list[ObjectPose]:
    """Return `poses` refined on the image's edges (a pose without a mesh as it is).

    objects: {name: ObjectRuntime}; options: every solve_pose option (the estimator's); timer:
    the frame's StageTimer ('silhouette refinement' and its parts).
    """
    refined, gradients = [], None
    with timer.stage('silhouette refinement'):
        for pose in poses:
            runtime = objects[pose.object_name]
            if runtime.surface is None:
                refined.append(pose)
                continue
            if gradients is None:
                with timer.stage('image gradients'):
                    gradients = image_gradients(frame.image,
                                                region=silhouette_region(frame, poses, objects))
            R, t = refine_pose(gradients, runtime.surface, pose.R, pose.t, frame.K,
                               config.contour_search_px, pose.measured,
                               runtime.model.shape(pose.result.coeffs), pose.weights,
                               config.contour_balance, options['robust_scale_px'], frame.D,
                               frame.distortion_model, depth_starts=config.contour_depth_starts,
                               timer=timer)
            with timer.stage('evaluation'):
                result = evaluate_pose(pose.measured, pose.confidences, frame.K, runtime.model,
                                       replace(pose.result, R=R, t=t), **options)
            if result.valid and result.rms_px <= max_reprojection_error_px:
                refined.append(replace(pose, R=result.R, t=result.t, result=result))
    return refined


def silhouette_region(frame: Frame, poses: list[ObjectPose],
                      objects: Mapping[str, ObjectRuntime]) -> np.ndarray | None:
    """Return the xyxy box (4,) pixels that the poses' silhouette refinement can look at.

    Each pose's projected outline box grown by SILHOUETTE_MARGIN of its size plus
    SILHOUETTE_MARGIN_PX (depth starts scale it by 5%, steps move it, edges are searched
    `contour_search_px` along the normals); None (the whole image) when a pose is behind the
    camera or the lens distorts (the edges are then sampled off the pinhole box).
    """
    if frame.D is not None and has_distortion(frame.D):
        return None
    boxes = []
    for pose in poses:
        box = projected_box(objects[pose.object_name].outline, pose.R, pose.t, frame.K)
        if box is None:
            return None
        boxes.append(grown_box(box, SILHOUETTE_MARGIN)
                     + np.array([-1, -1, 1, 1]) * SILHOUETTE_MARGIN_PX)
    boxes = np.array(boxes)
    return np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
