"""Procedural textures for backgrounds and table tops: domain randomisation beyond 35 photos.

    >>> texture = procedural_texture(np.random.default_rng(0), 640, 480)  # (480, 640, 3) uint8

The packaged background photos (rendering/backgrounds.py) are 35; a network trained on them
alone sees the same few textures behind and under every object. Random procedural patterns
(Tobin et al., "Domain Randomization for Transferring Deep Neural Networks from Simulation to
the Real World", IROS 2017) add what real workbenches show and those photos rarely do:
high-contrast edges close to the objects (checkerboards, stripes, printed marker grids), smooth
shading and noise, and clutter of coloured shapes. Each call draws one family (TEXTURE_FAMILIES)
with random scale, orientation and colours.
"""

from collections.abc import Callable

import cv2
import numpy as np


def _colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """Return (count, 3) float RGB colours, each channel uniform in [0, 255]."""
    return rng.uniform(0.0, 255.0, size=(count, 3))


def _rotated_coordinates(rng: np.random.Generator, width: int,
                         height: int) -> tuple[np.ndarray, np.ndarray]:
    """Return pixel coordinates (H, W) x2 rotated by a random angle about a random origin."""
    angle = rng.uniform(0.0, np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = x - rng.uniform(0, width), y - rng.uniform(0, height)
    return (np.cos(angle) * x + np.sin(angle) * y, -np.sin(angle) * x + np.cos(angle) * y)


def _checkerboard(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    u, v = _rotated_coordinates(rng, width, height)
    cell = rng.uniform(4.0, 60.0)
    parity = (np.floor(u / cell) + np.floor(v / cell)).astype(np.int64) % 2
    return _colours(rng, 2)[parity]


def _stripes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    u, _ = _rotated_coordinates(rng, width, height)
    count = int(rng.integers(2, 5))
    index = np.floor(u / rng.uniform(3.0, 40.0)).astype(np.int64) % count
    return _colours(rng, count)[index]


def _marker_grid(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Square blocks of random black / white cells in a border, like printed fiducials."""
    u, v = _rotated_coordinates(rng, width, height)
    cell = rng.uniform(3.0, 16.0)
    cells = 6                                      # a 4 x 4 code inside a 1-cell border
    gap = int(rng.integers(1, 4))                  # white cells between markers
    period = cells + gap
    i, j = np.floor(u / cell).astype(np.int64), np.floor(v / cell).astype(np.int64)
    a, b = i % period, j % period
    bits = rng.random((256, 256)) < 0.5          # each marker's cells: a slice of these
    code = bits[(i // period * cells + a) % 256, (j // period * cells + b) % 256]
    inside = (a < cells) & (b < cells)
    border = inside & ((a == 0) | (b == 0) | (a == cells - 1) | (b == cells - 1))
    dark = border | (inside & code)
    ink, paper = rng.uniform(0.0, 80.0, 3), rng.uniform(170.0, 255.0, 3)
    return np.where(dark[..., None], ink, paper)


def _smooth_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Several octaves of value noise coloured between random colours."""
    field = np.zeros((height, width))
    for octave in range(int(rng.integers(1, 5))):
        cells = 2 ** (octave + int(rng.integers(1, 4)))
        grid = rng.random((cells + 1, cells + 1))
        field += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / 2 ** octave
    field = (field - field.min()) / max(np.ptp(field), 1e-9)
    low, high = _colours(rng, 2)
    return low + field[..., None] * (high - low)


def _shapes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Random filled rectangles, ellipses and thick lines on a random colour."""
    image = np.empty((height, width, 3), np.float64)
    image[:] = _colours(rng, 1)[0]
    size = max(width, height)
    for _ in range(int(rng.integers(10, 60))):
        colour = tuple(float(c) for c in _colours(rng, 1)[0])
        x, y = int(rng.integers(width)), int(rng.integers(height))
        a, b = (int(v) for v in rng.uniform(0.01, 0.2, 2) * size + 1)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(image, (x - a, y - b), (x + a, y + b), colour, -1)
        elif kind == 1:
            cv2.ellipse(image, (x, y), (a, b), float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            end = (int(rng.integers(width)), int(rng.integers(height)))
            cv2.line(image, (x, y), end, colour, max(1, b // 4))
    return image


_FAMILIES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    'checkerboard': _checkerboard, 'stripes': _stripes, 'marker_grid': _marker_grid,
    'smooth_noise': _smooth_noise, 'shapes': _shapes}
TEXTURE_FAMILIES = tuple(_FAMILIES)
"""The pattern families `procedural_texture` draws from, uniformly."""


def procedural_texture(rng: np.random.Generator, width: int, height: int,
                       family: str | None = None) -> np.ndarray:
    """Return a (height, width, 3) uint8 RGB pattern of one family (None: a random one).

    The pattern is softened by a random blur of up to 1 px sigma half the time (printed or
    distant patterns are not pixel-sharp) and gets a smooth brightness ramp (uneven light).
    """
    if family is None:
        family = TEXTURE_FAMILIES[int(rng.integers(len(TEXTURE_FAMILIES)))]
    if family not in _FAMILIES:
        raise ValueError(f'unknown texture family {family!r}; known: {list(TEXTURE_FAMILIES)}')
    image = _FAMILIES[family](rng, width, height)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.0))
    u, _ = _rotated_coordinates(rng, width, height)
    ramp = 1.0 + rng.uniform(-0.4, 0.4) * u / max(width, height)
    return np.clip(image * ramp[..., None], 0, 255).astype(np.uint8)
