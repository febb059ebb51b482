"""Camera effects applied to a composed synthetic image: colour jitter, blur, sensor noise.

JPEG compression, the last effect, happens when the image is written (random quality).
"""

import cv2
import numpy as np


def colour_jitter(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Randomly change brightness (x0.75-1.25), contrast (x0.7-1.3) and saturation (x0.6-1.4).

    image: (H, W, 3) uint8 RGB; returns float32 (H, W, 3) in [0, 255].
    """
    image = image.astype(np.float32) * rng.uniform(0.75, 1.25)
    mean = image.mean()
    image = (image - mean) * rng.uniform(0.7, 1.3) + mean
    grey = image.mean(axis=2, keepdims=True)
    image = (image - grey) * rng.uniform(0.6, 1.4) + grey
    return np.clip(image, 0.0, 255.0)


def blur(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Blur a float image (H, W, 3): Gaussian (p 0.4, sigma 0.3-1.5 px) or motion (p 0.15)."""
    draw = rng.random()
    if draw < 0.4:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.3, 1.5))
    if draw < 0.55:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                           rng.uniform(0.0, 180.0), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    return image


def sensor_noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Add Gaussian pixel noise (standard deviation 0-6 grey levels); returns uint8 (H, W, 3).

    image: float (H, W, 3) in [0, 255].
    """
    noisy = image + rng.normal(0.0, rng.uniform(0.0, 6.0), size=image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def random_jpeg_quality(rng: np.random.Generator) -> int:
    """Return a JPEG quality in 70-95 for writing the image."""
    return int(rng.integers(70, 96))
