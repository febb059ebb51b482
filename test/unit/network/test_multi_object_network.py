"""One keypoint network for several objects: channels per object, training, loading, one forward.

The data: a format-2 folder of a kite and a dart side by side in every image (squares with
keypoints at their corners and centre), from test_multi_object_dataset's layout.
"""

import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from pose_kp_ros.network.checkpoint import (
    load_model,
    network_objects,
    object_channels,
)
from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.predictor import KeypointPredictor
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.tools.export_model import main as export_main
from pose_kp_ros.training.keypoint_dataset import KeypointDataset, sample_heatmaps
from pose_kp_ros.training.losses import heatmap_loss
from pose_kp_ros.training.records import read_dataset

OBJECTS = {'kite': ['tip', 'left', 'tail', 'right', 'centre'],
           'dart': ['nose', 'fin_a', 'fin_b', 'back']}
WIDTH, HEIGHT, SIDE = 96, 64, 20
K = np.array([[200.0, 0.0, 47.5], [0.0, 200.0, 31.5], [0.0, 0.0, 1.0]])


def corners(left, top, count):
    """Return `count` keypoints of a square: its corners, then its centre."""
    points = [[left, top], [left + SIDE - 1, top], [left + SIDE - 1, top + SIDE - 1],
              [left, top + SIDE - 1], [left + SIDE / 2, top + SIDE / 2]]
    return points[:count]


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """Write 12 images of a kite (left) and a dart (right), their object files too."""
    root = tmp_path_factory.mktemp('kite_dart')
    for sub in ('images', 'objects'):
        (root / sub).mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for number in range(12):
        image = rng.integers(60, 120, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        instances = []
        for (name, names), left in zip(OBJECTS.items(), (rng.integers(4, 30),
                                                          rng.integers(50, 72))):
            top = int(rng.integers(4, HEIGHT - SIDE - 4))
            image[top:top + SIDE, left:left + SIDE] = (220, 60, 30) if name == 'kite' \
                else (30, 60, 220)
            instances.append({'object': name,
                              'box_xyxy': [left - 0.5, top - 0.5, left + SIDE - 0.5,
                                           top + SIDE - 0.5],
                              'keypoints_uvv': [[float(u), float(v), 2] for u, v in
                                                corners(int(left), top, len(names))],
                              'visible_fraction': 1.0})
        cv2.imwrite(str(root / f'images/{number:06d}.png'), image)
        lines.append(json.dumps({'image': f'images/{number:06d}.png', 'K': K.tolist(),
                                 'instances': instances}))
    (root / 'annotations.jsonl').write_text('\n'.join(lines) + '\n')
    meta = {'format_version': 2,
            'objects': [{'name': name, 'keypoint_names': names, 'file': f'objects/{name}.yaml'}
                        for name, names in OBJECTS.items()]}
    (root / 'dataset.yaml').write_text(yaml.safe_dump(meta, sort_keys=False))
    for name, names in OBJECTS.items():
        keypoints = [[x * 0.05, y * 0.05, 0.0] for x, y in corners(-0.5, -0.5, len(names))]
        (root / 'objects' / f'{name}.yaml').write_text(yaml.safe_dump(
            {'name': name, 'keypoint_names': names, 'keypoints_m': keypoints,
             'diameter_m': 1.5, 'symmetric': False}))
    return root


@pytest.fixture(scope='module')
def trained(folder, tmp_path_factory):
    """Train one network for both objects for an epoch; return its run folder."""
    work = tmp_path_factory.mktemp('run')
    config = {'objects': [str(folder / 'objects/kite.yaml'), str(folder / 'objects/dart.yaml')],
              'datasets': str(folder), 'val_fraction': 0.25, 'output_dir': 'run',
              'preset': 'cpu', 'epochs': 1, 'batch_size': 4, 'workers': 0, 'seed': 1,
              'threads': 1,
              'architecture': {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 32}}
    path = work / 'train.yaml'
    path.write_text(yaml.safe_dump(config))
    assert cli_main(['train', '--config', str(path), '--device', 'cpu']) == 0
    return work / 'run'


def test_each_sample_keeps_its_rows_and_names_its_objects_channels(folder):
    _, records = read_dataset(folder)
    channels = {name: channel.start for name, channel in
                object_channels(list(OBJECTS.items())).items()}
    assert channels == {'kite': 0, 'dart': 5}
    dataset = KeypointDataset(records, 32, 16, object_channels=channels, keypoint_rows=5)
    plain = KeypointDataset(records, 32, 16)
    for index in (0, 1):  # a kite, then a dart
        sample, alone = dataset[index], plain[index]
        kite = records[index].object_name == 'kite'
        count = 5 if kite else 4
        assert sample['heatmaps'].shape == (5, 16, 16)
        torch.testing.assert_close(sample['heatmaps'][:count], alone['heatmaps'])
        torch.testing.assert_close(sample['keypoints'][:count], alone['keypoints'])
        assert sample['channels'].tolist() == ([0, 1, 2, 3, 4] if kite else [5, 6, 7, 8, 5])
        # the dart's padded row is never supervised nor scored
        assert (sample['weights'][count:] == 0).all() and (sample['visibility'][count:] == 0).all()
        assert (sample['weights'][:count] > 0).all()
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])  # one batch, both objects
    assert batch['channels'].shape == (2, 5)


