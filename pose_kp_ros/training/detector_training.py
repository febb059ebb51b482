"""Training of the full-image detector: config keys and defaults, validation, the trainer."""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from pose_kp_ros.network.box_codec import decode_outputs, map_boxes, output_to_input_affine
from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.crops import compose_affines, invert_affines
from pose_kp_ros.network.detector_checkpoint import (
    load_detector_checkpoint,
    make_detector_meta,
    transfer_detector_weights,
)
from pose_kp_ros.network.detector_model import CenterNet, DetectorConfig, DetectorConfigError
from pose_kp_ros.network.mobilenet_v2 import load_imagenet_weights
from pose_kp_ros.training.augmentation import DetectorAugmentConfig
from pose_kp_ros.training.config import (
    ENCODER_DEFAULTS,
    TrainConfigError,
    read_config,
    recorded_config,
)
from pose_kp_ros.training.detection_metrics import DetectionEvaluator
from pose_kp_ros.training.detector_dataset import DetectionDataset, load_image_records
from pose_kp_ros.training.epoch_loop import Batch, EpochTrainer, plot_curves
from pose_kp_ros.training.losses import detection_losses
from pose_kp_ros.training.records import DatasetError

DEFAULTS = {
    'datasets': None,           # required: dataset folder or list of folders (any objects)
    'val_datasets': [],         # optional validation folders; else val_fraction of the images
    'val_fraction': 0.05,
    'output_dir': None,         # required
    'seed': 0,
    'architecture': {},         # DetectorConfig fields (input_width, input_height, channels...)
    'max_objects': 32,          # regression target slots per image
    'min_overlap': 0.7,         # Gaussian radius: IoU kept by a corner shift of one radius
    'size_weight': 1.0,         # weight of the log-size L1 loss
    'offset_weight': 1.0,       # weight of the centre-offset L1 loss
    'min_box_px': 2.0,          # boxes narrower/lower than this (network input px) are dropped
    'score_threshold': 0.3,     # validation recall/precision; stored as the detector default
    'epochs': 30,
    'batch_size': 32,           # per process
    'workers': 2,               # DataLoader workers per process
    'lr': 2e-3,
    'weight_decay': 1e-4,
    'lr_schedule': 'cosine',    # cosine | step | constant
    'warmup_epochs': 1,
    'lr_milestones': [],
    'lr_gamma': 0.1,
    'min_lr_fraction': 0.01,
    'augmentation': {},         # DetectorAugmentConfig fields
    'save_every_minutes': 10,   # also save last.pt mid-epoch (0: only at epoch end)
    'amp': True,                # mixed precision: float16 on CUDA, bfloat16 on CPUs with it
    'threads': 0,               # torch CPU threads (0: all cores this process may use)
    'init_weights': None,       # start from this detector checkpoint's weights (fine-tuning)
    **ENCODER_DEFAULTS,         # architecture encoder: ImageNet start and freezing schedule
}


REQUIRED = ('datasets', 'output_dir')
EVAL_IOU = 0.5
EVAL_MAX_DETECTIONS = 20
EVAL_MIN_SCORE = 0.01


