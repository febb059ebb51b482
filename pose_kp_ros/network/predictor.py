"""Image + boxes -> keypoints in image pixels with confidences: the network's inference path.

    >>> predictor = KeypointPredictor.from_file('models/driller.pt',  # doctest: +SKIP
    ...     expected_keypoint_names=model.keypoint_names, object_name=model.name)
    >>> result = predictor.predict(image_rgb, boxes_xyxy)  # doctest: +SKIP
    >>> result.keypoints.shape, result.confidence.shape  # doctest: +SKIP
    ((B, N, 2), (B, N))

A network of several objects (checkpoint.network_objects) answers the crops of all of them in
one forward: `predict_objects(image_rgb, {object_name: boxes})`, each crop decoded on its
object's heatmap channels.

Steps, each a plain function usable on its own: `crop_boxes` (crops.py) -> `normalise_crops` ->
model forward (one batch) -> `decode_heatmaps` (heatmaps.py) -> `heatmap_to_image_affines` and
`transform_points` back to image pixels.
"""

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike
import torch

from pose_kp_ros.network.checkpoint import load_model, network_objects, object_channels
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


def concatenated_predictions(parts: Sequence[KeypointPrediction]) -> KeypointPrediction:
    """Return the KeypointPredictions of several batches of one object's crops as one, in order.

    A field that some part does not report (None, e.g. heatmaps) is None.
    """
    def joined(values):
        if any(value is None for value in values):
            return None
        return torch.cat(values) if isinstance(values[0], torch.Tensor) else np.concatenate(values)

    return KeypointPrediction(*(joined([getattr(part, field.name) for part in parts])
                                for field in fields(KeypointPrediction)))


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
        self.channels = object_channels(network_objects(meta))  # {object: its channels}
        self.input_size = int(meta['input_size'])
        self.heatmap_size = int(meta['heatmap_size'])
        self.padding = float(meta['padding'])
        self.low_pass_px = float(meta.get('low_pass_px', 0.0))  # older checkpoints: none
        # per-object heads (keypoint_net.ObjectHeadsNet): the network needs each crop's object
        self.object_heads = bool(meta['architecture'].get('object_keypoints'))

    @classmethod
    def from_file(cls, path: Path | str, expected_keypoint_names: Sequence[str] | None = None,
                  object_name: str | None = None,
                  device: torch.device | str = 'cpu') -> 'KeypointPredictor':
        """Load a checkpoint or exported model, checked against the object's keypoints."""
        model, meta = load_model(path, expected_keypoint_names, object_name, device)
        return cls(model, meta, device)

    @property
    def object_names(self) -> list[str]:
        """Return the objects whose keypoints the network finds, in channel order."""
        return list(self.channels)

    def predict(self, image_rgb: np.ndarray, boxes_xyxy: ArrayLike,
                timer: StageTiming | None = None,
                object_name: str | None = None) -> KeypointPrediction:
        """Predict keypoints for boxes in one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB image.
            boxes_xyxy: (B, 4) boxes in image pixels (B >= 1).
            timer: optional stage timer (pose_kp_ros.pipeline.stage_timer.StageTimer): the
                stages 'crops' (cut, low-pass, normalise) and 'network' (forward, decode).
            object_name: whose keypoints (None: the network's first object).
        """
        name = self.object_names[0] if object_name is None else object_name
        return self.predict_objects(image_rgb, {name: boxes_xyxy}, timer)[name]

    @torch.inference_mode()
    def predict_objects(self, image_rgb: np.ndarray, boxes_xyxy: Mapping[str, ArrayLike],
                        timer: StageTiming | None = None) -> dict[str, KeypointPrediction]:
        """Predict the keypoints of several objects' boxes in one image, in one forward.

        boxes_xyxy: {object name: (B_o, 4) boxes, image pixels}, objects of this network;
        timer as in `predict`. Returns {object name: KeypointPrediction of its boxes}.
        """
        unknown = [name for name in boxes_xyxy if name not in self.channels]
        if unknown:
            raise ValueError(f"objects {unknown} are not among the network's "
                             f'{self.object_names}')
        groups = {name: np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
                  for name, boxes in boxes_xyxy.items()}
        stage = timer.stage if timer is not None else nullcontext
        with stage('crops'):
            crops, affines = crop_boxes(image_rgb, np.concatenate(list(groups.values())),
                                        self.input_size, self.padding)
            crops = low_pass_crops(crops, affines, self.low_pass_px)
            images = normalise_crops(crops, self.meta['mean'], self.meta['std'],
                                     self.tensor_device)
        predictions = {}
        with stage('network'):  # all crops in one batch: one forward, one session.run
            if self.object_heads:
                objects = torch.as_tensor(np.repeat(
                    [self.object_names.index(name) for name in groups],
                    [len(boxes) for boxes in groups.values()]), device=images.device)
                heatmaps = self.model(images, objects).float().cpu()
            else:
                heatmaps = self.model(images).float().cpu()
            to_image = heatmap_to_image_affines(affines, self.input_size, self.heatmap_size)
            start = 0
            for name, boxes in groups.items():
                rows = slice(start, start + len(boxes))
                start += len(boxes)
                mine = heatmaps[rows, self.channels[name]]
                keypoints_hm, confidence = decode_heatmaps(mine)
                keypoints = transform_points(to_image[rows], keypoints_hm.double().numpy())
                predictions[name] = KeypointPrediction(
                    keypoints=keypoints, confidence=confidence.numpy(), heatmaps=mine,
                    crop_affines=affines[rows])
        return predictions


def predict_crops(predictors: Mapping[str, KeypointPredictor], image_rgb: np.ndarray,
                  boxes_xyxy: Mapping[str, ArrayLike],
                  timer: StageTiming | None = None) -> dict[str, KeypointPrediction]:
    """Predict the keypoints of every object's boxes, one forward per network.

    predictors: {object name: its predictor} (objects sharing a network share the instance);
    boxes_xyxy: {object name: (B_o, 4) boxes, image pixels}. Returns {object name:
    KeypointPrediction}.
    """
    networks = {}  # id of a predictor -> (predictor, the objects it answers here)
    for name in boxes_xyxy:
        networks.setdefault(id(predictors[name]), (predictors[name], []))[1].append(name)
    predictions = {}
    for predictor, names in networks.values():
        predictions.update(predictor.predict_objects(
            image_rgb, {name: boxes_xyxy[name] for name in names}, timer))
    return predictions
