"""Training losses: the keypoint network's heatmap loss and the detector's focal and L1 losses."""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from pose_kp_ros.network.box_codec import gather_cells


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
               beta: float = 4.0) -> torch.Tensor:
    """Return CenterNet's penalty-reduced focal loss, summed and divided by the object count.

    Args:
        logits: (B, C, H, W) heatmap logits.
        target: (B, C, H, W) Gaussian targets, 1 exactly at object centres.
        alpha, beta: the focal exponents of CenterNet.

    Returns:
        the loss, a scalar tensor.
    """
    logits, target = logits.float(), target.float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    positive = target >= 1.0
    positive_loss = ((1 - p) ** alpha * log_p)[positive].sum()
    negative_loss = ((1 - target) ** beta * p ** alpha * log_not_p)[~positive].sum()
    return -(positive_loss + negative_loss) / positive.sum().clamp(min=1)


def regression_loss(maps: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor,
                    target: torch.Tensor) -> torch.Tensor:
    """Return the mean L1 error of maps (B, 2, H, W) at the objects' cells against (B, K, 2).

    indices: (B, K) flat cell indices y * W + x; mask: (B, K) 1 for used slots. A scalar tensor.
    """
    error = (gather_cells(maps.float(), indices) - target).abs().sum(-1)
    return (error * mask).sum() / (2 * mask.sum()).clamp(min=1)


def detection_losses(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     size_weight: float = 1.0,
                     offset_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Return (total loss, {'heatmap', 'size', 'offset'} float parts) of a batch.

    `batch` holds the stacked targets of encode_targets as tensors on the outputs' device.
    """
    parts = {'heatmap': focal_loss(outputs['heatmap'], batch['heatmap']),
             'size': regression_loss(outputs['size'], batch['indices'], batch['mask'],
                                     batch['size']),
             'offset': regression_loss(outputs['offset'], batch['indices'], batch['mask'],
                                       batch['offset'])}
    total = parts['heatmap'] + size_weight * parts['size'] + offset_weight * parts['offset']
    return total, {name: value.item() for name, value in parts.items()}


def heatmap_loss(outputs: Sequence[torch.Tensor], targets: torch.Tensor, weights: torch.Tensor,
                 foreground_weight: float = 0.0) -> torch.Tensor:
    """Return the sum over stacks of the visibility-weighted mean squared heatmap error (scalar).

    Args:
        outputs: list of (B, N, H, H) heatmaps, one per stack (intermediate supervision).
        targets: (B, N, H, H) Gaussian targets.
        weights: (B, N) keypoint weights.
        foreground_weight: each pixel's squared error counts 1 + foreground_weight x target
            (0: plain MSE), so the few pixels near a keypoint outweigh the background.
    """
    normaliser = weights.sum().clamp(min=1.0)
    pixel_weights = 1.0 + foreground_weight * targets
    return sum(((out.float() - targets) ** 2 * pixel_weights).mean((-2, -1)).mul(weights).sum()
               / normaliser for out in outputs)