def load_config(path: Path | str, epochs: int | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a detector training config YAML over DEFAULTS; relative paths are to the file."""
    return read_config(path, DEFAULTS, REQUIRED, epochs, overrides)


def evaluate_batch(evaluator: DetectionEvaluator, outputs: dict[str, torch.Tensor],
                   batch: Batch) -> None:
    """Decode a batch's outputs, map boxes to image pixels and add them to the evaluator.

    outputs: the CenterNet maps heatmap (B, C, H, W) logits, size and offset (B, 2, H, W);
    batch: DetectionDataset samples stacked (image_to_input (B, 2, 3), gt_boxes (B, K, 4),
    gt_classes (B, K)).
    """
    boxes, scores, classes = decode_outputs(outputs['heatmap'].float().sigmoid(),
                                            outputs['size'].float(), outputs['offset'].float(),
                                            EVAL_MAX_DETECTIONS)
    image_from_output = compose_affines(invert_affines(batch['image_to_input'].numpy()),
                                        output_to_input_affine())
    boxes = map_boxes(image_from_output, boxes.double().cpu().numpy())
    scores, classes = scores.cpu().numpy(), classes.cpu().numpy()
    for i in range(len(boxes)):
        kept = scores[i] >= EVAL_MIN_SCORE
        gt_classes = batch['gt_classes'][i].numpy()
        present = gt_classes >= 0
        evaluator.add(boxes[i][kept], scores[i][kept], classes[i][kept],
                      batch['gt_boxes'][i].numpy()[present], gt_classes[present])


class DetectorTrainer(EpochTrainer):
    """Training run of the CenterNet detector (best.pt: AP@0.5, then recall)."""

    loss_parts = ('heatmap', 'size', 'offset')
    loss_format = '.4f'

    def build_data(self) -> None:
        """Read the datasets into image records, build the network config and datasets."""
        config = self.config
        split = 0.0 if config['val_datasets'] else config['val_fraction']
        names, train, val = load_image_records(config['datasets'], val_fraction=split,
                                               seed=config['seed'])
        if config['val_datasets']:
            _, val, _ = load_image_records(config['val_datasets'], names)
        if not train or not val:
            raise DatasetError(f'need training and validation images, got {len(train)} and '
                               f'{len(val)} (set val_fraction or val_datasets)')
        self.class_names = names
        try:
            self.net_config = DetectorConfig.from_dict(
                {'num_classes': len(names), **config['architecture']})
        except TypeError as error:
            raise DetectorConfigError(f'architecture: {error}') from None
        common = {'num_classes': len(names), 'config': self.net_config, 'seed': config['seed'],
                  'max_objects': config['max_objects'], 'min_overlap': config['min_overlap'],
                  'min_box_px': config['min_box_px']}
        self.train_set = DetectionDataset(
            train, augment=DetectorAugmentConfig.from_dict(config['augmentation']), **common)
        self.val_set = DetectionDataset(val, **common)

    def build_model(self) -> CenterNet:
        """Return a new CenterNet (encoder from ImageNet when `imagenet` and no init)."""
        model = CenterNet(self.net_config)
        if self.config['imagenet'] and not self.config['init_weights']:
            if model.encoder is None:
                raise TrainConfigError('imagenet: true needs architecture encoder: mobilenet_v2')
            load_imagenet_weights(model.encoder)
        return model

    def encoder_blocks(self) -> torch.nn.Sequential | None:
        """Return the pretrained encoder's blocks, or None without an encoder."""
        encoder = getattr(self.model, 'module', self.model).encoder
        return None if encoder is None else encoder.features

    def loss(self, outputs: dict[str, torch.Tensor],
             batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (weighted focal + size + offset loss, its float parts) of the batch."""
        targets = {name: batch[name].to(self.device, non_blocking=True)
                   for name in ('heatmap', 'indices', 'mask', 'size', 'offset')}
        return detection_losses(outputs, targets, self.config['size_weight'],
                                self.config['offset_weight'])

    def evaluate(self, results: Iterator[tuple[dict[str, torch.Tensor], Batch]],
                 ) -> dict[str, float]:
        """Return recall, precision, mean IoU and AP@0.5 (DetectionEvaluator) over all ranks."""
        evaluator = DetectionEvaluator(len(self.class_names), EVAL_IOU)
        for outputs, batch in results:
            evaluate_batch(evaluator, outputs, batch)
        if self.world_size > 1:
            states = [None] * self.world_size
            dist.all_gather_object(states, evaluator.state())
            evaluator = DetectionEvaluator(len(self.class_names), EVAL_IOU)
            for state in states:
                evaluator.merge(state)
        summary = evaluator.summary(self.config['score_threshold'])
        return {f'val_{name}': value for name, value in summary.items()}

    def score(self, metrics: Mapping[str, float]) -> tuple[float, float]:
        """Return (AP@0.5, recall): best.pt has the best AP@0.5, then the best recall."""
        return metrics['val_ap50'], metrics['val_recall']

    def meta(self, metrics: dict[str, float] | None = None) -> dict:
        """Return the checkpoint metadata for the current state."""
        return make_detector_meta(self.net_config, self.class_names,
                                  self.config['score_threshold'],
                                  training_config=recorded_config(self.config),
                                  epoch=self.epoch, metrics=metrics)

    def load_weights(self, path: Path | str) -> dict | None:
        """Load detector checkpoint `path` (same classes and architecture) into the model.

        Returns the checkpoint's training state (None for weights-only files).
        """
        model, meta, state = load_detector_checkpoint(path)
        if meta['architecture'] != self.net_config.to_dict() \
                or meta['class_names'] != self.class_names:
            raise CheckpointError(f"{path}: classes {meta['class_names']} / architecture "
                                  f"{meta['architecture']} differ from the config's "
                                  f'{self.class_names} / {self.net_config.to_dict()}')
        getattr(self.model, 'module', self.model).load_state_dict(model.state_dict())
        return state

    def start_from(self, path: Path | str) -> None:
        """Start from detector checkpoint `path`: same architecture, its classes may differ.

        Everything but the class heatmaps is copied; of those, the classes both have
        (transfer_detector_weights). The input size may differ too (the network is fully
        convolutional: a detector fine-tuned at a larger input). Another architecture is a
        CheckpointError.
        """
        source, meta, _ = load_detector_checkpoint(path)
        architecture = DetectorConfig.from_dict(
            {**meta['architecture'], 'num_classes': self.net_config.num_classes,
             'input_width': self.net_config.input_width,
             'input_height': self.net_config.input_height})
        if architecture != self.net_config:
            raise CheckpointError(f"{path}: architecture {meta['architecture']} differs from "
                                  f"the config's {self.net_config.to_dict()} beyond the classes "
                                  'and the input size')
        model = getattr(self.model, 'module', self.model)
        model.load_state_dict(transfer_detector_weights(
            source.state_dict(), meta['class_names'], model.state_dict(), self.class_names))
        shared = [n for n in self.class_names if n in meta['class_names']]
        if len(shared) < len(self.class_names) and self.is_main:
            print(f'init_weights {path}: trunk and the heatmaps of {shared} (the other '
                  f'{len(self.class_names) - len(shared)} classes start fresh)', flush=True)

    def summary(self, train_metrics: Mapping[str, float], metrics: Mapping[str, float]) -> str:
        """Return losses, recall, precision, mean IoU and AP@0.5 of the epoch."""
        return (f"train loss {train_metrics['train_loss']:.4f}, val loss "
                f"{metrics['val_loss']:.4f}, recall {metrics['val_recall']:.3f}, precision "
                f"{metrics['val_precision']:.3f}, mean IoU {metrics['val_mean_iou']:.3f}, "
                f"AP@0.5 {metrics['val_ap50']:.3f}")

    def describe(self) -> str:
        """Return classes, image counts and architecture."""
        return (f'classes {self.class_names}: {len(self.train_set)} training / '
                f'{len(self.val_set)} validation images, architecture '
                f'{self.net_config.to_dict()}')

    def plot_history(self, path: Path | str) -> None:
        """Save loss and validation detection metric curves over epochs as a PNG."""
        plot_curves(self.history, path, 'focal + size + offset loss',
                    (('val_recall', 'recall'), ('val_precision', 'precision'),
                     ('val_mean_iou', 'mean IoU (matched)'), ('val_ap50', 'AP@0.5')),
                    title='Validation (IoU 0.5; recall/precision at the score threshold)')
