"""Keypoint targets of symmetric objects: those of the equivalent pose a crop shows canonically.

A symmetric object (ObjectModel.symmetries, e.g. the LM-O eggbox and glue) looks the same in
each of its equivalent poses, but its keypoints project elsewhere in each, so the recorded
pose's keypoints would give identical-looking crops different targets. Its targets are instead
the keypoints of geometry.symmetry.view_canonical_pose for the crop's in-plane rotation, with
visibility flags from the image bounds and the instance mask (docs/training.md, "Symmetric
objects").
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pose_kp_ros.geometry.camera import MIN_DEPTH_M, project_object_points
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.symmetry import symmetry_group, view_canonical_pose
from pose_kp_ros.training.records import DatasetError, InstanceRecord


@dataclass(frozen=True)
class SymmetricKeypoints:
    """A symmetric object's keypoints (N, 3) metres and symmetry_group's (K, 3, 3), (K, 3)."""

    keypoints: np.ndarray
    group: tuple

    def targets(self, record: InstanceRecord, roll: float, mask: np.ndarray | None,
                image_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Return the canonical keypoints (N, 2) image pixels and their visibility (N,) int.

        record: an instance with K, R and t; roll: the crop's in-plane rotation, radians
        (crop_affines' convention); mask: (H, W) uint8 where the instance is seen, or None;
        image_shape: (H, W). Visibility: 0 when the rounded pixel is outside the image (or the
        point behind the camera), else 2 where the mask shows the instance, 1 elsewhere and
        without a mask. A keypoint on the far side of the object counts as visible when the
        object is seen at its pixel (no depth buffer to tell).
        """
        R, t = view_canonical_pose(record.R, record.t, self.group, roll)
        uv, z = project_object_points(self.keypoints, R, t, record.K, with_depth=True)
        height, width = image_shape
        pixel = np.rint(uv).astype(np.int64)
        inside = ((pixel >= 0).all(1) & (pixel[:, 0] < width) & (pixel[:, 1] < height)
                  & (z > MIN_DEPTH_M))
        seen = np.zeros(len(uv), dtype=bool)
        if mask is not None:
            seen[inside] = mask[pixel[inside, 1], pixel[inside, 0]] >= 128
        return uv, np.where(inside, np.where(seen, 2, 1), 0)


def symmetric_keypoints(models: Iterable[ObjectModel],
                        records: Iterable[InstanceRecord]) -> dict[str, SymmetricKeypoints]:
    """Return {object name: SymmetricKeypoints} of the models that declare symmetries.

    Raises DatasetError naming the image of a record of such an object without K, R and t
    (hand-labelled data): its targets cannot be made unambiguous.
    """
    found = {model.name: SymmetricKeypoints(model.keypoints, symmetry_group(model.symmetries))
             for model in models if model.symmetries}
    for record in records:
        if record.object_name in found and None in (record.K, record.R, record.t):
            raise DatasetError(f'{record.image}: an instance of the symmetric object '
                               f'{record.object_name!r} without K, R and t: its keypoint '
                               f'targets need the pose (docs/training.md, "Symmetric objects")')
    return found
