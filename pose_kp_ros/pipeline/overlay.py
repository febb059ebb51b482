"""Draw estimated poses on an image: keypoints, box, axes, labels.

Used by the node's debug image, the demo and the evaluation mosaics (one drawing code path).
"""

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros.geometry.camera import project_object_points

AXIS_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))  # x red, y green, z blue (RGB)
BOX_EDGES = ((0, 1), (1, 3), (3, 2), (2, 0), (4, 5), (5, 7), (7, 6), (6, 4),
             (0, 4), (1, 5), (2, 6), (3, 7))


def box_corners(points: ArrayLike) -> np.ndarray:
    """Return the 8 corners (8, 3) of the axis-aligned box of object points (P, 3)."""
    low, high = np.min(points, 0), np.max(points, 0)
    return np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                     for z in (low[2], high[2])])


def confidence_colour(confidence: float) -> tuple[int, int, int]:
    """Return an RGB colour (0-255) from red (confidence 0) through yellow to green (1)."""
    c = float(np.clip(confidence, 0.0, 1.0))
    return (int(255 * min(1.0, 2 * (1 - c))), int(255 * min(1.0, 2 * c)), 0)


def draw_pose(image_rgb: np.ndarray, K: ArrayLike, R: ArrayLike, t: ArrayLike,
              outline_points: ArrayLike, keypoints: ArrayLike | None = None,
              confidences: ArrayLike | None = None, label: str | None = None,
              axis_length: float | None = None,
              colour: tuple[int, int, int] = (0, 200, 255)) -> np.ndarray:
    """Draw one pose in place on an (H, W, 3) uint8 RGB image and return it.

    outline_points (P, 3) metres give the 3D box drawn around the object; keypoints (N, 2) pixels
    are drawn as dots coloured by confidence (N,); axes have `axis_length` metres (default: half
    the box diagonal). K (3, 3), R (3, 3), t (3,) metres; colour RGB.
    """
    corners = box_corners(outline_points)
    uv = project_object_points(corners, R, t, K, in_front_only=True)
    if uv is not None:
        for a, b in BOX_EDGES:
            cv2.line(image_rgb, _pt(uv[a]), _pt(uv[b]), colour, 1, cv2.LINE_AA)
    length = axis_length or 0.5 * float(np.linalg.norm(corners.max(0) - corners.min(0)))
    axes = project_object_points(np.vstack([np.zeros(3), np.eye(3) * length]), R, t, K,
                                 in_front_only=True)
    if axes is not None:
        for i, axis_colour in enumerate(AXIS_COLOURS):
            cv2.line(image_rgb, _pt(axes[0]), _pt(axes[i + 1]), axis_colour, 2, cv2.LINE_AA)
    if keypoints is not None:
        confidences = np.ones(len(keypoints)) if confidences is None else confidences
        for point, confidence in zip(np.asarray(keypoints), np.asarray(confidences)):
            if np.all(np.isfinite(point)):
                cv2.circle(image_rgb, _pt(point), 4, confidence_colour(confidence), -1,
                           cv2.LINE_AA)
    if label and uv is not None:
        anchor = (int(np.clip(uv[:, 0].min(), 0, image_rgb.shape[1] - 1)),
                  int(np.clip(uv[:, 1].min() - 6, 12, image_rgb.shape[0] - 1)))
        cv2.putText(image_rgb, label, anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(image_rgb, label, anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    return image_rgb


def _pt(uv):
    """Return an integer pixel tuple, clipped to a range OpenCV draws safely."""
    return tuple(int(round(float(np.clip(v, -1e5, 1e5)))) for v in uv)


def mosaic(images: Sequence[np.ndarray], columns: int = 4, tile_width: int = 320) -> np.ndarray:
    """Return one RGB image tiling `images` (list of (H, W, 3) uint8) at tile_width each."""
    if not images:
        raise ValueError('mosaic: no images')
    tiles = []
    for image in images:
        scale = tile_width / image.shape[1]
        tiles.append(cv2.resize(image, (tile_width, int(round(image.shape[0] * scale))),
                                interpolation=cv2.INTER_AREA))
    height = max(t.shape[0] for t in tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        row = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in
               tiles[start:start + columns]]
        row += [np.zeros_like(row[0])] * (columns - len(row))
        rows.append(np.hstack(row))
    return np.vstack(rows)
