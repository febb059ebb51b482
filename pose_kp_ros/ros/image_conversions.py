"""sensor_msgs/Image <-> numpy, written against the message definition (no cv_bridge).

`decode_image` also takes sensor_msgs/CompressedImage (JPEG, PNG; decoded with OpenCV).

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8 (and mono16 / 16UC1 for depth-like images).
`step` (bytes per row, may include padding) and `is_bigendian` are honoured; every size mismatch
raises `ImageConversionError` with a one-line reason, so a node can log it and keep serving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import ArrayLike
from sensor_msgs.msg import CompressedImage, Image

if TYPE_CHECKING:
    from std_msgs.msg import Header

# encoding -> (channels, numpy dtype of one channel)
ENCODINGS = {
    'rgb8': (3, np.uint8),
    'bgr8': (3, np.uint8),
    'rgba8': (4, np.uint8),
    'bgra8': (4, np.uint8),
    'mono8': (1, np.uint8),
    'mono16': (1, np.uint16),
    '16UC1': (1, np.uint16),
}


class ImageConversionError(ValueError):
    """An Image message that cannot be turned into an array (the message says why)."""


def image_to_numpy(msg: Image) -> np.ndarray:
    """Return the pixels of a sensor_msgs/Image as an array.

    Returns (H, W, C) for colour encodings and (H, W) for mono ones, in the message's own channel
    order and dtype; the array is a copy (safe to keep after the message is gone).
    """
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}' (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image ({width}x{height})')
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width*channels*bytes = {row_bytes} ({msg.encoding})')
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageConversionError(
            f'data has {buffer.size} bytes, expected step*height = {step * height} '
            f'({width}x{height} {msg.encoding}, step {step})')
    rows = buffer[:step * height].reshape(height, step)[:, :row_bytes]
    wire_dtype = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    pixels = np.ascontiguousarray(rows).view(wire_dtype).astype(dtype, copy=False)
    pixels = pixels.reshape(height, width, channels)
    return np.array(pixels[:, :, 0] if channels == 1 else pixels)


def numpy_to_image(array: ArrayLike, encoding: str, header: Header | None = None) -> Image:
    """Return a sensor_msgs/Image holding `array` ((H, W) or (H, W, C)) with `encoding`."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[encoding]
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels or array.dtype != dtype:
        raise ImageConversionError(
            f'{encoding} needs (H, W, {channels}) {np.dtype(dtype).name}, '
            f'got {array.shape} {array.dtype}')
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(array.shape[1] * channels * np.dtype(dtype).itemsize)
    msg.data = np.ascontiguousarray(array.astype(np.dtype(dtype).newbyteorder('<'))).tobytes()
    return msg


def image_to_rgb(msg: Image) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB array for any supported 8-bit colour or mono encoding."""
    pixels = image_to_numpy(msg)
    if msg.encoding == 'rgb8':
        return pixels
    if msg.encoding == 'bgr8':
        return pixels[:, :, ::-1].copy()
    if msg.encoding == 'rgba8':
        return pixels[:, :, :3].copy()
    if msg.encoding == 'bgra8':
        return pixels[:, :, 2::-1].copy()
    if msg.encoding == 'mono8':
        return np.repeat(pixels[:, :, None], 3, axis=2)
    raise ImageConversionError(f"encoding '{msg.encoding}' is not a colour image")


def decode_image(msg: Image | CompressedImage, max_pixels: int) -> np.ndarray:
    """Return the (H, W, 3) uint8 RGB image of an Image or CompressedImage (JPEG, PNG) message.

    Images of more than `max_pixels` pixels raise ImageConversionError (protects memory).
    """
    if isinstance(msg, CompressedImage):
        data = np.frombuffer(msg.data, np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise ImageConversionError(f"cannot decode compressed image ('{msg.format}')")
        image = np.ascontiguousarray(bgr[:, :, ::-1])
    else:
        if msg.width * msg.height > max_pixels:
            raise ImageConversionError(f'{msg.width}x{msg.height} exceeds max_image_pixels')
        image = image_to_rgb(msg)
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageConversionError(f'{image.shape[1]}x{image.shape[0]} exceeds max_image_pixels')
    return image
