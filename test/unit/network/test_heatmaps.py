import numpy as np
import torch

from pose_kp_ros.network.heatmaps import decode_heatmaps, keypoint_weights, render_heatmaps


def test_encode_decode_round_trip_sub_pixel():
    rng = np.random.default_rng(0)
    keypoints = torch.from_numpy(rng.uniform(1.0, 62.0, (64, 8, 2))).float()
    for sigma in (1.0, 2.0, 3.0):
        maps = render_heatmaps(keypoints, torch.ones(64, 8), 64, sigma)
        decoded, confidence = decode_heatmaps(maps)
        assert (decoded - keypoints).abs().max() < 0.01
        assert (confidence > 0.6).all()


def test_peak_height_is_confidence_and_scales():
    keypoints = torch.tensor([[[10.0, 20.0], [30.0, 5.0]]])
    maps = render_heatmaps(keypoints, torch.ones(1, 2), 32, 2.0)
    maps[0, 1] *= 0.3
    decoded, confidence = decode_heatmaps(maps)
    torch.testing.assert_close(confidence, torch.tensor([[1.0, 0.3]]))
    torch.testing.assert_close(decoded, keypoints)


def test_zero_weight_gives_empty_map_and_zero_confidence():
    keypoints = torch.tensor([[[10.0, 20.0], [np.nan, np.nan]]])
    weights = keypoint_weights(keypoints, torch.tensor([[2, 2]]))
    assert weights.tolist() == [[1.0, 0.0]]
    maps = render_heatmaps(keypoints, weights, 32, 2.0)
    assert maps[0, 1].abs().max() == 0
    decoded, confidence = decode_heatmaps(maps)
    assert confidence[0, 1] == 0 and torch.isfinite(decoded).all()


def test_visibility_threshold():
    keypoints = torch.zeros(1, 3, 2)
    weights = keypoint_weights(keypoints, torch.tensor([[0, 1, 2]]), min_visibility=2)
    assert weights.tolist() == [[0.0, 0.0, 1.0]]


def test_flat_nan_and_negative_maps_decode_safely():
    maps = torch.stack([torch.full((16, 16), 0.5), torch.full((16, 16), float('nan')),
                        torch.full((16, 16), -1.0), torch.zeros(16, 16)])[None]
    maps[0, 2, 3, 4] = -0.1
    decoded, confidence = decode_heatmaps(maps)
    assert torch.isfinite(decoded).all() and torch.isfinite(confidence).all()
    assert confidence.tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_peak_on_border_and_point_outside_map():
    keypoints = torch.tensor([[[0.0, 15.0], [40.0, 8.0]]])
    maps = render_heatmaps(keypoints, torch.ones(1, 2), 16, 1.5)
    decoded, confidence = decode_heatmaps(maps)
    torch.testing.assert_close(decoded[0, 0], torch.tensor([0.0, 15.0]))
    assert confidence[0, 1] < 1e-6  # 25 px beyond the edge: nothing left of the Gaussian
