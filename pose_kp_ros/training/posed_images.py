"""A dataset folder's posed images, as the evaluations read them (`pose-kp eval-lmo --dataset`)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pose_kp_ros.training.records import DatasetError, read_dataset


def dataset_scenes(folder: Path | str, object_names: Sequence[str],
                   ) -> list[tuple[str, Path, np.ndarray, dict[str, tuple], int | None]]:
    """Return a dataset folder's posed images that show any of `object_names`.

    [(name, image path, K (3, 3), {object: (R (3, 3), t (3,) metres, visible fraction or
    NaN)}, video number or None)], the first posed instance of each object per image, for
    `pose-kp eval-lmo --dataset` (one object or all) and the benchmarks. Raises DatasetError
    for an object the folder does not label, ValueError when none of them has a posed instance.
    """
    objects, records = read_dataset(folder)
    missing = sorted(set(object_names) - {item.name for item in objects})
    if missing:
        raise DatasetError(f'{folder}/dataset.yaml: labels no {missing} (its objects: '
                           f'{[item.name for item in objects]})')
    scenes = {}
    for record in records:
        if record.object_name in object_names and None not in (record.K, record.R, record.t):
            path = Path(record.image)
            truths = scenes.setdefault(record.image, (
                path.stem, path, np.array(record.K), {}, record.sequence))[3]
            truths.setdefault(record.object_name, (
                np.array(record.R), np.array(record.t),
                float('nan') if record.visible_fraction is None else record.visible_fraction))
    if not scenes:
        raise ValueError(f'{folder}: no instance of {", ".join(object_names)} with K, R and t')
    return list(scenes.values())


def dataset_frames(folder: Path | str, object_name: str,
                   ) -> list[tuple[str, Path, np.ndarray, np.ndarray, np.ndarray, float]]:
    """Return a dataset folder's frames like package_data.lmo_frames (first posed instance each).

    [(name, image path, K (3, 3), R (3, 3), t (3,), visible fraction or NaN)] of the images
    showing `object_name` (dataset_scenes of that object alone).
    """
    return [(name, path, K, *truths[object_name])
            for name, path, K, truths, _ in dataset_scenes(folder, [object_name])]
