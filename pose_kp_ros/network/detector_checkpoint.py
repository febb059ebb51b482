"""Detector checkpoints: metadata (format 'pose_kp_ros.detector_checkpoint') and loading.

A checkpoint is a `torch.save` dict {'meta', 'model', 'training'} like the keypoint network's
(`pose_kp_ros.network.checkpoint_format`).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pose_kp_ros.network.checkpoint_format import (
    CheckpointError,
    build_with_weights,
    check_format,
    code_version,
    read_checkpoint_file,
)
from pose_kp_ros.network.detector_model import OUTPUT_STRIDE, CenterNet, DetectorConfig
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD

FORMAT = 'pose_kp_ros.detector_checkpoint'
FORMAT_VERSION = 1
_META_KEYS = ('class_names', 'architecture', 'input_size', 'mean', 'std', 'pad_value',
              'score_threshold')


def make_detector_meta(config: DetectorConfig, class_names: Sequence[str],
                       score_threshold: float = 0.3, training_config: dict | None = None,
                       epoch: int = 0, metrics: dict | None = None,
                       mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD) -> dict:
    """Return the metadata dict of a detector checkpoint (plain types only).

    Keys: format, format_version, class_names (heatmap order), architecture
    (DetectorConfig.to_dict()), input_size [W, H], output_stride, mean, std (RGB in [0, 1]),
    pad_value (letterbox RGB 0-255), score_threshold (default of ObjectDetector),
    training_config, epoch (completed), metrics (last validation), code_version.
    """
    if len(class_names) != config.num_classes:
        raise CheckpointError(f'{len(class_names)} class names for a detector with '
                              f'{config.num_classes} heatmaps')
    return {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'class_names': [str(n) for n in class_names], 'architecture': config.to_dict(),
        'input_size': [config.input_width, config.input_height], 'output_stride': OUTPUT_STRIDE,
        'mean': [float(m) for m in mean], 'std': [float(s) for s in std],
        'pad_value': [int(round(255 * m)) for m in mean],
        'score_threshold': float(score_threshold), 'training_config': training_config or {},
        'epoch': int(epoch), 'metrics': metrics or {}, 'code_version': code_version()}


def check_detector_meta(meta: object, path: Path | str,
                        object_names: Sequence[str] | None = None) -> dict:
    """Return meta if it is detector metadata having every class of `object_names`.

    Raises:
        CheckpointError: not detector metadata, or a name of `object_names` that is not among
        its classes.
    """
    meta = check_format(meta, FORMAT, FORMAT_VERSION, _META_KEYS, path, 'pose_kp_ros detector')
    absent = [n for n in (object_names or []) if n not in meta['class_names']]
    if absent:
        raise CheckpointError(f"{path}: detector has no class {absent} (its classes: "
                              f"{meta['class_names']})")
    return meta


def load_detector_checkpoint(path: Path | str, object_names: Sequence[str] | None = None,
                             ) -> tuple[CenterNet, dict, dict | None]:
    """Read a detector checkpoint and build its network (on the CPU, eval mode).

    Returns:
        (model CenterNet, meta dict, training dict or None).

    Raises:
        CheckpointError: missing file, not a detector checkpoint, weights that do not fit, or a
        name of `object_names` that is not among the checkpoint's classes.
    """
    path = str(path)
    data = read_checkpoint_file(path)
    meta = check_detector_meta(data.get('meta') if isinstance(data, dict) else None, path,
                               object_names)
    if not isinstance(data.get('model'), dict):
        raise CheckpointError(f'{path}: detector checkpoint lacks the model weights')
    model = build_with_weights(
        lambda architecture: CenterNet(DetectorConfig.from_dict(architecture)),
        meta['architecture'], data['model'], path, 'detector architecture')
    return model.eval(), meta, data.get('training')


CLASS_HEAD = 'heads.heatmap.1.'
"""State-dict prefix of the class heatmaps' last 1x1 convolution: one output row per class."""


def transfer_detector_weights(state_dict: Mapping[str, torch.Tensor],
                              source_names: Sequence[str],
                              target_state: Mapping[str, torch.Tensor],
                              target_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Return a state dict for a detector of `target_names`, started from a detector of others.

    state_dict, source_names: the trained detector's weights and classes; target_state,
    target_names: the new detector's fresh weights and classes, of the same architecture but
    for the class count. Every tensor is copied except the class heatmaps' last convolution,
    whose rows are copied for the classes both have (by name); the other classes keep their
    fresh rows (the prior's bias). A driller detector so gives an eight-object detector its
    trunk, neck, box heads and the driller's heatmap.

    Raises:
        CheckpointError: a tensor outside the class head whose shape differs.
    """
    index = {name: i for i, name in enumerate(source_names)}
    result = {}
    for name, fresh in target_state.items():
        source = state_dict.get(name)
        if name.startswith(CLASS_HEAD):
            merged = fresh.detach().clone()
            for t, class_name in enumerate(target_names):
                if class_name in index and source is not None:
                    merged[t] = source[index[class_name]]
            result[name] = merged
        elif source is None or source.shape != fresh.shape:
            raise CheckpointError(f'detector weight {name}: '
                                  f'{None if source is None else tuple(source.shape)} does not '
                                  f'fit {tuple(fresh.shape)} (another architecture)')
        else:
            result[name] = source.detach().clone()
    return result
