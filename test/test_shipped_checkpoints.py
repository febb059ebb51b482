"""The default model's training checkpoint computes what its shipped ONNX model computes.

models/driller/keypoints.pt is the start for fine-tuning the default network (`init_weights`;
docs/training.md, "Fine-tuning the default model"); keypoints.onnx is what the pipeline runs.
"""

import numpy as np
import torch

from pose_kp_ros.network.checkpoint import load_model


def test_keypoint_checkpoint_and_onnx_give_the_same_heatmaps(repo_root):
    folder = repo_root / 'models' / 'driller'
    checkpoint, checkpoint_meta = load_model(folder / 'keypoints.pt')
    onnx, onnx_meta = load_model(folder / 'keypoints.onnx')
    for key in ('keypoint_names', 'architecture', 'padding', 'sigma', 'low_pass_px', 'mean',
                'std'):
        assert checkpoint_meta[key] == onnx_meta[key], key
    crops = torch.randn(3, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = np.asarray(onnx(crops))
        np.testing.assert_allclose(checkpoint(crops).numpy(), expected, atol=1e-4)
