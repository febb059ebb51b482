"""Full-image CenterNet detector: shapes, target codec, letterbox map, overfit, checkpoints, CLI.

The fixture writes coloured shapes (discs, squares) on smooth random backgrounds in the dataset
folder format (docs/dataset_format.md), one object per folder, one or two instances per image.
"""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from pose_kp_ros.geometry.boxes import pairwise_iou
from pose_kp_ros.network.box_codec import (
    decode_outputs,
    letterbox,
    map_boxes,
    output_to_input_affine,
)
from pose_kp_ros.network.checkpoint_format import CheckpointError, save_checkpoint
from pose_kp_ros.network.crops import compose_affines, invert_affines, transform_points
from pose_kp_ros.network.detector import ObjectDetector
from pose_kp_ros.network.detector_checkpoint import load_detector_checkpoint, make_detector_meta
from pose_kp_ros.network.detector_model import (
    CenterNet,
    DetectorConfig,
    DetectorConfigError,
    fold_batch_norm,
)
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.training.augmentation import DetectorAugmentConfig
from pose_kp_ros.training.detection_metrics import DetectionEvaluator, match_detections
from pose_kp_ros.training.detector_dataset import (
    DetectionDataset,
    load_image_records,
    occlude,
)
from pose_kp_ros.training.detector_targets import encode_targets, gaussian_radius
from pose_kp_ros.training.losses import detection_losses, focal_loss

TINY = {'input_width': 128, 'input_height': 96, 'stem_channels': 8,
        'stage_channels': [8, 16, 24, 24], 'stage_blocks': [1, 1, 1, 1], 'expansion': 2,
        'neck_channels': 16, 'head_channels': 16}
SHAPE_COLOURS = {'disc': (230, 40, 40), 'square': (40, 60, 230)}


