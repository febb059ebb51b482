"""Full-image object detector, inference: image -> letterbox -> CenterNet -> decoded boxes.

A small CenterNet ("Objects as Points", Zhou et al. 2019; docs/detector.md): the network is in
detector_model.py, the letterbox maps and the decoding in box_codec.py, checkpoints in
detector_checkpoint.py; training lives in pose_kp_ros.training. An exported detector (.onnx,
`pose-kp export`) runs the network's three output maps in ONNX Runtime (onnx_runtime.py); the
decoding stays here and in box_codec.py.

    >>> detector = ObjectDetector.from_file('models/detector.pt', object_names=['driller'])
    >>> found = detector.detect(image_rgb)   # doctest: +SKIP
    >>> found[0].object_name, found[0].box_xyxy, found[0].score   # doctest: +SKIP
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pose_kp_ros.network.box_codec import (
    decode_outputs,
    letterbox,
    map_boxes,
    output_to_input_affine,
)
from pose_kp_ros.network.checkpoint_format import is_onnx_model
from pose_kp_ros.network.crops import compose_affines, invert_affines
from pose_kp_ros.network.detector_checkpoint import check_detector_meta, load_detector_checkpoint
from pose_kp_ros.network.detector_model import fold_batch_norm
from pose_kp_ros.network.onnx_runtime import TRT_BATCH, OnnxNetwork, load_onnx_model


@dataclass
class Detection:
    """One detected object.

    Attributes:
        object_name: class name.
        box_xyxy: (4,) float64 box in image pixels (edges, pixel-centre convention).
        score: centre heatmap peak in [0, 1].
    """

    object_name: str
    box_xyxy: np.ndarray
    score: float


class ObjectDetector:
    """Whole image -> object boxes, with a trained CenterNet (see the module docstring)."""

    def __init__(self, model: torch.nn.Module | OnnxNetwork, meta: dict,
                 object_names: Sequence[str] | None = None, device: torch.device | str = 'cpu',
                 score_threshold: float | None = None, max_detections: int = 10) -> None:
        """Wrap a network and its checkpoint meta.

        model: a CenterNet (batch norm folded here, moved to `device`) or an OnnxNetwork;
        object_names: report only these classes (None: all); score_threshold: None uses the
        checkpoint's; max_detections: at most this many boxes per image over all classes.
        """
        self.device = torch.device(device)
        if isinstance(model, torch.nn.Module):
            model = fold_batch_norm(model.eval()).to(self.device)
        self.model = model
        # ONNX Runtime takes and returns host arrays: around a session the tensors stay on the CPU
        tensors = torch.device('cpu') if isinstance(model, OnnxNetwork) else self.device
        self.tensor_device = tensors
        self.meta = meta
        self.class_names = list(meta['class_names'])
        self.object_names = list(object_names) if object_names else list(self.class_names)
        self.score_threshold = float(meta['score_threshold'] if score_threshold is None
                                     else score_threshold)
        self.max_detections = int(max_detections)
        self.input_width, self.input_height = meta['input_size']
        self.pad_value = meta['pad_value']
        self.mean = torch.tensor(meta['mean'], device=tensors).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(meta['std'], device=tensors).view(1, 3, 1, 1) * 255
        self.wanted = torch.tensor([n in self.object_names for n in self.class_names],
                                   device=tensors)

    @classmethod
    def from_file(cls, path: Path | str, object_names: Sequence[str] | None = None,
                  device: torch.device | str = 'cpu', score_threshold: float | None = None,
                  max_detections: int = 10) -> 'ObjectDetector':
        """Load a detector checkpoint or exported .onnx; CheckpointError (one line) on failure."""
        if is_onnx_model(path):
            # one image per call: TensorRT's engine is tuned for batch 1
            model, meta = load_onnx_model(path, device, trt_batch=(1, 1, TRT_BATCH[2]))
            meta = check_detector_meta(meta, str(path), object_names)
        else:
            model, meta, _ = load_detector_checkpoint(path, object_names)
        return cls(model, meta, object_names, device, score_threshold, max_detections)

    @torch.inference_mode()
    def detect(self, image_rgb: np.ndarray,
               score_threshold: float | None = None) -> list[Detection]:
        """Return the Detections in one (H, W, 3) uint8 RGB image, best score first.

        score_threshold: keep detections scoring at least this (None: self.score_threshold).
        """
        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8 \
                or 0 in image_rgb.shape:
            raise ValueError(f'image_rgb: expected (H, W, 3) uint8, got {image_rgb.shape} '
                             f'{image_rgb.dtype}')
        height, width = image_rgb.shape[:2]
        canvas, image_to_input = letterbox(image_rgb, self.input_width, self.input_height,
                                           self.pad_value)
        pixels = torch.from_numpy(canvas).to(self.tensor_device).permute(2, 0, 1)[None].float()
        outputs = self.model((pixels - self.mean) / self.std)
        heatmap = outputs['heatmap'].sigmoid() * self.wanted[None, :, None, None]
        boxes, scores, classes = decode_outputs(heatmap, outputs['size'], outputs['offset'],
                                                self.max_detections)
        image_from_output = compose_affines(invert_affines(image_to_input),
                                            output_to_input_affine())
        boxes = map_boxes(image_from_output, boxes[0].double().cpu().numpy())
        boxes = np.clip(boxes, -0.5, [width - 0.5, height - 0.5, width - 0.5, height - 0.5])
        scores, classes = scores[0].cpu().numpy(), classes[0].cpu().numpy()
        return [Detection(self.class_names[c], box, float(s))
                for box, s, c in zip(boxes, scores, classes) if s >= threshold
                and box[2] > box[0] and box[3] > box[1]]
