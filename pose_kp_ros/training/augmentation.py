"""Augmentation settings and the photometric steps both training sets share."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import cv2
import numpy as np

from pose_kp_ros.training.config import TrainConfigError
from pose_kp_ros.training.records import DatasetError


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; ranges are uniform, probabilities per sample.

    Attributes:
        enabled: False turns every augmentation off (validation samples).
        box_jitter: crop centre shift, fraction of the region side.
        scale_range: multiplier range of the region side.
        rotation_deg: in-plane rotation range +- degrees.
        brightness, contrast, saturation: relative ranges +-.
        hue_deg: hue shift range +- degrees.
        blur_prob, blur_sigma_max: Gaussian blur probability and largest sigma (crop pixels).
        noise_prob, noise_std_max: additive Gaussian noise probability and largest std (0-255).
        occluder_prob: probability of 1-2 random polygons over the crop.
        cutout_prob: probability of one rectangle of noise over the crop.
        background_prob: probability of replacing the background where a mask exists.
        background_dirs: folders of images for backgrounds (empty: rendering/textures.py patterns).
        truncation_prob, truncation_max: probability of moving the crop so that part of the
            object falls outside it, and the largest shift (fraction of the region side).
        jpeg_prob, jpeg_quality: probability of JPEG re-compression and its quality range.
    """

    enabled: bool = True
    box_jitter: float = 0.08
    scale_range: tuple = (0.85, 1.2)
    rotation_deg: float = 30.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    blur_prob: float = 0.3
    blur_sigma_max: float = 1.5
    noise_prob: float = 0.3
    noise_std_max: float = 8.0
    occluder_prob: float = 0.4
    cutout_prob: float = 0.2
    background_prob: float = 0.5
    background_dirs: tuple = ()
    truncation_prob: float = 0.0
    truncation_max: float = 0.4
    jpeg_prob: float = 0.0
    jpeg_quality: tuple = (30, 95)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> 'AugmentConfig':
        """Build from a config dict (None: the defaults), naming unknown keys (DatasetError)."""
        return settings_from_dict(cls, values, DatasetError)

    def to_dict(self) -> dict:
        """Return a plain dict (for checkpoints)."""
        return plain_dict(self)


Settings = TypeVar('Settings')
"""A settings dataclass (AugmentConfig, DetectorAugmentConfig)."""


def settings_from_dict(cls: type[Settings], values: Mapping[str, Any] | None,
                       error: type[Exception]) -> Settings:
    """Build dataclass `cls` from a config dict; unknown keys raise `error`.

    Lists become tuples where the field's default is a tuple.
    """
    known = {f.name: f.default for f in fields(cls)}
    unknown = sorted(set(values or {}) - set(known))
    if unknown:
        raise error(f'unknown augmentation keys {unknown}; known: {sorted(known)}')
    return cls(**{key: tuple(value) if isinstance(known[key], tuple) else value
                  for key, value in (values or {}).items()})


def plain_dict(settings: 'AugmentConfig | DetectorAugmentConfig') -> dict:
    """Return a settings dataclass as a plain dict, its tuples as lists (YAML, checkpoints)."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(settings).items()}


def jitter_colour(crop: np.ndarray, rng: np.random.Generator,
                  aug: 'AugmentConfig | DetectorAugmentConfig') -> np.ndarray:
    """Return the crop (H, W, 3) uint8 RGB with random brightness, contrast, saturation, hue."""
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue_deg, aug.hue_deg) * 256 / 360) % 256
    hsv[..., 1] *= 1 + rng.uniform(-aug.saturation, aug.saturation)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    out = out.astype(np.float32) * (1 + rng.uniform(-aug.brightness, aug.brightness))
    mean = out.mean()
    out = (out - mean) * (1 + rng.uniform(-aug.contrast, aug.contrast)) + mean
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Return a (H, W, 3) uint8 RGB image after a JPEG round trip at `quality` (1-100)."""
    ok, data = cv2.imencode('.jpg', image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy() if ok else image


def paint_polygon(image: np.ndarray, rng: np.random.Generator, centre: np.ndarray,
                  radius: float) -> None:
    """Fill a random polygon (3-7 corners, one random colour) into `image` in place.

    image: (H, W, 3) uint8; centre: (2,) x, y pixels; radius: corner distance, pixels.
    """
    angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 8)))
    points = centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    cv2.fillPoly(image, [np.round(points).astype(np.int32)], rng.integers(0, 256, 3).tolist())


def paint_noise_rectangle(image: np.ndarray, rng: np.random.Generator,
                          side_range: tuple = (0.1, 0.35)) -> None:
    """Fill a rectangle of uniform noise into `image` (H, W, 3) uint8 in place.

    Its width and height are drawn from `side_range` as fractions of the image's.
    """
    height, width = image.shape[:2]
    w, h = (rng.uniform(*side_range, 2) * [width, height]).astype(int)
    x, y = rng.integers(0, width - w), rng.integers(0, height - h)
    image[y:y + h, x:x + w] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def photometric(image: np.ndarray, rng: np.random.Generator,
                aug: 'AugmentConfig | DetectorAugmentConfig') -> np.ndarray:
    """Return a uint8 RGB image after colour jitter, blur, noise and JPEG re-compression.

    image: (H, W, 3) uint8 RGB, returned with the same shape. aug: an AugmentConfig or
    DetectorAugmentConfig (their colour, blur, noise and JPEG fields); each step is drawn from
    `rng` in that order.
    """
    image = jitter_colour(image, rng, aug)
    if rng.random() < aug.blur_prob:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, aug.blur_sigma_max))
    if rng.random() < aug.noise_prob:
        noise = rng.normal(0, rng.uniform(0, aug.noise_std_max), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if aug.jpeg_prob and rng.random() < aug.jpeg_prob:
        image = jpeg_compress(image, rng.integers(*aug.jpeg_quality, endpoint=True))
    return image


@dataclass(frozen=True)
class DetectorAugmentConfig:
    """Whole-image training augmentation; ranges are uniform, probabilities per image.

    Attributes:
        enabled: False turns every augmentation off (validation samples).
        scale_range: zoom range relative to the letterbox (>1 enlarges and cuts the border).
        translate: shift range +- as a fraction of the input width / height.
        flip_prob: horizontal flip probability (fine for boxes).
        brightness, contrast, saturation: relative ranges +-.
        hue_deg: hue shift range +- degrees.
        blur_prob, blur_sigma_max: Gaussian blur probability and largest sigma (input px).
        noise_prob, noise_std_max: additive Gaussian noise probability and largest std (0-255).
        jpeg_prob, jpeg_quality: probability of JPEG re-compression and its quality range.
        occluder_prob: probability, per annotated object, of a random polygon over part of it.
        occluder_size: range of that polygon's corner distance, a fraction of sqrt(box area).
        cutout_prob: probability of one rectangle of noise (10-35% of each side) on the image.
    """

    enabled: bool = True
    scale_range: tuple = (0.6, 1.5)
    translate: float = 0.2
    flip_prob: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    blur_prob: float = 0.3
    blur_sigma_max: float = 1.2
    noise_prob: float = 0.3
    noise_std_max: float = 8.0
    jpeg_prob: float = 0.0
    jpeg_quality: tuple = (30, 95)
    occluder_prob: float = 0.0
    occluder_size: tuple = (0.15, 0.4)
    cutout_prob: float = 0.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> 'DetectorAugmentConfig':
        """Build from a config dict (None: defaults), naming unknown keys (TrainConfigError)."""
        return settings_from_dict(cls, values, TrainConfigError)

    def to_dict(self) -> dict:
        """Return a plain dict."""
        return plain_dict(self)
