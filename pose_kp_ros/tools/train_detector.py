"""`pose-kp train-detector`: train the full-image CenterNet detector from a YAML config.

    pose-kp train-detector --config config/train_detector_example.yaml [--resume] [--epochs N]
                           [--device auto|cpu|cuda]
    torchrun --nproc_per_node 4 -m pose_kp_ros.tools.train_detector --config ...   # multi-GPU

Reads one or several dataset folders (docs/dataset_format.md), possibly of different objects:
the classes are the sorted union of their object names. Each image is a sample; its instances'
`box_xyxy` are the targets. Writes into the config's output_dir: last.pt (every epoch and every
save_every_minutes, atomic), best.pt (best validation AP@0.5), metrics.json and
training_curves.png. See docs/detector.md for the config keys.
"""

from dataclasses import asdict, dataclass, fields
import sys

import cv2
import numpy as np
import torch
import torch.distributed as dist

from pose_kp_ros.network.checkpoint import CheckpointError
from pose_kp_ros.network.crops import compose_affines, invert_affines
from pose_kp_ros.network.dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetError,
    jitter_colour,
    jpeg_compress,
    load_records,
    read_image,
    split_records,
)
from pose_kp_ros.network.detector import (
    CenterNet,
    DetectionEvaluator,
    DetectorConfig,
    DetectorConfigError,
    decode_outputs,
    detection_losses,
    encode_targets,
    letterbox_geometry,
    load_detector_checkpoint,
    make_detector_meta,
    map_boxes,
    output_to_input_affine,
    resize_into_canvas,
    scale_affine,
)
from pose_kp_ros.network.mobilenet_v2 import PretrainedWeightsError, load_imagenet_weights
from pose_kp_ros.tools.training_common import (
    ENCODER_DEFAULTS,
    EpochTrainer,
    TrainConfigError,
    plot_curves,
    read_config,
    recorded_config,
    run_training_cli,
)

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
    'amp': True,                # mixed precision on CUDA
    'threads': 0,               # torch CPU threads (0: all cores this process may use)
    'init_weights': None,       # start from this detector checkpoint's weights (fine-tuning)
    **ENCODER_DEFAULTS,         # architecture encoder: ImageNet start and freezing schedule
}
REQUIRED = ('datasets', 'output_dir')
EVAL_IOU = 0.5
EVAL_MAX_DETECTIONS = 20
EVAL_MIN_SCORE = 0.01


