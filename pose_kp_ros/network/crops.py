"""Square crops around boxes, with exact 2x3 affine maps between image, crop and heatmap pixels.

Convention (OpenCV's): pixel (0, 0)'s centre is at (0.0, 0.0); pixel i covers [i - 0.5, i + 0.5].
A crop of `size` pixels covers the square of side `side` image pixels centred at `center`: the
square's edges land on the crop's outer edges -0.5 and size - 0.5, so

    crop = s * R(rotation) @ (image - center) + (size - 1) / 2,   s = size / side.

The same affine warps the image (cv2.warpAffine samples image pixels at inverse-mapped crop pixel
centres) and maps points, so a pixel's content lands exactly where the affine says. Parts of the
square outside the image are filled with `border_value` (padded, not clipped).

Affines are arrays (..., 2, 3) applied to column vectors [u, v, 1]; points are (..., N, 2).
`transform_points` and `compose_affines` accept numpy arrays or torch tensors.
"""

from collections.abc import Sequence
from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import ArrayLike
import torch

Array = TypeVar('Array', np.ndarray, torch.Tensor)
"""A numpy array or a torch tensor (the functions that take either return the same kind)."""


class CropError(ValueError):
    """Invalid crop input (names the argument)."""


def square_regions(boxes_xyxy: ArrayLike,
                   padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Return the square crop regions around boxes.

    Args:
        boxes_xyxy: (B, 4) boxes [x0, y0, x1, y1] in image pixels.
        padding: side of the square divided by the box's longer side (>= 1 keeps context).

    Returns:
        centers (B, 2) in image pixels and sides (B,) in image pixels.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        raise CropError(f'boxes_xyxy must be finite, got {boxes.tolist()}')
    if padding <= 0:
        raise CropError(f'padding must be positive, got {padding}')
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    if (sizes <= 0).any():
        raise CropError(f'boxes_xyxy need x1 > x0 or y1 > y0, got {boxes.tolist()}')
    centers = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    return centers, sizes * padding


def crop_affines(centers: ArrayLike, sides: ArrayLike, size: int,
                 rotations: ArrayLike | None = None) -> np.ndarray:
    """Return image->crop affines (B, 2, 3) for square regions.

    Args:
        centers: (B, 2) region centres, image pixels.
        sides: (B,) region sides, image pixels.
        size: crop side in crop pixels.
        rotations: optional (B,) radians; the crop's content is turned by this angle
            (u right, v down: positive turns it clockwise on screen).
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    sides = np.asarray(sides, dtype=np.float64).reshape(-1)
    rotations = (np.zeros(len(sides)) if rotations is None
                 else np.asarray(rotations, dtype=np.float64).reshape(-1))
    scale = size / sides
    cos, sin = np.cos(rotations) * scale, np.sin(rotations) * scale
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    offset = (size - 1) / 2 - np.einsum('bij,bj->bi', linear, centers)
    return np.concatenate([linear, offset[:, :, None]], -1)


def invert_affines(affines: ArrayLike) -> np.ndarray:
    """Return the inverse maps of affines (..., 2, 3)."""
    affines = np.asarray(affines, dtype=np.float64)
    linear_inv = np.linalg.inv(affines[..., :2])
    offset = -np.einsum('...ij,...j->...i', linear_inv, affines[..., 2])
    return np.concatenate([linear_inv, offset[..., None]], -1)


def compose_affines(second: Array, first: Array) -> Array:
    """Return the affine applying `first` then `second` (both (..., 2, 3), numpy or torch)."""
    linear = second[..., :2] @ first[..., :2]
    offset = (second[..., :2] @ first[..., 2:])[..., 0] + second[..., 2]
    if isinstance(linear, torch.Tensor):
        return torch.cat([linear, offset[..., None]], -1)
    return np.concatenate([linear, offset[..., None]], -1)


def transform_points(affines: Array, points: Array) -> Array:
    """Map points (..., N, 2) by affines (..., 2, 3); numpy or torch; NaN stays NaN."""
    return points @ affines[..., :2].swapaxes(-1, -2) + affines[..., None, :, 2]


def heatmap_to_crop_affine(input_size: int, heatmap_size: int) -> np.ndarray:
    """Return the (2, 3) affine from heatmap pixels to crop pixels (both pixel-centre)."""
    stride = input_size / heatmap_size
    offset = (stride - 1) / 2
    return np.array([[stride, 0.0, offset], [0.0, stride, offset]])


def warp_crops(image: np.ndarray, affines: ArrayLike, size: int,
               border_value: float | Sequence[float] = 0) -> np.ndarray:
    """Cut crops (B, size, size, C) out of one image (H, W, C) with image->crop affines (B, 2, 3).

    Bilinear sampling at pixel centres; outside the image is `border_value`.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise CropError(f'image must be (H, W) or (H, W, C) and non-empty, got {image.shape}')
    affines = np.asarray(affines, dtype=np.float64).reshape(-1, 2, 3)
    crops = [cv2.warpAffine(image, a, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
             for a in affines]
    return np.stack(crops).reshape((len(affines), size, size) + image.shape[2:])


def low_pass_crops(crops: np.ndarray, affines: ArrayLike, sigma_image_px: float) -> np.ndarray:
    """Return crops (B, S, S, C) Gaussian-blurred by `sigma_image_px` image pixels (0: as is).

    The blur is defined in the image, so it removes the same detail of the scene at every crop
    scale: in crop pixels its sigma is sigma_image_px times the crop's scale (crop pixels per
    image pixel, from the image->crop affines (B, 2, 3)).
    """
    if sigma_image_px <= 0:
        return crops
    affines = np.asarray(affines, dtype=np.float64).reshape(-1, 2, 3)
    scales = np.sqrt(np.abs(np.linalg.det(affines[:, :, :2])))
    return np.stack([cv2.GaussianBlur(crop, (0, 0), sigma_image_px * scale)
                     for crop, scale in zip(crops, scales)]).reshape(np.shape(crops))


def crop_boxes(image: np.ndarray, boxes_xyxy: ArrayLike, size: int,
               padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Cut square crops of `size` pixels around boxes (B, 4) xyxy of an image (H, W, C).

    Returns:
        crops (B, size, size, C) of the image's dtype and image->crop affines (B, 2, 3).
    """
    centers, sides = square_regions(boxes_xyxy, padding)
    affines = crop_affines(centers, sides, size)
    return warp_crops(image, affines, size), affines

