"""Augmented training samples of the keypoint network, cut from instance records.

`KeypointDataset(records, ...)` turns each record (of any object; instances below
`min_visible_fraction` visible are left out) into one sample: a square crop around the instance's
box (with jitter, scale and in-plane rotation), photometric augmentation (colour,
blur, noise), random occluders and cutout, background replacement where a mask exists, and
Gaussian heatmap targets. Keypoints go through the same affine as the pixels
(`pose_kp_ros.network.crops`); a symmetric object's are those of the equivalent pose the crop
shows canonically (`training.symmetric_targets`). Samples are a pure function of (seed, epoch,
index), so the result does not depend on the number of DataLoader workers; call `set_epoch`
before each epoch.
"""

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from pose_kp_ros.geometry.object_model import ObjectModel
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
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.rendering.textures import procedural_texture
from pose_kp_ros.training.augmentation import (
    AugmentConfig,
    paint_noise_rectangle,
    paint_polygon,
    photometric,
)
from pose_kp_ros.training.epoch_loop import EpochDataset
from pose_kp_ros.training.records import (
    DatasetError,
    InstanceRecord,
    _list_images,
    read_image,
    read_instance_mask,
)
from pose_kp_ros.training.symmetric_targets import symmetric_keypoints


class KeypointDataset(EpochDataset):
    """Training samples cut from instance records.

    Each item is a dict of tensors:
        image (3, S, S) float normalised; heatmaps (N, H, H) Gaussian targets; weights (N,);
        keypoints (N, 2) crop pixels; visibility (N,); box_size () longer side of the tight box,
        image pixels; crop_scale () crop pixels per image pixel; index () index into
        `self.records`; object_index () the record's object (`read_dataset`'s objects).
    Records whose `visible_fraction` is below `min_visible_fraction` are left out (records
    without one are kept); a batch needs records of one keypoint count N. object_models: the
    objects' models; records of one that declares symmetries get the keypoints of the
    equivalent pose the crop shows canonically (training.symmetric_targets; they need K, R and
    t, else DatasetError), the others their recorded keypoints. input_size S and
    heatmap_size H are pixels; sigma is in heatmap pixels; padding is the crop side over the
    box's longer side; low_pass_px is a Gaussian blur in image pixels.

    For a network of several objects, object_channels {object name: first channel} and
    keypoint_rows R (the most keypoints of any of them) pad each sample's N keypoint rows to R
    (zero, unsupervised) and add channels (R,): the network's heatmap channel of each row (a
    padded row: its object's first channel), which the loss and the metrics gather
    (`sample_heatmaps`), so only a crop's own object's heatmaps are compared.
    """

    def __init__(self, records: Iterable[InstanceRecord], input_size: int, heatmap_size: int,
                 sigma: float = 2.0, padding: float = 1.25, augment: AugmentConfig | None = None,
                 seed: int = 0, min_visibility: int = 1, occluded_peak: float = 1.0,
                 low_pass_px: float = 0.0, min_visible_fraction: float = 0.0,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 object_models: Sequence[ObjectModel] = (),
                 object_channels: Mapping[str, int] | None = None,
                 keypoint_rows: int = 0) -> None:
        if not 0.0 < occluded_peak <= 1.0:
            raise DatasetError(f'occluded_peak: expected (0, 1], got {occluded_peak!r}')
        if not 0.0 <= low_pass_px <= 10.0:
            raise DatasetError(f'low_pass_px: expected [0, 10] image pixels, got {low_pass_px!r}')
        self.records = [record for record in records if record.visible_fraction is None
                        or record.visible_fraction >= min_visible_fraction]
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
        self.object_channels = object_channels
        self.keypoint_rows = keypoint_rows
        self.epoch = 0
        self.symmetric = symmetric_keypoints(object_models, self.records)
        self.crop_from_heatmap = heatmap_to_crop_affine(input_size, heatmap_size)
        self.backgrounds = _list_images(self.augment.background_dirs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Return the sample of record `index` for the current epoch."""
        record, rng, image = self.open_record(index)
        mask = None if record.mask is None else read_instance_mask(record, image.shape[:2])
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
        keypoints, visibility = record.keypoints, record.visibility
        if record.object_name in self.symmetric:
            keypoints, visibility = self.symmetric[record.object_name].targets(
                record, rotation, mask, image.shape[:2])
        keypoints = transform_points(affine[0], np.asarray(keypoints))
        visibility = torch.as_tensor(visibility)
        keypoints_hm = transform_points(invert_affines(self.crop_from_heatmap), keypoints)
        keypoints_hm = torch.from_numpy(keypoints_hm).float()
        weights = keypoint_weights(keypoints_hm[None], visibility[None], self.min_visibility)
        heatmaps = render_heatmaps(keypoints_hm[None], weights, self.heatmap_size, self.sigma)
        heatmaps[0, visibility == 1] *= self.occluded_peak
        pixels = (crop.astype(np.float32) / 255 - self.mean) / self.std
        sample = {
            'image': torch.from_numpy(pixels.transpose(2, 0, 1).copy()),
            'heatmaps': heatmaps[0],
            'weights': weights[0],
            'keypoints': torch.from_numpy(keypoints).float(),
            'visibility': visibility,
            'box_size': torch.tensor(float(max(box[2] - box[0], box[3] - box[1]))),
            'crop_scale': torch.tensor(float(self.input_size / sides[0])),
            'index': torch.tensor(index),
            'object_index': torch.tensor(record.object_index),
        }
        if self.object_channels is None:
            return sample
        return with_channels(sample, self.object_channels[record.object_name], self.keypoint_rows)

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
                paint_polygon(crop, rng, centre, rng.uniform(0.1, 0.3) * size)
        if rng.random() < aug.cutout_prob:
            paint_noise_rectangle(crop, rng)
        return photometric(crop, rng, aug)

    def _background(self, rng):
        """Return a random (S, S, 3) uint8 background: a photo crop or a procedural pattern."""
        size = self.input_size
        if not self.backgrounds:
            return procedural_texture(rng, size, size)
        photo = read_image(self.backgrounds[rng.integers(len(self.backgrounds))])
        side = rng.uniform(0.2, 1.0) * min(photo.shape[:2])
        centre = rng.uniform(side / 2, np.array(photo.shape[1::-1]) - side / 2 + 1e-9)
        affine = crop_affines(centre[None], [side], size, [rng.uniform(-np.pi, np.pi)])
        return warp_crops(photo, affine, size)[0]



PER_KEYPOINT = ('heatmaps', 'weights', 'keypoints', 'visibility')
"""Sample entries with one row per keypoint (first axis)."""


def with_channels(sample: dict[str, torch.Tensor], start: int,
                  rows: int) -> dict[str, torch.Tensor]:
    """Return `sample` padded to `rows` keypoint rows, with channels (rows,) from `start` on.

    Padded rows are zero: weight and visibility 0, so the loss and the metrics skip them; their
    channel is `start` (any of the object's: never compared).
    """
    count = len(sample['weights'])
    padded = dict(sample)
    for key in PER_KEYPOINT:
        values = sample[key]
        padded[key] = torch.cat([values, values.new_zeros((rows - count, *values.shape[1:]))])
    padded['channels'] = torch.cat([torch.arange(start, start + count),
                                    torch.full((rows - count,), start)])
    return padded


def sample_heatmaps(heatmaps: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Return each sample's own rows (B, R, H, W) of a network's heatmaps (B, C, H, W).

    channels: (B, R) the heatmap channel of each sample's keypoint rows (`with_channels`).
    """
    index = channels.to(heatmaps.device)[:, :, None, None]
    return heatmaps.gather(1, index.expand(-1, -1, *heatmaps.shape[-2:]))
