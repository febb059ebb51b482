"""Axis-aligned image boxes: IoU, projection, growth, usability.

Boxes are (x0, y0, x1, y1) in pixels, at the pixels' outer edges.
"""

import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros.geometry.camera import project_object_points


def pairwise_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """Return IoU (M, N) between xyxy boxes (M, 4) and (N, 4) pixels (0 for empty boxes)."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(1, -1, 4)
    inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
             * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0,
                       None))
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_iou(a: ArrayLike, b: ArrayLike) -> float:
    """Return IoU of boxes a (4,) and b (4,) in xyxy pixels (0 when either is empty)."""
    return float(pairwise_iou(a, b)[0, 0])


def projected_box(outline_points: ArrayLike, R: ArrayLike, t: ArrayLike,
                  K: ArrayLike) -> np.ndarray | None:
    """Return the xyxy box (4,) of object points (P, 3) metres seen at pose R, t through K.

    Returns None when the pose puts any point at or behind the camera.
    """
    uv = project_object_points(outline_points, R, t, K, in_front_only=True)
    if uv is None:
        return None
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def grown_box(box: ArrayLike, margin: float) -> np.ndarray:
    """Return the xyxy box (4,) grown by `margin` times its width and height on each side."""
    box = np.asarray(box, dtype=np.float64)
    size = np.array([box[2] - box[0], box[3] - box[1]])
    return box + margin * np.concatenate([-size, size])


def valid_box(box: ArrayLike, width: float, height: float, min_side_px: float = 8.0,
              max_side_factor: float = 4.0) -> bool:
    """Return True when box (4,) is usable for a crop.

    Usable: finite, at least min_side_px wide and high, overlapping the image (width, height
    pixels), and at most max_side_factor times the image's larger side.
    """
    box = np.asarray(box, dtype=np.float64)
    limit_coordinate = 1e6 * max(width, height, 1)  # beyond this no box can be usable
    if box.shape != (4,) or not np.all(np.abs(box) < limit_coordinate):  # also NaN and inf
        return False
    w, h = box[2] - box[0], box[3] - box[1]
    limit = max_side_factor * max(width, height)
    return (min_side_px <= w <= limit and min_side_px <= h <= limit
            and box[2] > 0 and box[3] > 0 and box[0] < width and box[1] < height)