@dataclass(frozen=True)
class DetectorAugmentConfig:
    """Whole-image training augmentation; ranges are uniform, probabilities per image.

    Attributes:
        enabled: False turns every augmentation off (validation samples).
        scale_range: zoom range relative to the letterbox (>1 enlarges and cuts the border).
        translate: shift range +- as a fraction of the input width / height.
        flip_prob: horizontal flip probability (fine for boxes).
        brightness, contrast, saturation: relative ranges +-.
        hue_deg: hue shift range +- degrees.
        blur_prob, blur_sigma_max: Gaussian blur probability and largest sigma (input px).
        noise_prob, noise_std_max: additive Gaussian noise probability and largest std (0-255).
        jpeg_prob, jpeg_quality: probability of JPEG re-compression and its quality range.
    """

    enabled: bool = True
    scale_range: tuple = (0.6, 1.5)
    translate: float = 0.2
    flip_prob: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    blur_prob: float = 0.3
    blur_sigma_max: float = 1.2
    noise_prob: float = 0.3
    noise_std_max: float = 8.0
    jpeg_prob: float = 0.0
    jpeg_quality: tuple = (30, 95)

    @classmethod
    def from_dict(cls, values):
        """Build from a config dict, naming unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise TrainConfigError(f'unknown augmentation keys {unknown}; known: {sorted(known)}')
        values = dict(values or {})
        for key in ('scale_range', 'jpeg_quality'):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self):
        """Return a plain dict."""
        return {**asdict(self), 'scale_range': list(self.scale_range),
                'jpeg_quality': list(self.jpeg_quality)}


@dataclass(frozen=True)
class ImageRecord:
    """One image with its annotated boxes.

    Attributes:
        image: absolute image path.
        boxes: tuple of (x0, y0, x1, y1) tight boxes of the visible objects, image pixels.
        classes: tuple of class indices (into the class names), one per box.
    """

    image: str
    boxes: tuple
    classes: tuple


def load_image_records(roots, class_names=None, val_fraction=0.0, seed=0):
    """Read dataset folders (one object each, any objects) into per-image box records.

    Args:
        roots: dataset folders.
        class_names: the classes to use (default: the sorted object names of the folders);
            a folder of another object is an error.
        val_fraction: also split off this seeded fraction of each folder's images.

    Returns:
        (class_names, train records, validation records).
    """
    per_folder = []
    for root in roots:
        object_name, _, instances = load_records([root])
        per_folder.append((root, object_name, instances))
    names = sorted({name for _, name, _ in per_folder}) if class_names is None \
        else list(class_names)
    train, val = [], []
    for root, object_name, instances in per_folder:
        if object_name not in names:
            raise DatasetError(f'{root}: object {object_name!r} is not among the classes {names}')
        parts = split_records(instances, val_fraction, seed) if val_fraction else (instances, [])
        for part, out in zip(parts, (train, val)):
            grouped = {}
            for record in part:
                grouped.setdefault(record.image, []).append(record.box_xyxy)
            out += [ImageRecord(image, tuple(boxes), (names.index(object_name),) * len(boxes))
                    for image, boxes in grouped.items()]
    return names, train, val


class DetectionDataset(torch.utils.data.Dataset):
    """Letterboxed, augmented whole images with CenterNet targets.

    Each item is a dict of tensors: image (3, Hin, Win) normalised; heatmap (C, Hout, Wout);
    indices (K,), mask (K,), size (K, 2), offset (K, 2) (encode_targets); gt_boxes (K, 4)
    image pixels and gt_classes (K,) (-1 in unused slots) of the un-augmented image;
    image_to_input (2, 3) float64 affine of the sample. A sample is a pure function of
    (seed, epoch, index): call set_epoch before each epoch.
    """

    def __init__(self, records, num_classes, config, augment=None, seed=0, max_objects=32,
                 min_overlap=0.7, min_box_px=2.0, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.records, self.num_classes, self.config = list(records), num_classes, config
        self.augment = augment or DetectorAugmentConfig(enabled=False)
        self.seed, self.max_objects = seed, max_objects
        self.min_overlap, self.min_box_px = min_overlap, min_box_px
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.pad_value = [int(round(255 * m)) for m in mean]
        self.input_from_output = output_to_input_affine()
        self.epoch = 0

    def __len__(self):
        """Return the number of images."""
        return len(self.records)

    def set_epoch(self, epoch):
        """Select the epoch whose random augmentation is drawn."""
        self.epoch = int(epoch)

    def __getitem__(self, index):
        """Return the sample of image `index` for the current epoch."""
        record = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = read_image(record.image)
        height, width = image.shape[:2]
        in_w, in_h = self.config.input_width, self.config.input_height
        scaled_w, scaled_h, shift_x, shift_y = letterbox_geometry(width, height, in_w, in_h)
        aug = self.augment
        if aug.enabled:
            zoom = rng.uniform(*aug.scale_range)
            scaled_w, scaled_h = max(round(scaled_w * zoom), 1), max(round(scaled_h * zoom), 1)
            shift_x = round((in_w - scaled_w) / 2 + rng.uniform(-1, 1) * aug.translate * in_w)
            shift_y = round((in_h - scaled_h) / 2 + rng.uniform(-1, 1) * aug.translate * in_h)
        canvas = resize_into_canvas(image, scaled_w, scaled_h, shift_x, shift_y, in_w, in_h,
                                    self.pad_value)
        image_to_input = scale_affine(width, height, scaled_w, scaled_h, shift_x, shift_y)
        gt_boxes = np.asarray(record.boxes, np.float64).reshape(-1, 4)
        gt_classes = np.asarray(record.classes, np.int64)
        boxes = map_boxes(image_to_input, gt_boxes)
        if aug.enabled:
            if rng.random() < aug.flip_prob:
                canvas = np.ascontiguousarray(canvas[:, ::-1])
                boxes[:, [0, 2]] = in_w - 1 - boxes[:, [2, 0]]
            canvas = self._photometric(canvas, rng)
        boxes = np.clip(boxes, -0.5, [in_w - 0.5, in_h - 0.5, in_w - 0.5, in_h - 0.5])
        keep = ((boxes[:, 2:] - boxes[:, :2]) >= self.min_box_px).all(1)
        output_boxes = map_boxes(invert_affines(self.input_from_output), boxes[keep])
        targets = encode_targets(output_boxes, gt_classes[keep], self.num_classes,
                                 self.config.output_size, self.max_objects, self.min_overlap)
        count = min(len(gt_boxes), self.max_objects)
        padded_boxes = np.zeros((self.max_objects, 4), np.float32)
        padded_classes = np.full(self.max_objects, -1, np.int64)
        padded_boxes[:count], padded_classes[:count] = gt_boxes[:count], gt_classes[:count]
        pixels = (canvas.astype(np.float32) / 255 - self.mean) / self.std
        sample = {name: torch.from_numpy(value) for name, value in targets.items()}
        sample.update(image=torch.from_numpy(pixels.transpose(2, 0, 1).copy()),
                      gt_boxes=torch.from_numpy(padded_boxes),
                      gt_classes=torch.from_numpy(padded_classes),
                      image_to_input=torch.from_numpy(image_to_input))
        return sample

    def _photometric(self, canvas, rng):
        """Apply colour jitter, blur and noise to a uint8 image."""
        aug = self.augment
        canvas = jitter_colour(canvas, rng, aug)
        if rng.random() < aug.blur_prob:
            canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.3, aug.blur_sigma_max))
        if rng.random() < aug.noise_prob:
            noise = rng.normal(0, rng.uniform(0, aug.noise_std_max), canvas.shape)
            canvas = np.clip(canvas + noise, 0, 255).astype(np.uint8)
        if aug.jpeg_prob and rng.random() < aug.jpeg_prob:
            canvas = jpeg_compress(canvas, rng.integers(*aug.jpeg_quality, endpoint=True))
        return canvas


def load_config(path, epochs=None, overrides=None):
    """Read a detector training config YAML over DEFAULTS; relative paths are to the file."""
    return read_config(path, DEFAULTS, REQUIRED, epochs, overrides)


def evaluate_batch(evaluator, outputs, batch):
    """Decode a batch's outputs, map boxes to image pixels and add them to the evaluator."""
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

    def build_data(self):
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

    def build_model(self):
        """Return a new CenterNet (encoder from ImageNet when `imagenet` and no init)."""
        model = CenterNet(self.net_config)
        if self.config['imagenet'] and not self.config['init_weights']:
            if model.encoder is None:
                raise TrainConfigError('imagenet: true needs architecture encoder: mobilenet_v2')
            load_imagenet_weights(model.encoder)
        return model

    def encoder_blocks(self):
        """Return the pretrained encoder's blocks, or None without an encoder."""
        encoder = getattr(self.model, 'module', self.model).encoder
        return None if encoder is None else encoder.features

    def loss(self, outputs, batch):
        """Return (weighted focal + size + offset loss, its float parts) of the batch."""
        targets = {name: batch[name].to(self.device, non_blocking=True)
                   for name in ('heatmap', 'indices', 'mask', 'size', 'offset')}
        return detection_losses(outputs, targets, self.config['size_weight'],
                                self.config['offset_weight'])

    def evaluate(self, results):
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

    def score(self, metrics):
        """Return (AP@0.5, recall): best.pt has the best AP@0.5, then the best recall."""
        return metrics['val_ap50'], metrics['val_recall']

    def meta(self, metrics=None):
        """Return the checkpoint metadata for the current state."""
        return make_detector_meta(self.net_config, self.class_names,
                                  self.config['score_threshold'],
                                  training_config=recorded_config(self.config),
                                  epoch=self.epoch, metrics=metrics)

    def load_weights(self, path):
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

    def summary(self, train_metrics, metrics):
        """Return losses, recall, precision, mean IoU and AP@0.5 of the epoch."""
        return (f"train loss {train_metrics['train_loss']:.4f}, val loss "
                f"{metrics['val_loss']:.4f}, recall {metrics['val_recall']:.3f}, precision "
                f"{metrics['val_precision']:.3f}, mean IoU {metrics['val_mean_iou']:.3f}, "
                f"AP@0.5 {metrics['val_ap50']:.3f}")

    def describe(self):
        """Return classes, image counts and architecture."""
        return (f'classes {self.class_names}: {len(self.train_set)} training / '
                f'{len(self.val_set)} validation images, architecture '
                f'{self.net_config.to_dict()}')

    def plot_history(self, path):
        """Save loss and validation detection metric curves over epochs as a PNG."""
        plot_curves(self.history, path, 'focal + size + offset loss',
                    (('val_recall', 'recall'), ('val_precision', 'precision'),
                     ('val_mean_iou', 'mean IoU (matched)'), ('val_ap50', 'AP@0.5')),
                    title='Validation (IoU 0.5; recall/precision at the score threshold)')


def main(argv=None):
    """Run `pose-kp train-detector`; return the exit code."""
    return run_training_cli(argv, DetectorTrainer, load_config, 'pose-kp train-detector',
                            __doc__.split('\n')[0], 'detector training config YAML',
                            (DetectorConfigError, PretrainedWeightsError))


if __name__ == '__main__':
    sys.exit(main())