def test_the_loss_compares_each_crop_with_its_own_objects_heatmaps_only(folder):
    """Gathering a crop's rows gives the loss of comparing all channels with zero weights."""
    _, records = read_dataset(folder)
    dataset = KeypointDataset(records, 32, 16, object_channels={'kite': 0, 'dart': 5},
                              keypoint_rows=5)
    batch = torch.utils.data.default_collate([dataset[0], dataset[1], dataset[1]])
    outputs = [torch.rand(3, 9, 16, 16) for _ in range(2)]
    full_targets, full_weights = torch.zeros(3, 9, 16, 16), torch.zeros(3, 9)
    for row, channels in enumerate(batch['channels']):
        used = batch['weights'][row] > 0
        full_targets[row, channels[used]] = batch['heatmaps'][row, used]
        full_weights[row, channels[used]] = batch['weights'][row, used]
    own = [sample_heatmaps(heatmaps, batch['channels']) for heatmaps in outputs]
    for foreground_weight in (0.0, 20.0):
        torch.testing.assert_close(
            heatmap_loss(own, batch['heatmaps'], batch['weights'], foreground_weight),
            heatmap_loss(outputs, full_targets, full_weights, foreground_weight))
    torch.testing.assert_close(own[0][1, :4], outputs[0][1, 5:9])  # the dart's channels


def test_training_records_every_object_and_its_metrics(trained):
    history = json.loads((trained / 'metrics.json').read_text())
    for name in OBJECTS:
        assert history[0][f'val_keypoints/{name}'] > 0
        assert 0 <= history[0][f'val_pck@0.1/{name}'] <= 1
    assert history[0]['val_keypoints'] == sum(history[0][f'val_keypoints/{name}']
                                              for name in OBJECTS)
    _, meta = load_model(trained / 'best.pt', OBJECTS['dart'], 'dart')
    assert network_objects(meta) == list(OBJECTS.items())
    assert meta['object_name'] == 'kite+dart' and len(meta['keypoint_names']) == 9
    with pytest.raises(CheckpointError, match=r"objects \['kite', 'dart'\], not 'cup'"):
        load_model(trained / 'best.pt', OBJECTS['dart'], 'cup')
    with pytest.raises(CheckpointError, match='name the object'):
        load_model(trained / 'best.pt', OBJECTS['dart'])
    with pytest.raises(CheckpointError, match='keypoint count mismatch'):
        load_model(trained / 'best.pt', OBJECTS['kite'], 'dart')


class CountingNetwork:
    """Counts the forward calls of the network it wraps."""

    def __init__(self, network):
        self.network, self.calls = network, 0

    def __call__(self, images):
        self.calls += 1
        return self.network(images)


def test_all_objects_crops_go_through_one_forward(trained, folder):
    onnx = trained / 'both.onnx'
    assert export_main([str(trained / 'best.pt'), '--out', str(onnx)]) == 0
    image = cv2.cvtColor(cv2.imread(str(folder / 'images/000000.png')), cv2.COLOR_BGR2RGB)
    boxes = {'kite': [[5, 5, 30, 30], [8, 20, 28, 40]], 'dart': [[55, 10, 80, 35]]}
    predictor = KeypointPredictor.from_file(onnx, OBJECTS['kite'], 'kite')
    predictor.model = counting = CountingNetwork(predictor.model)
    together = predictor.predict_objects(image, boxes)
    assert counting.calls == 1
    for name, object_boxes in boxes.items():
        alone = predictor.predict(image, object_boxes, object_name=name)
        assert together[name].keypoints.shape == (len(object_boxes), len(OBJECTS[name]), 2)
        np.testing.assert_allclose(together[name].keypoints, alone.keypoints, atol=1e-4)
        np.testing.assert_allclose(together[name].confidence, alone.confidence, atol=1e-5)
    with pytest.raises(ValueError, match="'cup'"):
        predictor.predict_objects(image, {'cup': [[0, 0, 10, 10]]})

    config = {'refine_iou_below': 0.0, 'contour_search_px': [],
              'objects': [{'object': str(folder / f'objects/{name}.yaml'),
                           'keypoint_model': str(onnx)} for name in OBJECTS]}
    estimator = KeypointPoseEstimator.from_config(config)
    shared = estimator.objects['kite'].predictor
    assert estimator.objects['dart'].predictor is shared  # the file is loaded once
    shared.model = counting = CountingNetwork(shared.model)
    estimator(image, K, boxes=boxes)
    assert counting.calls == 1
    assert estimator.timer.tallies['crops from boxes'] == 3
    assert estimator.timer.counts['network'] == 1
