"""Annotations of rendered objects: visible masks, boxes, projected keypoints and their visibility.

Depth buffers are (H, W) float z in metres, 0 where no surface; pixels follow OpenCV's centre
convention (pixel (0, 0)'s centre is (0.0, 0.0)).
"""

import numpy as np

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.object_model import ObjectModel

SAME_SURFACE_M = 1e-4
"""Depth difference (metres) below which two depth buffers see the same surface."""


def keypoint_visibility(uv: np.ndarray, z: np.ndarray, depth: np.ndarray,
                        tolerance_m: float) -> np.ndarray:
    """Return visibility flags (N,) int: 2 visible, 1 in the image but occluded, 0 outside.

    uv (N, 2) pixels (OpenCV centre convention), z (N,) keypoint depths in metres, depth (H, W)
    the rendered depth buffer (0 = no surface). A keypoint is occluded when the surface seen at its
    pixel is nearer than z - tolerance_m (by a distractor or by the object itself).
    """
    height, width = depth.shape
    pixel = np.rint(uv).astype(np.int64)
    inside = ((pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0)
              & (pixel[:, 1] < height) & (z > 0))
    seen = np.zeros(len(uv), dtype=np.float64)
    seen[inside] = depth[pixel[inside, 1], pixel[inside, 0]]
    occluded = inside & (seen > 0) & (seen < z - tolerance_m)
    return np.where(inside, np.where(occluded, 1, 2), 0)


def visible_box(mask: np.ndarray) -> list[float] | None:
    """Return the tight box [x0, y0, x1, y1] (pixel edges) of a boolean mask (H, W), or None."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return None
    return [float(cols[0]) - 0.5, float(rows[0]) - 0.5, float(cols[-1]) + 0.5,
            float(rows[-1]) + 0.5]


def visible_mask(own_depth: np.ndarray, scene_depth: np.ndarray) -> np.ndarray:
    """Return where an object is seen (H, W) bool: its own depth render is the scene's surface.

    own_depth: the object rendered alone; scene_depth: everything rendered together (H, W).
    """
    return (own_depth > 0) & (scene_depth >= own_depth - SAME_SURFACE_M)


def instance_label(model: ObjectModel, R: np.ndarray, t: np.ndarray, K: np.ndarray,
                   scene_depth: np.ndarray, mask: np.ndarray, visible_fraction: float,
                   tolerance_m: float) -> dict:
    """Return the annotation of one rendered object (docs/dataset_format.md, `instances[]`).

    model: its ObjectModel; R (3, 3), t (3,) metres: its object-to-camera pose; K (3, 3);
    scene_depth (H, W) metres; mask (H, W) bool: where it is seen; tolerance_m: keypoints are
    occluded when the scene's surface is nearer by more than this. The writer adds the mask.
    """
    uv, z = project_object_points(model.keypoints, R, t, K, with_depth=True)
    visibility = keypoint_visibility(uv, z, scene_depth, tolerance_m)
    return {
        'object': model.name,
        'box_xyxy': visible_box(mask),
        'keypoints_uvv': [[round(float(u), 3), round(float(v), 3), int(flag)]
                          for (u, v), flag in zip(uv, visibility)],
        'R': np.round(R, 9).tolist(),
        't': np.round(t, 7).tolist(),
        'visible_fraction': round(float(visible_fraction), 4),
    }
