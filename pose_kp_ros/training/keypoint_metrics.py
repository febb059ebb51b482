"""Validation sums of a keypoint network: mean errors in crop and image pixels, PCK counts."""

from collections.abc import Mapping

import numpy as np
import torch

from pose_kp_ros.network.crops import transform_points
from pose_kp_ros.network.heatmaps import decode_heatmaps

PCK_THRESHOLDS = (0.05, 0.1)
"""PCK@a: a keypoint within a x the longer side of its tight box counts."""


def keypoint_error_sums(heatmaps: torch.Tensor, batch: Mapping[str, torch.Tensor],
                        crop_from_heatmap: np.ndarray, min_visibility: int,
                        groups: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Return sums for validation metrics of one batch (crop and image pixels, PCK counts).

    heatmaps: (B, N, H, H) of the last stack, each sample's own keypoint rows; batch:
    KeypointDataset samples stacked (keypoints (B, N, 2) crop pixels, visibility (B, N),
    crop_scale (B,), box_size (B,)); crop_from_heatmap: (2, 3) affine from heatmap to crop
    pixels; groups: {object name: (B,) bool, its samples} of a network of several objects,
    whose sums also come per object ('<sum>/<object>').

    Keypoints with visibility >= min_visibility count. Image-pixel error = crop error / crop
    scale; PCK@a counts errors <= a * longer side of the tight box.
    """
    decoded, _ = decode_heatmaps(heatmaps)
    predicted = transform_points(torch.as_tensor(crop_from_heatmap, dtype=torch.float32),
                                 decoded.cpu())
    error_crop = (predicted - batch['keypoints']).norm(dim=-1)
    error_image = error_crop / batch['crop_scale'][:, None]
    counted = batch['visibility'] >= min_visibility
    hits = {alpha: error_image <= alpha * batch['box_size'][:, None] for alpha in PCK_THRESHOLDS}
    sums = {}
    everything = torch.ones(len(counted), dtype=torch.bool)
    for suffix, samples in [('', everything), *((f'/{name}', samples) for name, samples
                                                in (groups or {}).items())]:
        mine = counted & samples[:, None]
        sums.update({f'count{suffix}': mine.sum().item(),
                     f'error_crop_px{suffix}': error_crop[mine].sum().item(),
                     f'error_image_px{suffix}': error_image[mine].sum().item()})
        for alpha, hit in hits.items():
            sums[f'pck@{alpha}{suffix}'] = (hit & mine).sum().item()
    return sums
