"""Heatmap codec: Gaussian targets at sub-pixel keypoints, and peak decoding with confidence.

Coordinates are heatmap pixels (u, v) with the pixel-centre convention (pixel (0, 0)'s centre is
(0.0, 0.0)); `pose_kp_ros.network.crops.heatmap_to_crop_affine` maps them to crop pixels.

Decoding takes the arg-max pixel and refines it with a 1-D quadratic fit to the log of the map
along u and along v (exact for a sampled Gaussian, whose log is a paraboloid); the confidence is
the peak height clipped to [0, 1] (Pavlakos et al. use the heatmap maximum as the keypoint
confidence). A map with no contrast (all equal, all zero, or not finite) has confidence 0.
"""

import numpy as np
import torch

_LOG_FLOOR = 1e-12


def keypoint_weights(keypoints: torch.Tensor, visibility: torch.Tensor,
                     min_visibility: int = 1) -> torch.Tensor:
    """Return loss weights (B, N) in {0, 1}: visibility >= min_visibility and finite keypoints.

    Args:
        keypoints: (B, N, 2) keypoint positions (any pixel frame).
        visibility: (B, N) 2 visible, 1 occluded inside the image, 0 outside the image.
        min_visibility: smallest visibility that is supervised.
    """
    finite = torch.isfinite(keypoints).all(-1)
    return ((visibility >= min_visibility) & finite).to(torch.float32)


def render_heatmaps(keypoints: torch.Tensor | np.ndarray, weights: torch.Tensor | np.ndarray,
                    heatmap_size: int, sigma: float) -> torch.Tensor:
    """Render Gaussian target heatmaps (B, N, H, H) with peak 1 at each weighted keypoint.

    Args:
        keypoints: (B, N, 2) positions in heatmap pixels (sub-pixel, may lie outside the map).
        weights: (B, N) keypoints with weight 0 get an all-zero map.
        heatmap_size: side H of the square heatmap.
        sigma: Gaussian standard deviation in heatmap pixels.
    """
    keypoints = torch.nan_to_num(torch.as_tensor(keypoints, dtype=torch.float32), nan=-1e6)
    grid = torch.arange(heatmap_size, dtype=torch.float32, device=keypoints.device)
    du = (grid - keypoints[..., 0:1]) ** 2
    dv = (grid - keypoints[..., 1:2]) ** 2
    maps = torch.exp(-(dv[..., :, None] + du[..., None, :]) / (2 * sigma ** 2))
    return maps * (torch.as_tensor(weights, device=keypoints.device) > 0)[..., None, None]


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode heatmaps (B, N, H, W) into keypoints (B, N, 2) heatmap pixels and confidence (B, N).

    Non-finite values count as 0. A keypoint whose map has no contrast gets confidence 0 and the
    arg-max position (finite, meaningless): callers must weight by the confidence.
    """
    maps = torch.nan_to_num(heatmaps.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
    height, width = maps.shape[-2:]
    flat = maps.flatten(-2)
    peak, index = flat.max(-1)
    lowest = flat.min(-1).values
    row, col = index // width, index % width

    def value_at(r, c):
        return flat.gather(-1, (r * width + c)[..., None])[..., 0]

    def offset(low, centre, high, inside):
        """Quadratic-fit vertex of log values at -1, 0, +1, in [-0.5, 0.5] (0 where no peak)."""
        logs = [torch.log(torch.clamp(v, min=_LOG_FLOOR)) for v in (low, centre, high)]
        curvature = logs[0] - 2 * logs[1] + logs[2]
        ok = inside & (curvature < 0)
        delta = 0.5 * (logs[0] - logs[2]) / torch.where(ok, curvature, torch.ones_like(curvature))
        return torch.where(ok, delta.clamp(-0.5, 0.5), torch.zeros_like(delta))

    col_l, col_r = (col - 1).clamp(min=0), (col + 1).clamp(max=width - 1)
    row_u, row_d = (row - 1).clamp(min=0), (row + 1).clamp(max=height - 1)
    du = offset(value_at(row, col_l), peak, value_at(row, col_r), (col > 0) & (col < width - 1))
    dv = offset(value_at(row_u, col), peak, value_at(row_d, col), (row > 0) & (row < height - 1))
    keypoints = torch.stack([col.float() + du, row.float() + dv], -1)
    confidence = torch.where(peak > lowest, peak.clamp(0.0, 1.0), torch.zeros_like(peak))
    return keypoints, confidence
