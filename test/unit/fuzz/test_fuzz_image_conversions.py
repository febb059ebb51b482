"""Fuzz sensor_msgs/Image and CameraInfo conversion: a valid result or the module's error."""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from pose_kp_ros.geometry.distortion import SUPPORTED_MODELS, undistort_pixels
from pose_kp_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info
from pose_kp_ros.ros.image_conversions import (
    ENCODINGS,
    ImageConversionError,
    image_to_numpy,
    image_to_rgb,
    numpy_to_image,
)

BOUNDARY = 'Image and CameraInfo conversion'
UINT32 = 2**32 - 1
encodings = st.sampled_from(list(ENCODINGS)) | st.sampled_from(
    ['', 'RGB8', 'rgb16', 'yuv422', 'bayer_rggb8', '32FC1', 'jpeg', 'mono8 '])
sizes = st.integers(0, 12) | st.sampled_from([UINT32, 2**31, 100_000])
# Floats a calibration could contain, plus the ones it must not.
reals = st.floats(-1e4, 1e4) | st.sampled_from(
    [0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324])


@st.composite
def image_messages(draw):
    """Return an Image whose fields agree or disagree in every way the wire allows."""
    encoding = draw(encodings)
    height, width = draw(sizes), draw(sizes)
    channels, dtype = ENCODINGS.get(encoding, (draw(st.integers(1, 4)), np.uint8))
    row_bytes = width * channels * np.dtype(dtype).itemsize
    step = draw(st.sampled_from([row_bytes, row_bytes + 3, max(row_bytes - 1, 0)])
                | st.integers(0, 64) | st.just(UINT32))
    step = min(step, UINT32)
    wanted = step * height if step * height <= 20_000 else draw(st.integers(0, 2000))
    size = max(0, wanted + draw(st.sampled_from([0, 0, 0, -1, -step, 1, 17])))
    data = draw(st.binary(min_size=min(size, 20_000), max_size=min(size, 20_000)))
    return Image(height=height, width=width, encoding=encoding, step=step,
                 is_bigendian=draw(st.integers(0, 1)), data=data)


@settings(max_examples=300, deadline=None)
@given(msg=image_messages())
def test_image_to_numpy_gives_the_pixels_or_a_conversion_error(msg):
    try:
        pixels = image_to_numpy(msg)
    except ImageConversionError as error:
        assert '\n' not in str(error)
        return
    channels, dtype = ENCODINGS[msg.encoding]
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    assert pixels.shape == shape and pixels.dtype == dtype
    # Row r starts at byte r * step of the message, whatever the padding.
    itemsize = np.dtype(dtype).itemsize
    first_row = np.frombuffer(bytes(msg.data[:msg.width * channels * itemsize]),
                              dtype=np.dtype(dtype).newbyteorder('>' if msg.is_bigendian
                                                                 else '<'))
    np.testing.assert_array_equal(pixels.reshape(msg.height, -1)[0], first_row)
    again = image_to_numpy(numpy_to_image(pixels, msg.encoding))
    np.testing.assert_array_equal(again, pixels)
    try:
        rgb = image_to_rgb(msg)
    except ImageConversionError:
        assert itemsize == 2  # only 16-bit images are not colour images
        return
    assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8


@settings(max_examples=150, deadline=None)
@given(encoding=encodings,
       shape=st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.int8, np.bool_]))
def test_numpy_to_image_round_trips_or_raises_the_conversion_error(encoding, shape, dtype):
    array = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).astype(dtype)
    try:
        msg = numpy_to_image(array, encoding)
    except ImageConversionError as error:
        assert '\n' not in str(error)
        return
    assert len(msg.data) == msg.step * msg.height
    if msg.height and msg.width:
        np.testing.assert_array_equal(image_to_numpy(msg).reshape(array.shape), array)


@st.composite
def camera_infos(draw):
    """Return a CameraInfo with K, P and D from calibrated to absurd."""
    fx, fy, cx, cy, skew = (draw(reals) for _ in range(5))
    k = [fx, skew, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    if draw(st.booleans()):  # anything at all, including a broken last row
        k = [draw(reals) for _ in range(9)]
    p = [draw(reals) for _ in range(12)] if draw(st.booleans()) else \
        [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    d = draw(st.lists(reals | st.floats(-1.0, 1.0), min_size=0, max_size=16))
    model = draw(st.sampled_from(SUPPORTED_MODELS + ('', 'fisheye', 'plumb bob')))
    return CameraInfo(height=draw(sizes), width=draw(sizes), k=k, p=p, d=d,
                      distortion_model=model)


@settings(max_examples=400, deadline=None)
@given(msg=camera_infos(), rectified=st.booleans(), use_projection=st.booleans(),
       pixels=st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)), min_size=1,
                       max_size=5))
def test_camera_info_gives_usable_intrinsics_or_a_camera_info_error(msg, rectified,
                                                                    use_projection, pixels):
    try:
        camera = intrinsics_from_camera_info(msg, rectified, use_projection)
    except CameraInfoError as error:
        assert '\n' not in str(error)
        return
    K = camera.K
    assert K.shape == (3, 3) and np.isfinite(K).all()
    assert K[0, 0] > 0 and K[1, 1] > 0 and K[2].tolist() == [0.0, 0.0, 1.0] and K[1, 0] == 0
    assert np.isfinite(camera.D).all()
    if rectified:
        assert not camera.needs_undistortion
    if camera.needs_undistortion:
        assert camera.distortion_model in SUPPORTED_MODELS
        # What the pipeline does next with these intrinsics must not raise either.
        undistorted = undistort_pixels(np.array(pixels), K, camera.D, camera.distortion_model)
        assert undistorted.shape == (len(pixels), 2)
