"""Hourglasses on the pretrained encoder: shapes, checkpoints, export, configuration errors."""

import pytest
import torch

from pose_kp_ros.network.checkpoint import load_checkpoint, load_model, make_meta
from pose_kp_ros.network.checkpoint_format import save_checkpoint
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassConfigError, HourglassNet
from pose_kp_ros.network.keypoint_net import EncoderHourglassNet, build_keypoint_network
from pose_kp_ros.network.mobilenet_v2 import imagenet_weights_path


def test_preset_gives_64x64_heatmaps_from_128_px_crops_for_every_stack():
    config = HourglassConfig.from_preset('mobilenet', num_keypoints=7)
    network = build_keypoint_network(config).eval()
    assert isinstance(network, EncoderHourglassNet)
    with torch.inference_mode():
        outputs = network(torch.zeros(3, 3, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(3, 7, 64, 64)] * config.num_stacks
    assert isinstance(build_keypoint_network(HourglassConfig.from_preset('cpu', 7)),
                      HourglassNet)


def test_imagenet_start_loads_the_encoder_only():
    config = HourglassConfig.from_preset('mobilenet', num_keypoints=4)
    network = build_keypoint_network(config, imagenet=True)
    state = torch.load(imagenet_weights_path(), map_location='cpu', weights_only=True)
    for name, tensor in network.encoder.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    with pytest.raises(ValueError, match='encoder'):
        build_keypoint_network(HourglassConfig.from_preset('cpu', 4), imagenet=True)


def test_checkpoint_and_export_round_trip(tmp_path):
    config = HourglassConfig.from_preset('mobilenet', num_keypoints=3)
    network = build_keypoint_network(config, imagenet=True).eval()
    meta = make_meta(config, 'thing', ['a', 'b', 'c'], 'mobilenet', 1.25, 2.0,
                     (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    save_checkpoint(tmp_path / 'net.pt', network, meta)
    loaded = load_checkpoint(tmp_path / 'net.pt', ['a', 'b', 'c'], 'thing')
    images = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        expected = network(images)[-1]
        assert torch.equal(loaded.model(images)[-1], expected)
    from pose_kp_ros.tools.export_model import export_model
    for name in ('net.pt2', 'net.onnx'):
        export_model(tmp_path / 'net.pt', tmp_path / name)
        exported, exported_meta = load_model(tmp_path / name, ['a', 'b', 'c'], 'thing')
        assert exported_meta['architecture']['encoder'] == 'mobilenet_v2'
        with torch.inference_mode():
            assert torch.allclose(exported(images), expected, atol=1e-5), name


@pytest.mark.parametrize('change, message', [
    ({'heatmap_stride': 4}, 'heatmap_stride 2'),
    ({'encoder': 'resnet'}, 'encoder must be one of'),
    ({'input_size': 120}, 'multiple of'),
])
def test_config_errors_name_the_field(change, message):
    with pytest.raises(HourglassConfigError, match=message):
        HourglassConfig.from_preset('mobilenet', num_keypoints=3, **change)
