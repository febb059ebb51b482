"""Random backgrounds from real photos (scikit-image data, Debian opencv-doc), never LM-O."""

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from pose_kp_ros.data.package_data import background_photo_paths


class BackgroundError(ValueError):
    """A background photo cannot be read; the message names the file."""


def load_photos(paths: Iterable[Path | str] | None = None) -> list[np.ndarray]:
    """Load background photos as RGB uint8 arrays (grey and RGBA photos become RGB).

    `paths` defaults to the packaged photos (`background_photo_paths`).
    """
    photos = []
    for path in background_photo_paths() if paths is None else paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR on every OpenCV version
        if image is None:
            raise BackgroundError(f'cannot read background photo {path}')
        photos.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return photos


def random_background(rng: np.random.Generator, photos: Sequence[np.ndarray], width: int,
                      height: int, max_zoom: float = 2.0) -> np.ndarray:
    """Return a (height, width, 3) uint8 background: a random photo, crop, flip and colour change.

    The photo is scaled so that it covers the output by a random factor in [1, max_zoom], cropped
    at a random place, flipped left-right with probability 0.5 and upside down with 0.2, and its
    channels get random gains (0.7-1.3) and a random offset (-30..30).
    """
    photo = photos[rng.integers(len(photos))]
    photo_h, photo_w = photo.shape[:2]
    scale = max(width / photo_w, height / photo_h) * rng.uniform(1.0, max_zoom)
    crop_w = min(photo_w, int(np.ceil(width / scale)))
    crop_h = min(photo_h, int(np.ceil(height / scale)))
    x0 = rng.integers(photo_w - crop_w + 1)
    y0 = rng.integers(photo_h - crop_h + 1)
    crop = cv2.resize(photo[y0:y0 + crop_h, x0:x0 + crop_w], (width, height),
                      interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.2:
        crop = crop[::-1]
    gains = rng.uniform(0.7, 1.3, size=3)
    offset = rng.uniform(-30.0, 30.0)
    return np.clip(crop * gains + offset, 0, 255).astype(np.uint8)
