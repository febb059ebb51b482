"""Per-object heads: the encoder shared, hourglass stacks of its own for every object.

Each crop runs only its object's stacks; a shared network's stacks start every object's head;
training, ONNX export (one input and output per object), int8 calibration per object, ONNX
Runtime and the predictor route every crop to its own object's head. The data: the kite and
dart folder of test_multi_object_network.
"""

from dataclasses import replace
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import yaml

from pose_kp_ros.network.checkpoint import load_checkpoint, load_model
from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassConfigError
from pose_kp_ros.network.keypoint_net import ObjectHeadsNet, build_keypoint_network, run_stacks
from pose_kp_ros.network.keypoint_transfer import network_channels, transfer_stack_weights
from pose_kp_ros.network.predictor import KeypointPredictor
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.tools.export_model import export_model


def sibling(name):
    """Return the test module `name` of this folder (its data and helpers)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


multi_object = sibling('test_multi_object_network')
OBJECTS = multi_object.OBJECTS  # kite: 5 keypoints, dart: 4
folder = multi_object.folder  # the fixture
randomised = sibling('test_keypoint_transfer').randomised  # random weights and statistics

SMALL = {'num_stacks': 2, 'features': 16, 'depth': 1, 'input_size': 32, 'heatmap_stride': 2,
         'encoder': 'mobilenet_v2'}


def heads_network():
    """Return a random network of per-object heads for the kite (5) and the dart (4)."""
    config = HourglassConfig(num_keypoints=9, object_keypoints=(5, 4), **SMALL)
    return randomised(build_keypoint_network(config))


def test_each_crop_runs_its_own_objects_stacks_and_writes_only_their_channels():
    network = heads_network()
    assert isinstance(network, ObjectHeadsNet)
    images = torch.randn(5, 3, 32, 32)
    objects = torch.tensor([1, 0, 1, 1, 0])
    with torch.no_grad():
        outputs = network(images, objects)
        x, skip = network.trunk(images)
        for k, channels in enumerate((slice(0, 5), slice(5, 9))):
            rows = objects == k
            alone = run_stacks(network.object_heads[k], x[rows], skip[rows])
            for output, expected in zip(outputs, alone):
                torch.testing.assert_close(output[rows][:, channels], expected)
                others = torch.ones(9, dtype=torch.bool)
                others[channels] = False
                assert (output[rows][:, others] == 0).all()
        per_object = network.object_heatmaps([images[objects == 0], images[objects == 1]])
        torch.testing.assert_close(per_object[0], outputs[-1][objects == 0, :5])
        torch.testing.assert_close(per_object[1], outputs[-1][objects == 1, 5:])
        assert network.object_heatmaps([images[:0], images])[0].shape == (0, 5, 16, 16)
    with pytest.raises(ValueError, match='object index of every crop'):
        network(images)


@pytest.mark.parametrize('change, message', [
    ({'object_keypoints': (5, 3)}, 'summing to num_keypoints 9'),
    ({'object_keypoints': (9, 0)}, 'positive integers'),
    ({'object_keypoints': (5, 4), 'encoder': 'none', 'heatmap_stride': 4},
     'needs an encoder'),
])
def test_config_errors_name_the_per_object_heads(change, message):
    with pytest.raises(HourglassConfigError, match=message):
        HourglassConfig(num_keypoints=9, **{**SMALL, **change})


def test_config_round_trips_and_a_shared_network_writes_what_it_always_did():
    heads = HourglassConfig(num_keypoints=9, object_keypoints=(5, 4), **SMALL)
    assert heads.to_dict()['object_keypoints'] == [5, 4]
    assert HourglassConfig.from_dict(heads.to_dict()) == heads  # JSON lists back to a tuple
    assert 'object_keypoints' not in replace(heads, object_keypoints=()).to_dict()


def test_a_shared_networks_stacks_start_every_objects_head():
    """Each head is the shared stacks with its object's heatmaps: the first stack's exactly."""
    shared_config = HourglassConfig(num_keypoints=9, **SMALL)
    shared = randomised(build_keypoint_network(shared_config))
    network = heads_network()
    channels = network_channels(list(OBJECTS.items()))
    network.load_state_dict(transfer_stack_weights(
        shared.state_dict(), shared_config, channels, network.state_dict(), network.config,
        channels))
    images, objects = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        first, _ = shared(images)
        mine, _ = network(images, objects)
    torch.testing.assert_close(mine[objects == 0, :5], first[objects == 0, :5])
    torch.testing.assert_close(mine[objects == 1, 5:], first[objects == 1, 5:])
    # and back: a network of one object started from the dart's head
    dart_config = HourglassConfig(num_keypoints=4, **SMALL)
    dart = build_keypoint_network(dart_config).eval()
    dart.load_state_dict(transfer_stack_weights(
        network.state_dict(), network.config, channels, dart.state_dict(), dart_config,
        channels[5:]))
    with torch.no_grad():
        darts = torch.ones(4, dtype=torch.long)
        torch.testing.assert_close(dart(images)[-1], network(images, darts)[-1][:, 5:])


@pytest.fixture(scope='module')
def trained(folder, tmp_path_factory):
    """Train a network of per-object heads for the kite and the dart for an epoch."""
    work = tmp_path_factory.mktemp('heads')
    config = {'objects': [str(folder / 'objects/kite.yaml'), str(folder / 'objects/dart.yaml')],
              'object_heads': True, 'datasets': str(folder), 'val_fraction': 0.25,
              'output_dir': 'run', 'preset': 'mobilenet', 'epochs': 1, 'batch_size': 4,
              'workers': 0, 'seed': 1, 'threads': 1,
              'architecture': {'features': 16, 'depth': 1, 'input_size': 32}}
    path = work / 'train.yaml'
    path.write_text(yaml.safe_dump(config))
    assert cli_main(['train', '--config', str(path), '--device', 'cpu']) == 0
    return work / 'run'


def test_training_writes_a_network_of_per_object_heads(trained):
    checkpoint = load_checkpoint(trained / 'best.pt')
    assert isinstance(checkpoint.model, ObjectHeadsNet)
    assert checkpoint.meta['architecture']['object_keypoints'] == [5, 4]


def test_onnx_export_int8_and_predictor_route_every_crop_to_its_head(trained, folder):
    float_path, int8_path = trained / 'heads.onnx', trained / 'heads_int8.onnx'
    export_model(trained / 'best.pt', float_path)
    export_model(trained / 'best.pt', int8_path, [folder], calibration_count=6)
    graph = onnx.load(str(float_path)).graph
    assert [item.name for item in graph.input] == ['images_kite', 'images_dart']
    assert [item.name for item in graph.output] == ['heatmaps_kite', 'heatmaps_dart']
    with pytest.raises(CheckpointError, match='per-object heads exports to .onnx only'):
        export_model(trained / 'best.pt', trained / 'heads.pt2')

    torch_model, _ = load_model(trained / 'best.pt', OBJECTS['kite'], 'kite')
    onnx_model, _ = load_model(float_path, OBJECTS['kite'], 'kite')
    images = torch.randn(3, 3, 32, 32)
    for objects in ([0, 1, 1], [1, 1, 1]):  # the kite's input empty in the second
        objects = torch.tensor(objects)
        with torch.no_grad():
            expected = torch_model(images, objects)
        torch.testing.assert_close(onnx_model(images, objects), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match='object index of each'):
        onnx_model(images)
    onnx_model.pad_empty_inputs = True  # as under TensorRT: a blank crop for the kite's input
    torch.testing.assert_close(onnx_model(images, torch.tensor([1, 1, 1])), expected,
                               atol=1e-4, rtol=1e-4)

    image = cv2.cvtColor(cv2.imread(str(folder / 'images/000000.png')), cv2.COLOR_BGR2RGB)
    boxes = {'dart': [[55, 10, 80, 35]], 'kite': [[5, 5, 30, 30], [8, 20, 28, 40]]}
    found = {path.name: KeypointPredictor.from_file(path, OBJECTS['kite'], 'kite')
             .predict_objects(image, boxes) for path in (trained / 'best.pt', float_path,
                                                         int8_path)}
    for name, object_boxes in boxes.items():
        reference = found['best.pt'][name]
        assert reference.keypoints.shape == (len(object_boxes), len(OBJECTS[name]), 2)
        np.testing.assert_allclose(found['heads.onnx'][name].keypoints, reference.keypoints,
                                   atol=1e-3)
        # int8: the heatmaps within a few percent of their range (a one-epoch network's peaks
        # are too flat to compare positions)
        float_maps, int8_maps = (found[key][name].heatmaps for key in ('heads.onnx',
                                                                        'heads_int8.onnx'))
        span = float(float_maps.max() - float_maps.min())
        assert float((int8_maps - float_maps).abs().max()) < 0.05 * span
    quantized = onnx.load(str(int8_path)).graph
    floats = {item.name for item in quantized.initializer
              if item.data_type == onnx.TensorProto.FLOAT}
    for output in ('heatmaps_kite', 'heatmaps_dart'):  # every object's heatmaps stay float
        writer, = (node for node in quantized.node if output in node.output)
        assert writer.op_type == 'Conv' and writer.input[1] in floats
    _, meta = load_model(int8_path, OBJECTS['kite'], 'kite')
    assert meta['quantization']['crops'] == 6  # three of each object
