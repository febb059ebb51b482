"""Whole-image training samples of the detector: letterboxed, augmented images, their targets."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pose_kp_ros.network.box_codec import (
    letterbox_geometry,
    map_boxes,
    output_to_input_affine,
    resize_into_canvas,
    scale_affine,
)
from pose_kp_ros.network.crops import invert_affines
from pose_kp_ros.network.detector_model import DetectorConfig
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.training.augmentation import (
    DetectorAugmentConfig,
    paint_noise_rectangle,
    paint_polygon,
    photometric,
)
from pose_kp_ros.training.detector_targets import encode_targets
from pose_kp_ros.training.epoch_loop import EpochDataset
from pose_kp_ros.training.records import DatasetError, read_dataset, split_records


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


def load_image_records(roots: Iterable[Path | str], class_names: Sequence[str] | None = None,
                       val_fraction: float = 0.0, seed: int = 0,
                       ) -> tuple[list[str], list[ImageRecord], list[ImageRecord]]:
    """Read dataset folders (of one or several objects each) into per-image box records.

    Args:
        roots: dataset folders.
        class_names: the classes to use (default: the objects in the order the folders list
            them); instances of other objects are left out (background), and a folder with no
            instance of any class is an error.
        val_fraction: also split off this seeded fraction of each folder's images.
        seed: the seed of that split.

    Returns:
        (class_names, train records, validation records): every instance of a class in an
        image, its box with its class index.
    """
    per_folder = [(root, *read_dataset([root])) for root in roots]
    names = list(class_names) if class_names is not None else list(dict.fromkeys(
        item.name for _, objects, _ in per_folder for item in objects))
    train, val = [], []
    for root, objects, instances in per_folder:
        instances = [record for record in instances if record.object_name in names]
        if not instances:
            raise DatasetError(f'{root}: none of its objects {[item.name for item in objects]} '
                               f'is among the classes {names}')
        parts = split_records(instances, val_fraction, seed) if val_fraction else (instances, [])
        for part, out in zip(parts, (train, val)):
            grouped = {}
            for record in part:
                grouped.setdefault(record.image, []).append(
                    (record.box_xyxy, names.index(record.object_name)))
            out += [ImageRecord(image, tuple(box for box, _ in boxes),
                                tuple(number for _, number in boxes))
                    for image, boxes in grouped.items()]
    return names, train, val


class DetectionDataset(EpochDataset):
    """Letterboxed, augmented whole images with CenterNet targets.

    Each item is a dict of tensors: image (3, Hin, Win) normalised; heatmap (C, Hout, Wout);
    indices (K,), mask (K,), size (K, 2), offset (K, 2) (encode_targets); gt_boxes (K, 4)
    image pixels and gt_classes (K,) (-1 in unused slots) of the un-augmented image;
    image_to_input (2, 3) float64 affine of the sample. A sample is a pure function of
    (seed, epoch, index): call set_epoch before each epoch.
    """

    def __init__(self, records: Iterable[ImageRecord], num_classes: int, config: DetectorConfig,
                 augment: DetectorAugmentConfig | None = None, seed: int = 0,
                 max_objects: int = 32, min_overlap: float = 0.7, min_box_px: float = 2.0,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.records, self.num_classes, self.config = list(records), num_classes, config
        self.augment = augment or DetectorAugmentConfig(enabled=False)
        self.seed, self.max_objects = seed, max_objects
        self.min_overlap, self.min_box_px = min_overlap, min_box_px
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.pad_value = [int(round(255 * m)) for m in mean]
        self.input_from_output = output_to_input_affine()
        self.epoch = 0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Return the sample of image `index` for the current epoch."""
        record, rng, image = self.open_record(index)
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
            canvas = photometric(occlude(canvas, boxes, rng, aug), rng, aug)
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


def occlude(canvas: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
            aug: DetectorAugmentConfig) -> np.ndarray:
    """Paint random polygons over parts of the objects and a rectangle of noise, in place.

    canvas: (H, W, 3) uint8 input image; boxes: (N, 4) x0, y0, x1, y1 of its objects, input
    pixels. Each object gets, with aug.occluder_prob, a polygon centred inside its box whose
    corner distance is aug.occluder_size times sqrt(box area); the image gets a noise rectangle
    with aug.cutout_prob. The boxes stay the targets: the detector learns partly hidden objects.
    Returns the canvas.
    """
    if aug.occluder_prob:
        for x0, y0, x1, y1 in boxes:
            if rng.random() < aug.occluder_prob:
                centre = rng.uniform([x0, y0], [max(x1, x0), max(y1, y0)])
                scale = np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0))
                paint_polygon(canvas, rng, centre, rng.uniform(*aug.occluder_size) * scale)
    if aug.cutout_prob and rng.random() < aug.cutout_prob:
        paint_noise_rectangle(canvas, rng)
    return canvas
