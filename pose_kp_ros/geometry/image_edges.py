"""Image edges for the silhouette refinement: smoothed gradients (sampled by compiled_contour)."""

import cv2
import numpy as np
from numpy.typing import ArrayLike


def image_gradients(image_rgb: np.ndarray, sigma_px: float = 1.0,
                    region: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the (gx, gy) float32 (H, W) Sobel gradients of the Gaussian-smoothed grey image.

    image_rgb: (H, W, 3) uint8 RGB; sigma_px: the Gaussian's standard deviation, pixels.
    region: an xyxy box (4,) pixels: the gradients are computed inside it only (0 outside),
    equal there to the whole image's (the filters see the pixels around it); None: everywhere.
    """
    height, width = image_rgb.shape[:2]
    inner = (0, 0, width, height) if region is None else np.clip(
        [int(np.floor(region[0])), int(np.floor(region[1])), int(np.ceil(region[2])) + 1,
         int(np.ceil(region[3])) + 1], 0, [width, height, width, height])
    if inner[0] >= inner[2] or inner[1] >= inner[3]:  # the region is outside the image
        return np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
    reach = int(np.ceil(4 * sigma_px)) + 1  # the blur's radius and the Sobel kernel's
    x0, y0 = max(inner[0] - reach, 0), max(inner[1] - reach, 0)
    x1, y1 = min(inner[2] + reach, width), min(inner[3] + reach, height)
    grey = cv2.cvtColor(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]),
                        cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), sigma_px)
    window = np.s_[inner[1] - y0:inner[3] - y0, inner[0] - x0:inner[2] - x0]
    gradients = []
    for dx, dy in ((1, 0), (0, 1)):
        full = np.zeros((height, width), np.float32)
        full[inner[1]:inner[3], inner[0]:inner[2]] = cv2.Sobel(grey, cv2.CV_32F, dx, dy,
                                                               ksize=3)[window]
        gradients.append(full)
    return gradients[0], gradients[1]