def make_shapes_dataset(root, object_name, count=6, size=(128, 96), seed=0):
    """Write `count` images of 1-2 `object_name` shapes (disc or square) into `root`."""
    root = Path(root)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    lines = []
    for i in range(count):
        coarse = rng.integers(0, 160, (3, 4, 3)).astype(np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        instances = []
        for j in range(int(rng.integers(1, 3))):
            mask = np.zeros((height, width), np.uint8)
            side = rng.uniform(14, 30)
            # Instances in separate halves of the image so that they never overlap.
            left = j * width / 2
            centre = rng.uniform([left + side, side], [left + width / 2 - side, height - side])
            if object_name == 'disc':
                cv2.circle(mask, tuple(np.round(centre).astype(int).tolist()), int(side / 2),
                           255, -1)
            else:
                corners = cv2.boxPoints((tuple(centre), (side, side), rng.uniform(0, 90)))
                cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
            image[mask > 0] = SHAPE_COLOURS[object_name]
            ys, xs = np.nonzero(mask)
            box = [xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5]
            instances.append({'object': object_name, 'box_xyxy': [float(b) for b in box],
                              'keypoints_uvv': [[float(centre[0]), float(centre[1]), 2]]})
        image_path = f'images/{i:06d}.png'
        cv2.imwrite(str(root / image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        K = [[100.0, 0, width / 2], [0, 100.0, height / 2], [0, 0, 1]]
        lines.append(json.dumps({'image': image_path, 'K': K, 'instances': instances}))
    (root / 'annotations.jsonl').write_text('\n'.join(lines) + '\n')
    meta = {'object': f'{object_name}.yaml', 'object_name': object_name,
            'keypoint_names': ['centre'], 'image_size': [width, height], 'count': count,
            'seed': seed, 'generator': 'test fixture', 'notes': 'coloured shapes'}
    (root / 'dataset.yaml').write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Run the test with one torch thread (two spin-wait badly on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def shape_datasets(tmp_path_factory):
    """Return {'disc': folder, 'square': folder} of small synthetic datasets."""
    base = tmp_path_factory.mktemp('shapes')
    return {name: make_shapes_dataset(base / name, name, count=6, seed=seed)
            for seed, name in enumerate(('disc', 'square'))}


def test_network_output_shapes():
    config = DetectorConfig(num_classes=3, **TINY)
    outputs = CenterNet(config)(torch.zeros(2, 3, 96, 128))
    assert config.output_size == (32, 24)
    assert outputs['heatmap'].shape == (2, 3, 24, 32)
    assert outputs['size'].shape == outputs['offset'].shape == (2, 2, 24, 32)


def test_folded_batch_norm_gives_the_same_outputs():
    torch.manual_seed(0)
    model = CenterNet(DetectorConfig(num_classes=2, **TINY))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    images = torch.randn(2, 3, 96, 128)
    expected, got = model(images), folded(images)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=1e-4)


def test_config_errors():
    with pytest.raises(DetectorConfigError, match='input_height must be a multiple of 32'):
        DetectorConfig(num_classes=1, input_height=100)
    with pytest.raises(DetectorConfigError, match='stage_channels must be 4'):
        DetectorConfig(num_classes=1, stage_channels=[8, 8])
    with pytest.raises(DetectorConfigError, match='unknown detector architecture keys'):
        DetectorConfig.from_dict({'num_classes': 1, 'width': 3})
    config = DetectorConfig(num_classes=2, **TINY)
    assert DetectorConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize('image_size', [(640, 480), (500, 300), (90, 170)])
def test_letterbox_map_round_trip(image_size):
    width, height = image_size
    image = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = int(0.3 * width), int(0.4 * height), int(0.7 * width), int(0.8 * height)
    image[y0:y1, x0:x1] = 255          # pixels x0..x1-1: edges x0 - 0.5 and x1 - 0.5
    canvas, affine = letterbox(image, 256, 192, (0, 0, 0))
    assert canvas.shape == (192, 256, 3)
    points = np.random.default_rng(0).uniform(-1, [width, height], (50, 2))
    back = transform_points(invert_affines(affine), transform_points(affine, points))
    np.testing.assert_allclose(back, points, atol=1e-9)
    # The content lands where the affine says: brightness centroid and mass of the rectangle.
    weight = canvas[..., 0].astype(np.float64) / 255
    v, u = np.mgrid[:192, :256]
    centroid = np.array([(weight * u).sum(), (weight * v).sum()]) / weight.sum()
    expected = transform_points(affine, np.array([[(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2]]))[0]
    np.testing.assert_allclose(centroid, expected, atol=0.05)
    box = map_boxes(affine, np.array([[x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5]]))[0]
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert weight.sum() == pytest.approx(area, rel=0.01)
    # Padding is centred and only along one axis.
    corners = map_boxes(affine, np.array([[-0.5, -0.5, width - 0.5, height - 0.5]]))[0]
    assert min(corners[0] + 0.5, corners[1] + 0.5) == 0
    assert corners[0] + 0.5 == pytest.approx(255.5 - corners[2], abs=0.5)
    assert corners[1] + 0.5 == pytest.approx(191.5 - corners[3], abs=0.5)


def test_gaussian_radius_keeps_min_overlap():
    w, h = np.array([4.0, 10.0, 30.0, 60.0]), np.array([4.0, 25.0, 12.0, 60.0])
    r = gaussian_radius(w, h, 0.7)
    for wi, hi, ri in zip(w, h, r):
        box = np.array([[0, 0, wi, hi]])
        moved = pairwise_iou(box, box + [ri, ri, ri, ri])[0, 0]
        shrunk = pairwise_iou(box, box + [ri, ri, -ri, -ri])[0, 0]
        grown = pairwise_iou(box, box + [-ri, -ri, ri, ri])[0, 0]
        assert min(moved, shrunk, grown) == pytest.approx(0.7, abs=1e-6)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(3)
    width, height = 64, 48
    centres = np.array([[10.3, 8.7], [40.6, 12.2], [25.1, 35.4], [55.8, 40.1]])
    sizes = rng.uniform(3, 20, (4, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
    classes = np.array([0, 1, 1, 0])
    targets = encode_targets(boxes, classes, 2, (width, height), max_objects=8)
    assert targets['heatmap'].shape == (2, height, width)
    assert targets['heatmap'].max() == 1.0 and (targets['heatmap'] == 1).sum() == 4
    assert targets['mask'].sum() == 4
    size_map, offset_map = torch.zeros(1, 2, height * width), torch.zeros(1, 2, height * width)
    index = torch.from_numpy(targets['indices'][:4])
    size_map[0, :, index] = torch.from_numpy(targets['size'][:4]).T
    offset_map[0, :, index] = torch.from_numpy(targets['offset'][:4]).T
    decoded, scores, decoded_classes = decode_outputs(
        torch.from_numpy(targets['heatmap'])[None], size_map.view(1, 2, height, width),
        offset_map.view(1, 2, height, width), max_detections=4)
    assert torch.all(scores == 1)
    order = np.lexsort(decoded[0].numpy().T[::-1])
    expected = np.lexsort(boxes.T[::-1])
    np.testing.assert_allclose(decoded[0].numpy()[order], boxes[expected], atol=1e-4)
    np.testing.assert_array_equal(decoded_classes[0].numpy()[order], classes[expected])
    # And back through the output->input->image maps of a 640x480 letterbox: < 1 px.
    _, image_to_input = letterbox(np.zeros((480, 640, 3), np.uint8), 256, 192, (0, 0, 0))
    corner = rng.uniform(0, 300, 2)
    image_boxes = np.concatenate([corner, corner + rng.uniform(20, 200, 2)])[None]
    output_from_image = compose_affines(invert_affines(output_to_input_affine()),
                                        image_to_input)
    output_boxes = map_boxes(output_from_image, image_boxes)
    single = encode_targets(output_boxes, [0], 1, (64, 48), 4)
    cell = single['indices'][0]
    centre = np.array([cell % 64, cell // 64]) + single['offset'][0]
    half = np.exp(single['size'][0]) / 2
    back = map_boxes(compose_affines(invert_affines(image_to_input), output_to_input_affine()),
                     np.concatenate([centre - half, centre + half])[None])
    assert np.abs(back - image_boxes).max() < 1e-3


def test_losses_prefer_the_truth():
    boxes = np.array([[4.0, 4.0, 14.0, 12.0]])
    targets = encode_targets(boxes, [0], 1, (32, 24), 4)
    batch = {name: torch.from_numpy(value)[None] for name, value in targets.items()}
    logit = torch.logit(torch.from_numpy(targets['heatmap']).clamp(1e-4, 1 - 1e-4))[None]
    size_map = torch.zeros(1, 2, 24, 32)
    offset_map = torch.zeros(1, 2, 24, 32)
    cell = int(targets['indices'][0])
    size_map.view(1, 2, -1)[0, :, cell] = torch.from_numpy(targets['size'][0])
    offset_map.view(1, 2, -1)[0, :, cell] = torch.from_numpy(targets['offset'][0])
    good, parts = detection_losses({'heatmap': logit, 'size': size_map, 'offset': offset_map},
                                   batch)
    bad, _ = detection_losses({'heatmap': torch.zeros_like(logit), 'size': size_map * 0,
                               'offset': offset_map * 0}, batch)
    assert parts['size'] < 1e-6 and parts['offset'] < 1e-6
    assert 0 <= good < 0.05 < bad
    assert torch.isfinite(focal_loss(torch.full_like(logit, 80.0), batch['heatmap']))


def test_matching_and_metrics():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [20, 20, 30, 31]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.2])
    matched, ious = match_detections(boxes, scores, [0, 0, 0, 0], gt, [0, 0])
    np.testing.assert_array_equal(matched, [True, False, False, True])
    assert ious[3] == pytest.approx(100 / 110)
    evaluator = DetectionEvaluator(num_classes=2)
    evaluator.add(boxes, scores, [0, 0, 0, 0], gt, [0, 0])
    summary = evaluator.summary(score_threshold=0.3)
    assert summary['recall'] == 0.5 and summary['precision'] == pytest.approx(1 / 3)
    assert summary['mean_iou'] == 1.0
    # Ranking TP, FP, FP, TP over 2 objects: AP = 0.5 * 1 + 0.5 * 0.5.
    assert summary['ap50'] == pytest.approx(0.75)
    # Another class's detection never matches.
    matched, _ = match_detections(boxes[:1], [1.0], [1], gt, [0, 0])
    assert not matched.any()


@pytest.fixture(scope='module')
def overfit_disc_detector(shape_datasets):
    """Return (CenterNet overfitted on the disc images, class names, image records)."""
    threads = torch.get_num_threads()  # a module fixture starts before the autouse one_thread
    torch.set_num_threads(1)
    torch.manual_seed(0)
    names, records, _ = load_image_records([shape_datasets['disc']])
    config = DetectorConfig(num_classes=1, **TINY)
    dataset = DetectionDataset(records, 1, config, max_objects=4)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    model = CenterNet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss, _ = detection_losses(model(batch['image']), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    return model.eval(), names, records


def read_rgb(path):
    """Return the RGB image (H, W, 3) uint8 of a file."""
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def test_overfit_reaches_full_recall(overfit_disc_detector):
    model, names, records = overfit_disc_detector
    detector = ObjectDetector(model, make_detector_meta(model.config, names),
                              object_names=['disc'])
    evaluator = DetectionEvaluator(1)
    for record in records:
        image = read_rgb(record.image)
        found = detector.detect(image)
        assert all(d.object_name == 'disc' and 0.3 <= d.score <= 1 for d in found)
        assert detector.detect(image, score_threshold=1.01) == []
        assert len(detector.detect(image, score_threshold=0.0)) >= len(found)
        evaluator.add([d.box_xyxy for d in found], [d.score for d in found], [0] * len(found),
                      record.boxes, record.classes)
    summary = evaluator.summary(0.3)
    assert summary['recall'] == 1.0, summary
    assert summary['mean_iou'] > 0.7, summary


def test_onnx_export_finds_the_same_boxes(overfit_disc_detector, tmp_path, capsys):
    model, names, records = overfit_disc_detector
    meta = make_detector_meta(model.config, names)
    save_checkpoint(tmp_path / 'detector.pt', model, meta)
    assert cli_main(['export', str(tmp_path / 'detector.pt'), '--out',
                     str(tmp_path / 'detector.onnx')]) == 0
    assert "detector of ['disc'], input 128x96" in capsys.readouterr().out
    detectors = [ObjectDetector.from_file(tmp_path / name, ['disc'], score_threshold=0.05)
                 for name in ('detector.pt', 'detector.onnx')]
    exported_meta = detectors[1].meta
    assert exported_meta == {**meta, 'code_version': exported_meta['code_version'],
                             'exported_from': exported_meta['exported_from'], 'export': 'onnx'}
    assert str(Path(__file__).resolve().parents[3]).encode() not in \
        (tmp_path / 'detector.onnx').read_bytes()
    found = 0
    for record in records:
        torch_boxes, onnx_boxes = (detector.detect(read_rgb(record.image))
                                   for detector in detectors)
        assert [d.object_name for d in onnx_boxes] == [d.object_name for d in torch_boxes]
        for ours, theirs in zip(onnx_boxes, torch_boxes):
            np.testing.assert_allclose(ours.box_xyxy, theirs.box_xyxy, atol=1e-3)
            assert abs(ours.score - theirs.score) < 1e-5
        found += len(torch_boxes)
    assert found >= len(records)
    with pytest.raises(CheckpointError, match=r"detector.onnx: detector has no class \['kite'\]"):
        ObjectDetector.from_file(tmp_path / 'detector.onnx', ['kite'])
    assert cli_main(['export', str(tmp_path / 'detector.pt'), '--out',
                     str(tmp_path / 'detector.pt2')]) == 2
    assert 'a detector exports to .onnx only' in capsys.readouterr().err


def test_checkpoint_round_trip_and_errors(tmp_path):
    config = DetectorConfig(num_classes=2, **TINY)
    model = CenterNet(config).eval()
    path = tmp_path / 'detector.pt'
    save_checkpoint(path, model, make_detector_meta(config, ['disc', 'square'], 0.4))
    loaded, meta, training = load_detector_checkpoint(path, ['square'])
    assert meta['class_names'] == ['disc', 'square'] and meta['input_size'] == [128, 96]
    assert training is None and meta['code_version']
    images = torch.randn(1, 3, 96, 128)
    torch.testing.assert_close(loaded(images)['heatmap'], model(images)['heatmap'])
    detector = ObjectDetector.from_file(path, object_names=['square'])
    assert detector.score_threshold == 0.4
    found = detector.detect(np.zeros((60, 90, 3), np.uint8))
    assert all(d.object_name == 'square' for d in found)
    with pytest.raises(CheckpointError, match='missing.pt: checkpoint file not found'):
        ObjectDetector.from_file(tmp_path / 'missing.pt')
    (tmp_path / 'garbage.pt').write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='garbage.pt: not a pose_kp_ros checkpoint'):
        ObjectDetector.from_file(tmp_path / 'garbage.pt')
    torch.save({'meta': {'format': 'pose_kp_ros.keypoint_checkpoint'}, 'model': {}},
               tmp_path / 'keypoints.pt')
    with pytest.raises(CheckpointError, match='not a pose_kp_ros detector checkpoint'):
        ObjectDetector.from_file(tmp_path / 'keypoints.pt')
    with pytest.raises(CheckpointError, match=r"detector.pt: detector has no class \['driller'\]"):
        ObjectDetector.from_file(path, object_names=['driller'])
    with pytest.raises(ValueError, match='image_rgb'):
        detector.detect(np.zeros((60, 90), np.uint8))


def test_occluders_cover_part_of_each_object_and_cutout_the_image():
    rng = np.random.default_rng(0)
    boxes = np.array([[40.0, 30.0, 100.0, 90.0]])
    off = DetectorAugmentConfig()
    canvas = np.full((192, 256, 3), 128, np.uint8)
    state = rng.bit_generator.state
    assert np.array_equal(occlude(canvas.copy(), boxes, rng, off), canvas)
    assert rng.bit_generator.state == state   # off by default: older recipes draw as before
    on = DetectorAugmentConfig(occluder_prob=1.0, occluder_size=(0.2, 0.4))
    for _ in range(20):
        painted = occlude(canvas.copy(), boxes, rng, on)
        changed = np.argwhere((painted != canvas).any(2))[:, ::-1]
        assert len(changed) > 0
        # a polygon of corner distance <= 0.4 * 60 px around a centre inside the box
        assert (changed >= boxes[0, :2] - 24.5).all() and (changed <= boxes[0, 2:] + 24.5).all()
        assert len(changed) < 0.8 * 60 * 60
    cut = DetectorAugmentConfig(cutout_prob=1.0)
    painted = occlude(canvas.copy(), np.zeros((0, 4)), rng, cut)
    rows, cols = np.nonzero((painted != canvas).any(2))
    assert 0.1 * 192 - 2 <= np.ptp(rows) + 1 <= 0.35 * 192
    assert 0.1 * 256 - 2 <= np.ptp(cols) + 1 <= 0.35 * 256


def test_occluded_samples_keep_their_targets(shape_datasets):
    _, records, _ = load_image_records([shape_datasets['disc'], shape_datasets['square']])
    config = DetectorConfig(num_classes=2, **TINY)
    plain = DetectionDataset(records, 2, config, DetectorAugmentConfig(), seed=4, max_objects=4)
    occluded = DetectionDataset(records, 2, config, DetectorAugmentConfig(
        occluder_prob=1.0, cutout_prob=1.0), seed=4, max_objects=4)
    for index in range(3):
        a, b = plain[index], occluded[index]
        assert not torch.equal(a['image'], b['image'])
        for key in ('heatmap', 'size', 'offset', 'mask', 'gt_boxes', 'image_to_input'):
            assert torch.equal(a[key], b[key]), key


def test_train_detector_cli_then_resume(shape_datasets, tmp_path, capsys):
    config = {'datasets': [str(shape_datasets['square']), str(shape_datasets['disc'])],
              'val_fraction': 0.34, 'output_dir': 'run', 'epochs': 1, 'batch_size': 4,
              'workers': 0, 'seed': 1, 'architecture': TINY, 'max_objects': 4, 'threads': 1}
    path = tmp_path / 'detector.yaml'
    path.write_text(yaml.safe_dump(config))
    assert cli_main(['train-detector', '--config', str(path), '--device', 'cpu']) == 0
    run = tmp_path / 'run'
    assert {p.name for p in run.iterdir()} >= {'last.pt', 'best.pt', 'metrics.json',
                                               'training_curves.png'}
    history = json.loads((run / 'metrics.json').read_text())
    assert [h['epoch'] for h in history] == [1]
    for key in ('val_recall', 'val_precision', 'val_mean_iou', 'val_ap50'):
        assert 0 <= history[0][key] <= 1
    assert history[0]['val_objects'] > 0
    assert cli_main(['train-detector', '--config', str(path)]) == 2
    assert 'pass --resume' in capsys.readouterr().err
    assert cli_main(['train-detector', '--config', str(path), '--resume', '--epochs', '2']) == 0
    history = json.loads((run / 'metrics.json').read_text())
    assert [h['epoch'] for h in history] == [1, 2]
    _, meta, training = load_detector_checkpoint(run / 'last.pt', ['disc', 'square'])
    assert meta['class_names'] == ['square', 'disc'] and meta['epoch'] == 2  # as listed
    assert training['batches_done'] == 0 and meta['training_config']['epochs'] == 2
    assert meta['training_config']['output_dir'] == 'run'  # relative to the config file
    assert meta['training_config']['datasets'] == [
        os.path.relpath(shape_datasets[name], tmp_path) for name in ('square', 'disc')]
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({**config, 'datasets': [str(tmp_path / 'nowhere')]}))
    assert cli_main(['train-detector', '--config', str(bad)]) == 2
    assert 'nowhere' in capsys.readouterr().err
    # Fine-tuning: a new run starts from the first run's weights, at epoch 0.
    tuned = tmp_path / 'tuned.yaml'
    tuned.write_text(yaml.safe_dump({**config, 'output_dir': 'tuned',
                                     'init_weights': str(run / 'best.pt')}))
    from pose_kp_ros.training.detector_training import DetectorTrainer, load_config
    trainer = DetectorTrainer(load_config(tuned), torch.device('cpu'), 0, 1)
    start, _, _ = load_detector_checkpoint(run / 'best.pt')
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, start.state_dict()[name]), name
    assert trainer.epoch == 0


def test_a_detector_of_other_classes_starts_from_a_trained_one(shape_datasets, tmp_path,
                                                               capsys):
    """init_weights from a one-class detector: trunk, box heads and the shared class's row.

    The new class's heatmap row stays fresh (the prior); another architecture fails.
    """
    single = DetectorConfig(num_classes=1, **TINY)
    source = CenterNet(single)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(torch.randn_like(parameter))
    start = tmp_path / 'disc_only.pt'
    save_checkpoint(start, source, make_detector_meta(single, ['disc']))
    config = {'datasets': [str(shape_datasets['square']), str(shape_datasets['disc'])],
              'val_fraction': 0.34, 'output_dir': 'two', 'epochs': 1, 'batch_size': 4,
              'workers': 0, 'seed': 1, 'architecture': TINY, 'max_objects': 4, 'threads': 1,
              'init_weights': str(start)}
    path = tmp_path / 'two.yaml'
    path.write_text(yaml.safe_dump(config))
    from pose_kp_ros.training.detector_training import DetectorTrainer, load_config
    trainer = DetectorTrainer(load_config(path), torch.device('cpu'), 0, 1)
    assert trainer.class_names == ['square', 'disc']
    assert "heatmaps of ['disc'] (the other 1 classes start fresh)" in capsys.readouterr().out
    prior_bias = CenterNet(DetectorConfig(num_classes=2, **TINY)).heads['heatmap'][-1].bias
    weights, trained = trainer.model.state_dict(), source.state_dict()
    for name, tensor in weights.items():
        if name.startswith('heads.heatmap.1.'):
            assert torch.equal(tensor[1], trained[name][0]), name   # disc: copied
            assert not torch.equal(tensor[0], trained[name][0]), name  # square: fresh
        else:
            assert torch.equal(tensor, trained[name]), name
    assert weights['heads.heatmap.1.bias'][0] == prior_bias[0]
    larger = tmp_path / 'larger.yaml'  # a larger input: the same weights (fully convolutional)
    larger_input = {'input_width': 2 * single.input_width, 'input_height': 2 * single.input_height}
    larger.write_text(yaml.safe_dump({**config, 'architecture': {**TINY, **larger_input}}))
    trainer = DetectorTrainer(load_config(larger), torch.device('cpu'), 0, 1)
    assert trainer.net_config.input_width == 2 * single.input_width
    assert torch.equal(trainer.model.state_dict()['heads.heatmap.1.weight'][1],
                       trained['heads.heatmap.1.weight'][0])
    wider = tmp_path / 'wider.yaml'
    wider.write_text(yaml.safe_dump({**config, 'architecture': {**TINY, 'neck_channels': 24}}))
    with pytest.raises(CheckpointError, match='differs from the config'):
        DetectorTrainer(load_config(wider), torch.device('cpu'), 0, 1)


def test_pretrained_encoder_detector(shape_datasets, tmp_path):
    """MobileNetV2 under the neck: same maps, and folding batch norm stays exact.

    A training run starts from the ImageNet weights, keeps the frozen blocks and round-trips
    through its checkpoint.
    """
    config = DetectorConfig(num_classes=2, encoder='mobilenet_v2', input_width=128,
                            input_height=96, neck_channels=16, head_channels=16)
    model = CenterNet(config).eval()
    images = torch.randn(1, 3, 96, 128)
    outputs = model(images)
    assert outputs['heatmap'].shape == (1, 2, 24, 32)
    folded = fold_batch_norm(model)(images)
    torch.testing.assert_close(folded['size'], outputs['size'], atol=1e-4, rtol=1e-4)
    with pytest.raises(DetectorConfigError, match='encoder must be one of'):
        DetectorConfig(num_classes=1, encoder='vgg')
    run_config = {'datasets': [str(shape_datasets['square']), str(shape_datasets['disc'])],
                  'val_fraction': 0.34, 'output_dir': 'run', 'epochs': 1, 'batch_size': 4,
                  'workers': 0, 'seed': 1, 'max_objects': 4, 'threads': 1, 'imagenet': True,
                  'frozen_encoder_blocks': 4,
                  'architecture': {'encoder': 'mobilenet_v2', 'input_width': 128,
                                   'input_height': 96, 'neck_channels': 16,
                                   'head_channels': 16},
                  'augmentation': {'jpeg_prob': 1.0}}
    path = tmp_path / 'pretrained.yaml'
    path.write_text(yaml.safe_dump(run_config))
    assert cli_main(['train-detector', '--config', str(path), '--device', 'cpu']) == 0
    trained, meta, _ = load_detector_checkpoint(tmp_path / 'run' / 'last.pt')
    assert meta['architecture']['encoder'] == 'mobilenet_v2'
    from pose_kp_ros.network.mobilenet_v2 import imagenet_weights_path
    imagenet = torch.load(imagenet_weights_path(), map_location='cpu', weights_only=True)
    for name, tensor in trained.encoder.state_dict().items():
        if int(name.split('.')[1]) < 4:
            assert torch.equal(tensor, imagenet[name]), name
