"""sensor_msgs/Image <-> numpy: encodings, padded rows, byte order, and clear errors."""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from sensor_msgs.msg import Image

from pose_kp_ros.ros.image_conversions import (
    ENCODINGS,
    ImageConversionError,
    image_to_numpy,
    image_to_rgb,
    numpy_to_image,
)


def random_pixels(encoding, height=5, width=7, seed=0):
    channels, dtype = ENCODINGS[encoding]
    info = np.iinfo(dtype)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, info.max + 1, size=shape, dtype=dtype)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    pixels = random_pixels(encoding)
    assert np.array_equal(image_to_numpy(numpy_to_image(pixels, encoding)), pixels)


def test_rgb_from_each_colour_encoding():
    rgb = random_pixels('rgb8')
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert np.array_equal(image_to_rgb(numpy_to_image(rgb, 'rgb8')), rgb)
    assert np.array_equal(image_to_rgb(numpy_to_image(rgb[:, :, ::-1].copy(), 'bgr8')), rgb)
    assert np.array_equal(image_to_rgb(numpy_to_image(rgba, 'rgba8')), rgb)
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    assert np.array_equal(image_to_rgb(numpy_to_image(bgra, 'bgra8')), rgb)
    mono = random_pixels('mono8')
    assert np.array_equal(image_to_rgb(numpy_to_image(mono, 'mono8')), np.dstack([mono] * 3))


def test_padded_rows_are_honoured():
    pixels = random_pixels('rgb8', 4, 5)
    msg = Image(height=4, width=5, encoding='rgb8', step=5 * 3 + 9)
    padded = np.zeros((4, msg.step), np.uint8)
    padded[:, :15] = pixels.reshape(4, 15)
    padded[:, 15:] = 99  # padding bytes must be ignored
    msg.data = padded.tobytes()
    assert np.array_equal(image_to_numpy(msg), pixels)


def test_big_endian_16_bit():
    depth = np.array([[1, 258], [65535, 4096]], np.uint16)
    msg = Image(height=2, width=2, encoding='16UC1', step=4, is_bigendian=1)
    msg.data = depth.astype('>u2').tobytes()
    assert np.array_equal(image_to_numpy(msg), depth)


@pytest.mark.parametrize('change, message', [
    ({'encoding': 'yuv422'}, 'unsupported encoding'),
    ({'step': 10}, 'step 10 is smaller'),
    ({'height': 0}, 'empty image'),
    ({'height': 9}, 'data has'),
])
def test_bad_messages_raise_clear_errors(change, message):
    msg = numpy_to_image(random_pixels('rgb8'), 'rgb8')
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ImageConversionError, match=message):
        image_to_numpy(msg)


def test_wrong_array_for_encoding():
    with pytest.raises(ImageConversionError, match='mono8 needs'):
        numpy_to_image(random_pixels('rgb8'), 'mono8')


@settings(max_examples=200, deadline=None)
@given(height=st.integers(0, 12), width=st.integers(0, 12), step=st.integers(0, 60),
       size=st.integers(0, 800), encoding=st.sampled_from(sorted(ENCODINGS) + ['32FC1', '']),
       bigendian=st.booleans())
def test_arbitrary_headers_convert_or_raise_the_documented_error(height, width, step, size,
                                                                 encoding, bigendian):
    msg = Image(height=height, width=width, step=step, encoding=encoding, is_bigendian=bigendian)
    msg.data = bytes(size)
    try:
        pixels = image_to_numpy(msg)
    except ImageConversionError:
        return
    assert pixels.shape[:2] == (height, width)
