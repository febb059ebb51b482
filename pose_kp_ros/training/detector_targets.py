"""Detector training targets: Gaussian centre bumps (CornerNet radius), sizes and offsets."""

import numpy as np
from numpy.typing import ArrayLike


def gaussian_radius(width: ArrayLike, height: ArrayLike, min_overlap: float = 0.7) -> np.ndarray:
    """Return CornerNet's Gaussian radius (output pixels, >= 0) for boxes of (width, height).

    width, height: (...,) output pixels; the radius has their broadcast shape.

    The largest corner shift r such that a box moved, shrunk or grown by r per corner keeps
    IoU >= min_overlap with the true box; the smallest of the three cases' roots.
    """
    w, h = np.asarray(width, np.float64), np.asarray(height, np.float64)
    o = min_overlap
    b1, c1 = w + h, w * h * (1 - o) / (1 + o)
    r1 = (b1 - np.sqrt(np.maximum(b1 ** 2 - 4 * c1, 0))) / 2
    b2, c2 = 2 * (w + h), w * h * (1 - o)
    r2 = (b2 - np.sqrt(np.maximum(b2 ** 2 - 16 * c2, 0))) / 8
    b3, c3 = 2 * o * (w + h), (o - 1) * w * h
    r3 = (-b3 + np.sqrt(np.maximum(b3 ** 2 - 16 * o * c3, 0))) / (8 * o)
    return np.maximum(np.minimum(np.minimum(r1, r2), r3), 0.0)


def encode_targets(boxes: ArrayLike, classes: ArrayLike, num_classes: int,
                   output_size: tuple[int, int], max_objects: int,
                   min_overlap: float = 0.7) -> dict[str, np.ndarray]:
    """Return CenterNet training targets of one image.

    Args:
        boxes: (M, 4) xyxy boxes in output pixels (already clipped to the map).
        classes: (M,) class indices.
        num_classes: heatmap channels C.
        output_size: (width, height) of the output maps.
        max_objects: K, slots for the regression targets (extra objects keep their heatmap
            bump but no size/offset target).
        min_overlap: IoU kept by the Gaussian radius (CornerNet).

    Returns:
        dict of numpy arrays: heatmap (C, H, W) float32 with peak exactly 1 at each centre cell;
        indices (K,) int64 flat cell index y * W + x; mask (K,) float32 1 for used slots;
        size (K, 2) float32 log(width, height); offset (K, 2) float32 centre minus cell.
    """
    width, height = output_size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    heatmap = np.zeros((num_classes, height, width), np.float32)
    targets = {'heatmap': heatmap, 'indices': np.zeros(max_objects, np.int64),
               'mask': np.zeros(max_objects, np.float32),
               'size': np.zeros((max_objects, 2), np.float32),
               'offset': np.zeros((max_objects, 2), np.float32)}
    sizes = boxes[:, 2:] - boxes[:, :2]
    radii = np.floor(gaussian_radius(sizes[:, 0], sizes[:, 1], min_overlap))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cells = np.clip(np.round(centres), 0, [width - 1, height - 1]).astype(np.int64)
    for i in range(len(boxes)):
        (x, y), radius = cells[i], int(radii[i])
        sigma = (2 * radius + 1) / 6
        xs = np.arange(max(x - radius, 0), min(x + radius + 1, width))
        ys = np.arange(max(y - radius, 0), min(y + radius + 1, height))
        bump = np.exp(-((xs[None] - x) ** 2 + (ys[:, None] - y) ** 2) / (2 * sigma ** 2))
        region = heatmap[classes[i], ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
        np.maximum(region, bump, out=region)
        if i < max_objects:
            targets['indices'][i] = y * width + x
            targets['mask'][i] = 1.0
            targets['size'][i] = np.log(np.maximum(sizes[i], 1e-3))
            targets['offset'][i] = centres[i] - cells[i]
    return targets
