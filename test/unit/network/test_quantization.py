"""Int8 keypoint networks: `pose-kp export --int8` (network/quantization.py), a tiny hourglass."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pose_kp_ros.network.checkpoint import load_model, make_meta
from pose_kp_ros.network.checkpoint_format import save_checkpoint
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.predictor import KeypointPredictor
from pose_kp_ros.network.quantization import heatmap_convolutions
from pose_kp_ros.tools.export_model import main as export_main

NAMES = ['tip', 'left', 'tail', 'right']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = HourglassConfig(num_keypoints=4, num_stacks=2, features=16, depth=2,
                             input_size=32, heatmap_stride=2)
    meta = make_meta(config, 'kite', NAMES, 'tiny', 1.25, 2.0, IMAGENET_MEAN, IMAGENET_STD)
    path = tmp_path_factory.mktemp('int8') / 'model.pt'
    save_checkpoint(path, HourglassNet(config).eval(), meta)
    return path


@pytest.fixture(scope='module')
def exports(checkpoint, kite_dataset):
    """Return (float .onnx, int8 .onnx) of the checkpoint, int8 calibrated on the kite renders."""
    float_path, int8_path = checkpoint.with_name('float.onnx'), checkpoint.with_name('int8.onnx')
    assert export_main([str(checkpoint), '--out', str(float_path)]) == 0
    assert export_main([str(checkpoint), '--out', str(int8_path), '--int8', str(kite_dataset),
                        '--calibration-crops', '8']) == 0
    return float_path, int8_path


def test_int8_model_is_quantized_but_for_the_heatmaps_and_says_so(exports, kite_dataset):
    float_path, int8_path = exports
    model = onnx.load(str(int8_path))
    ops = [node.op_type for node in model.graph.node]
    assert ops.count('QuantizeLinear') > 10 and ops.count('DequantizeLinear') > 10
    last = next(node for node in model.graph.node if node.name in heatmap_convolutions(model))
    floats = {item.name for item in model.graph.initializer
              if item.data_type == onnx.TensorProto.FLOAT}
    assert last.op_type == 'Conv' and last.input[1] in floats  # its weights stay float
    _, meta = load_model(int8_path, NAMES, 'kite')
    _, float_meta = load_model(float_path, NAMES, 'kite')
    record = meta.pop('quantization')
    assert meta == float_meta
    assert record['crops'] == 8 and len(record['datasets']) == 1
    assert (Path.cwd() / record['datasets'][0]).resolve() == kite_dataset.resolve()
    assert json.loads(int8_path.with_name('int8.onnx.json').read_text())['quantization'] == record


def test_int8_predictions_follow_the_float_model(exports):
    float_path, int8_path = exports
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = [[10, 10, 40, 30], [50, 20, 70, 55], [5, 25, 45, 58]]
    exact, int8 = (KeypointPredictor.from_file(path, NAMES, 'kite').predict(image, boxes)
                   for path in (float_path, int8_path))
    span = float(exact.heatmaps.max() - exact.heatmaps.min())
    error = float((int8.heatmaps - exact.heatmaps).abs().max())
    assert 0.0 < error < 0.1 * span  # rounded, yet close
    assert int8.keypoints.shape == exact.keypoints.shape


@pytest.mark.parametrize('out, datasets, message', [
    ('int8.pt2', 'kite', '--int8 exports keypoint networks to .onnx only'),
    ('int8.onnx', 'empty', "no instances of ['kite']"),
    ('int8.onnx', 'absent', '--int8: '),
])
def test_int8_export_refuses_in_one_line(checkpoint, kite_dataset, make_kite_dataset, tmp_path,
                                         capsys, out, datasets, message):
    folders = {'kite': kite_dataset, 'absent': tmp_path / 'absent'}
    if datasets == 'empty':  # a dataset of another object
        folders['empty'] = make_kite_dataset(tmp_path / 'other', count=2)
        lines = (folders['empty'] / 'annotations.jsonl').read_text().replace('"kite"', '"kite2"')
        (folders['empty'] / 'annotations.jsonl').write_text(lines)
        meta = (folders['empty'] / 'dataset.yaml').read_text()
        (folders['empty'] / 'dataset.yaml').write_text(meta.replace('kite', 'kite2'))
    code = export_main([str(checkpoint), '--out', str(tmp_path / out), '--int8',
                        str(folders[datasets])])
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / out).exists()
