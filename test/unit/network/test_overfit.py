"""Training really learns: a tiny hourglass overfits a handful of synthetic samples.

The overfitted network then drives the whole pipeline (layer 3) on those images: its checkpoint
in torch and its .onnx export in ONNX Runtime give the same poses.
"""

import cv2
import numpy as np
import pytest
import torch

from pose_kp_ros.network.checkpoint import make_meta
from pose_kp_ros.network.checkpoint_format import save_checkpoint
from pose_kp_ros.network.crops import heatmap_to_crop_affine, transform_points
from pose_kp_ros.network.heatmaps import decode_heatmaps
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.onnx_runtime import OnnxNetwork
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.tools.export_model import export_model
from pose_kp_ros.training.keypoint_dataset import KeypointDataset
from pose_kp_ros.training.losses import heatmap_loss
from pose_kp_ros.training.records import load_records

SAMPLES = 4
SIGMA = 1.5


def mean_keypoint_error(model, batch, crop_from_heatmap):
    model.eval()
    with torch.no_grad():
        decoded, _ = decode_heatmaps(model(batch['image'])[-1])
    predicted = transform_points(torch.as_tensor(crop_from_heatmap, dtype=torch.float32), decoded)
    supervised = batch['weights'] > 0
    return (predicted - batch['keypoints']).norm(dim=-1)[supervised].mean().item()


@pytest.fixture(scope='module')
def overfit(kite_dataset, tmp_path_factory):
    """Train a tiny network 150 steps on SAMPLES images; return what the tests look at.

    Returns:
        dict: checkpoint (path of the trained network), losses, error_before and error_after
        (mean keypoint error on the samples, crop pixels).
    """
    threads = torch.get_num_threads()  # a module fixture starts before the autouse one
    torch.set_num_threads(1)
    torch.manual_seed(0)
    _, names, records = load_records(kite_dataset)
    config = HourglassConfig(num_keypoints=len(names), num_stacks=2, features=32, depth=3,
                             input_size=64, heatmap_stride=2)
    dataset = KeypointDataset(records[:SAMPLES], config.input_size, config.heatmap_size,
                              sigma=SIGMA)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(SAMPLES)])
    crop_from_heatmap = heatmap_to_crop_affine(config.input_size, config.heatmap_size)
    model = HourglassNet(config)
    before = mean_keypoint_error(model, batch, crop_from_heatmap)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        model.train()
        loss = heatmap_loss(model(batch['image']), batch['heatmaps'], batch['weights'])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = mean_keypoint_error(model, batch, crop_from_heatmap)
    torch.set_num_threads(threads)
    checkpoint = tmp_path_factory.mktemp('overfit') / 'overfit.pt'
    save_checkpoint(checkpoint, model, make_meta(config, 'kite', names, 'tiny', 1.25, SIGMA,
                                                 IMAGENET_MEAN, IMAGENET_STD))
    return {'checkpoint': checkpoint, 'losses': losses, 'error_before': before,
            'error_after': after}


def test_tiny_network_overfits_a_few_samples(overfit):
    losses, before, after = overfit['losses'], overfit['error_before'], overfit['error_after']
    print(f'mean keypoint error {before:.2f} -> {after:.2f} crop px, loss {losses[0]:.4f} -> '
          f'{losses[-1]:.5f}')
    assert losses[-1] < 0.1 * losses[0]
    assert after < 1.5 and after < before / 20


def test_onnx_export_gives_the_checkpoint_poses(overfit, kite_dataset, tmp_path):
    checkpoint = overfit['checkpoint']
    export_model(checkpoint, tmp_path / 'overfit.onnx')
    estimators = []
    for network in (checkpoint, tmp_path / 'overfit.onnx'):
        estimators.append(KeypointPoseEstimator.from_config({
            'device': 'cpu', 'contour_search_px': [],
            'objects': [{'object': str(kite_dataset / 'kite.yaml'),
                         'keypoint_model': str(network)}]}))
    assert isinstance(estimators[1].objects['kite'].predictor.model, OnnxNetwork)
    _, _, records = load_records(kite_dataset)
    compared = 0
    for record in records[:SAMPLES]:  # one has a keypoint outside the image: no pose from either
        image = cv2.cvtColor(cv2.imread(record.image), cv2.COLOR_BGR2RGB)
        boxes = {'kite': np.array([record.box_xyxy])}
        torch_poses, onnx_poses = (estimator(image, np.array(record.K), boxes=boxes)
                                   for estimator in estimators)
        assert len(onnx_poses) == len(torch_poses)
        for ours, theirs in zip(onnx_poses, torch_poses):
            assert np.linalg.norm(theirs.t - np.array(record.t)) < 0.01  # a good fit: 1 cm
            np.testing.assert_allclose(ours.keypoints, theirs.keypoints, atol=1e-3)
            np.testing.assert_allclose(ours.confidences, theirs.confidences, atol=1e-5)
            np.testing.assert_allclose(ours.t, theirs.t, atol=1e-5)
            np.testing.assert_allclose(ours.R, theirs.R, atol=1e-5)
            compared += 1
    assert compared >= SAMPLES - 1
