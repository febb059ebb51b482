"""Detector box codec: letterbox maps (image, network input, output map) and box decoding.

Coordinates follow OpenCV's pixel-centre convention in every frame; a box's edges are where its
pixels' outer edges are (a box covering pixels 0..9 is [-0.5, 9.5]); all maps between frames are
axis-aligned affines (2, 3) that carry points and edges alike:

    input = letterbox affine (image)       output = (input - (stride - 1) / 2) / stride
"""

import cv2
import numpy as np
from numpy.typing import ArrayLike
import torch
import torch.nn.functional as F

from pose_kp_ros.network.crops import heatmap_to_crop_affine
from pose_kp_ros.network.detector_model import OUTPUT_STRIDE


def scale_affine(image_width: float, image_height: float, scaled_width: float,
                 scaled_height: float, shift_x: float = 0, shift_y: float = 0) -> np.ndarray:
    """Return the (2, 3) affine of resizing an image to scaled size and shifting it by pixels.

    Sizes and shifts in pixels.
    cv2.resize maps pixel centres u -> (u + 0.5) * sx - 0.5 with sx = scaled / original; the
    integer shift then places the resized image in a canvas.
    """
    sx, sy = scaled_width / image_width, scaled_height / image_height
    return np.array([[sx, 0.0, 0.5 * sx - 0.5 + shift_x], [0.0, sy, 0.5 * sy - 0.5 + shift_y]])


def letterbox_geometry(image_width: int, image_height: int, input_width: int,
                       input_height: int) -> tuple[int, int, int, int]:
    """Return (scaled width, scaled height, shift x, shift y) pixels of the centred letterbox."""
    scale = min(input_width / image_width, input_height / image_height)
    width = min(max(int(round(image_width * scale)), 1), input_width)
    height = min(max(int(round(image_height * scale)), 1), input_height)
    return width, height, (input_width - width) // 2, (input_height - height) // 2


def resize_into_canvas(image: np.ndarray, scaled_width: int, scaled_height: int, shift_x: int,
                       shift_y: int, canvas_width: int, canvas_height: int,
                       pad_value: ArrayLike) -> np.ndarray:
    """Resize image (H, W, 3) uint8 and paste it at integer (shift_x, shift_y) into a canvas.

    Parts falling outside the canvas are cut; the rest of the canvas is `pad_value` (3,).
    Area interpolation when shrinking, bilinear when enlarging (both pixel-centre aligned).
    Returns the canvas (canvas_height, canvas_width, 3) uint8.
    """
    height, width = image.shape[:2]
    shrinking = scaled_width < width and scaled_height < height
    resized = cv2.resize(image, (scaled_width, scaled_height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    canvas = np.empty((canvas_height, canvas_width, 3), np.uint8)
    canvas[:] = np.asarray(pad_value, np.uint8)
    x0, y0 = max(shift_x, 0), max(shift_y, 0)
    x1, y1 = min(shift_x + scaled_width, canvas_width), min(shift_y + scaled_height,
                                                           canvas_height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = resized[y0 - shift_y:y1 - shift_y, x0 - shift_x:x1 - shift_x]
    return canvas


def letterbox(image: np.ndarray, input_width: int, input_height: int,
              pad_value: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox an RGB image (H, W, 3) uint8 to the network input (pixels; pad_value (3,) RGB).

    Returns:
        (input_height, input_width, 3) uint8 image and the image->input affine (2, 3).
    """
    height, width = image.shape[:2]
    geometry = letterbox_geometry(width, height, input_width, input_height)
    canvas = resize_into_canvas(image, *geometry, input_width, input_height, pad_value)
    return canvas, scale_affine(width, height, *geometry)


def output_to_input_affine() -> np.ndarray:
    """Return the (2, 3) affine from stride-4 output pixels to network input pixels."""
    return heatmap_to_crop_affine(OUTPUT_STRIDE, 1)


def map_boxes(affines: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Map boxes (..., M, 4) xyxy by axis-aligned affines (..., 2, 3) with positive scales."""
    scale = affines[..., None, [0, 1, 0, 1], [0, 1, 0, 1]]
    offset = affines[..., None, [0, 1, 0, 1], 2]
    return boxes * scale + offset


def gather_cells(maps: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Return maps (B, D, H, W) at flat cell indices (B, K) as (B, K, D)."""
    flat = maps.flatten(2)
    return flat.gather(2, indices[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def decode_outputs(heatmap: torch.Tensor, size: torch.Tensor, offset: torch.Tensor,
                   max_detections: int = 20) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode stride-4 maps into the top-k peaks.

    Args:
        heatmap: (B, C, H, W) probabilities in [0, 1] (sigmoid of the logits).
        size: (B, 2, H, W) log(width, height), output pixels.
        offset: (B, 2, H, W) centre minus cell, output pixels.
        max_detections: k (at most C * H * W).

    Returns:
        boxes (B, k, 4) xyxy output pixels, scores (B, k), classes (B, k) int64; best first.
    """
    batch, classes, height, width = heatmap.shape
    peaks = heatmap * (F.max_pool2d(heatmap, 3, 1, 1) == heatmap)
    k = min(max_detections, classes * height * width)
    scores, flat = peaks.flatten(1).topk(k)
    cells = flat % (height * width)
    centre = torch.stack([cells % width, cells // width], -1).to(heatmap.dtype)
    centre = centre + gather_cells(offset, cells)
    half = gather_cells(size, cells).exp() / 2
    boxes = torch.cat([centre - half, centre + half], -1)
    return boxes, scores, flat // (height * width)
