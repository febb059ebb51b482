"""Training really learns: a tiny hourglass overfits a handful of synthetic samples."""

import torch

from pose_kp_ros.network.crops import heatmap_to_crop_affine, transform_points
from pose_kp_ros.network.heatmaps import decode_heatmaps
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet
from pose_kp_ros.training.keypoint_dataset import KeypointDataset
from pose_kp_ros.training.losses import heatmap_loss
from pose_kp_ros.training.records import load_records


def mean_keypoint_error(model, batch, crop_from_heatmap):
    model.eval()
    with torch.no_grad():
        decoded, _ = decode_heatmaps(model(batch['image'])[-1])
    predicted = transform_points(torch.as_tensor(crop_from_heatmap, dtype=torch.float32), decoded)
    supervised = batch['weights'] > 0
    return (predicted - batch['keypoints']).norm(dim=-1)[supervised].mean().item()


def test_tiny_network_overfits_a_few_samples(kite_dataset):
    torch.manual_seed(0)
    _, names, records = load_records(kite_dataset)
    config = HourglassConfig(num_keypoints=len(names), num_stacks=2, features=32, depth=3,
                             input_size=64, heatmap_stride=2)
    dataset = KeypointDataset(records[:4], config.input_size, config.heatmap_size, sigma=1.5)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
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
    print(f'mean keypoint error {before:.2f} -> {after:.2f} crop px, loss {losses[0]:.4f} -> '
          f'{losses[-1]:.5f}')
    assert losses[-1] < 0.1 * losses[0]
    assert after < 1.5 and after < before / 20
