"""Image + boxes -> keypoints in image pixels with confidences: the network's inference path.

    >>> predictor = KeypointPredictor.from_file('models/driller.pt',  # doctest: +SKIP
    ...     expected_keypoint_names=model.keypoint_names, object_name=model.name)
    >>> result = predictor.predict(image_rgb, boxes_xyxy)  # doctest: +SKIP
    >>> result.keypoints.shape, result.confidence.shape  # doctest: +SKIP
    ((B, N, 2), (B, N))

Steps, each a plain function usable on its own: `crop_boxes` (crops.py) -> `normalise_crops` ->
model forward (one batch) -> `decode_heatmaps` (heatmaps.py) -> `heatmap_to_image_affines` and
`transform_points` back to image pixels.
"""

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike
import torch

from pose_kp_ros.network.checkpoint import load_model
from pose_kp_ros.network.crops import (
    compose_affines,
    crop_boxes,
    heatmap_to_crop_affine,
    invert_affines,
    low_pass_crops,
    transform_points,
)
from pose_kp_ros.network.heatmaps import decode_heatmaps
from pose_kp_ros.network.onnx_runtime import OnnxNetwork


class StageTiming(Protocol):
    """A stage timer: pose_kp_ros.pipeline.stage_timer.StageTimer (not imported here)."""

    def stage(self, name: str) -> AbstractContextManager[None]:
        """Return a context manager timing its block as stage `name`."""


@dataclass
class KeypointPrediction:
    """Keypoints of B crops.

    Attributes:
        keypoints: (B, N, 2) float64 image pixels (u, v).
        confidence: (B, N) float32 peak heights in [0, 1] (0: no peak, ignore the keypoint).
        heatmaps: (B, N, H, H) float32 tensor on the CPU, the last stack's output.
        crop_affines: (B, 2, 3) image->crop affines used.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    heatmaps: torch.Tensor
    crop_affines: np.ndarray


def normalise_crops(crops: np.ndarray, mean: Sequence[float], std: Sequence[float],
                    device: torch.device | str = 'cpu') -> torch.Tensor:
    """Turn uint8 RGB crops (B, S, S, 3) into a float tensor (B, 3, S, S) on `device`.

    mean, std: (3,) RGB in [0, 1].
    """
    images = torch.as_tensor(np.ascontiguousarray(crops), device=device)
    images = images.permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(mean, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(std, dtype=torch.float32, device=device)[:, None, None]
    return (images - mean) / std


def heatmap_to_image_affines(crop_affines: np.ndarray, input_size: int,
                             heatmap_size: int) -> np.ndarray:
    """Return heatmap->image affines (B, 2, 3) for image->crop affines (B, 2, 3)."""
    return compose_affines(invert_affines(crop_affines),
                           heatmap_to_crop_affine(input_size, heatmap_size))


class KeypointPredictor:
    """A loaded network with its crop and normalisation settings."""

    def __init__(self, model: torch.nn.Module | OnnxNetwork, meta: dict,
                 device: torch.device | str = 'cpu') -> None:
        self.model = model
        self.meta = meta
        self.device = device
        # ONNX Runtime takes and returns host arrays (it copies to the GPU itself): the crops
        # around a session stay on the CPU whatever the device
        self.tensor_device = 'cpu' if isinstance(model, OnnxNetwork) else device
        self.keypoint_names = list(meta['keypoint_names'])
        self.input_size = int(meta['input_size'])
        self.heatmap_size = int(meta['heatmap_size'])
        self.padding = float(meta['padding'])
        self.low_pass_px = float(meta.get('low_pass_px', 0.0))  # older checkpoints: none

    @classmethod
    def from_file(cls, path: Path | str, expected_keypoint_names: Sequence[str] | None = None,
                  object_name: str | None = None,
                  device: torch.device | str = 'cpu') -> 'KeypointPredictor':
        """Load a checkpoint or exported model, checked against the object's keypoints."""
        model, meta = load_model(path, expected_keypoint_names, object_name, device)
        return cls(model, meta, device)

    @torch.inference_mode()
    def predict(self, image_rgb: np.ndarray, boxes_xyxy: ArrayLike,
                timer: StageTiming | None = None) -> KeypointPrediction:
        """Predict keypoints for boxes in one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB image.
            boxes_xyxy: (B, 4) boxes in image pixels (B >= 1).
            timer: optional stage timer (pose_kp_ros.pipeline.stage_timer.StageTimer): the
                stages 'crops' (cut, low-pass, normalise) and 'network' (forward, decode).
        """
        stage = timer.stage if timer is not None else nullcontext
        with stage('crops'):
            crops, affines = crop_boxes(image_rgb, boxes_xyxy, self.input_size, self.padding)
            crops = low_pass_crops(crops, affines, self.low_pass_px)
            images = normalise_crops(crops, self.meta['mean'], self.meta['std'],
                                     self.tensor_device)
        with stage('network'):  # all crops in one batch: one forward, one session.run
            heatmaps = self.model(images).float().cpu()
            keypoints_hm, confidence = decode_heatmaps(heatmaps)
            to_image = heatmap_to_image_affines(affines, self.input_size, self.heatmap_size)
            keypoints = transform_points(to_image, keypoints_hm.double().numpy())
        return KeypointPrediction(keypoints=keypoints, confidence=confidence.numpy(),
                                  heatmaps=heatmaps, crop_affines=affines)
