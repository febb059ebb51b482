"""Checkpoints: network weights plus the metadata needed to use them, checked on load.

A checkpoint is a `torch.save` dict {'meta': dict, 'model': state_dict, 'training': dict or None}.
`meta` holds plain types only (loadable with weights_only=True):

    format ('pose_kp_ros.keypoint_checkpoint'), format_version, object_name, keypoint_names (in
    heatmap order), preset, architecture (HourglassConfig.to_dict()), input_size, heatmap_size,
    padding (crop side / box side), sigma (heatmap px), mean, std (RGB in [0, 1]),
    training_config, epoch (completed epochs), metrics (last validation), code_version;
    a network of several objects also has objects ([{name, keypoint_names}] in heatmap order:
    each object's heatmaps are the next len(keypoint_names) channels), its object_name and
    keypoint_names then being those combined (`combined_names`).

An exported model (pose_kp_ros.tools.export_model) is an ONNX model (.onnx, run by ONNX Runtime:
network/onnx_runtime.py) carrying the same `meta` as JSON in its metadata_props, or a
`torch.export` program archive (.pt2) carrying it as the extra file 'pose_kp_meta.json';
`load_model` reads all three kinds.
"""

from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path

import torch

from pose_kp_ros.network.checkpoint_format import (
    CheckpointError,
    build_with_weights,
    check_format,
    code_version,
    is_exported_program,
    is_onnx_model,
    read_checkpoint_file,
)
from pose_kp_ros.network.hourglass import FinalHeatmaps, HourglassConfig
from pose_kp_ros.network.keypoint_net import build_keypoint_network
from pose_kp_ros.network.onnx_runtime import OnnxNetwork, load_onnx_model

FORMAT = 'pose_kp_ros.keypoint_checkpoint'
FORMAT_VERSION = 1
EXPORT_META_FILE = 'pose_kp_meta.json'
_META_KEYS = ('object_name', 'keypoint_names', 'architecture', 'input_size', 'heatmap_size',
              'padding', 'mean', 'std')


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the keypoint network (build_keypoint_network) in eval mode on the device.
        meta: the metadata dict (see module docstring).
        training: optimizer / scheduler / scaler state for resuming, or None.
        path: the file it was read from.
    """

    model: torch.nn.Module
    meta: dict
    training: dict | None
    path: str


def make_meta(config: HourglassConfig, object_name: str, keypoint_names: Sequence[str],
              preset: str, padding: float, sigma: float, mean: Sequence[float],
              std: Sequence[float], training_config: dict | None = None, epoch: int = 0,
              metrics: dict | None = None, low_pass_px: float = 0.0,
              objects: Sequence[tuple[str, Sequence[str]]] | None = None) -> dict:
    """Return the metadata dict of a checkpoint (plain types only).

    padding: crop side / box side; sigma: heatmap pixels; mean, std (3,): RGB in [0, 1];
    low_pass_px: image pixels. objects: [(name, keypoint names)] of a network of several
    objects (object_name and keypoint_names are then ignored: `combined_names` of them).
    """
    if objects is not None and len(objects) > 1:
        object_name, keypoint_names = combined_names(objects)
    if len(keypoint_names) != config.num_keypoints:
        raise CheckpointError(f'{len(keypoint_names)} keypoint names for a network with '
                              f'{config.num_keypoints} heatmaps')
    meta = {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'object_name': str(object_name), 'keypoint_names': [str(n) for n in keypoint_names],
        'preset': preset, 'architecture': config.to_dict(),
        'input_size': config.input_size, 'heatmap_size': config.heatmap_size,
        'padding': float(padding), 'sigma': float(sigma), 'low_pass_px': float(low_pass_px),
        'mean': [float(m) for m in mean], 'std': [float(s) for s in std],
        'training_config': training_config or {}, 'epoch': int(epoch),
        'metrics': metrics or {}, 'code_version': code_version(),
    }
    if objects is not None and len(objects) > 1:
        meta['objects'] = [{'name': str(name), 'keypoint_names': [str(n) for n in names]}
                           for name, names in objects]
    return meta


def combined_names(objects: Sequence[tuple[str, Sequence[str]]]) -> tuple[str, list[str]]:
    """Return (object_name, keypoint_names) of a network of several objects.

    >>> combined_names([('ape', ['a', 'b']), ('can', ['a'])])
    ('ape+can', ['ape/a', 'ape/b', 'can/a'])
    """
    return ('+'.join(str(name) for name, _ in objects),
            [f'{name}/{n}' for name, names in objects for n in names])


def network_objects(meta: dict) -> list[tuple[str, list[str]]]:
    """Return [(object name, keypoint names)] whose heatmaps a network gives, in channel order."""
    if 'objects' in meta:
        return [(str(item['name']), [str(n) for n in item['keypoint_names']])
                for item in meta['objects']]
    return [(str(meta['object_name']), [str(n) for n in meta['keypoint_names']])]


def object_channels(objects: Sequence[tuple[str, Sequence[str]]]) -> dict[str, slice]:
    """Return {object name: its heatmap channels} of a network's objects (`network_objects`)."""
    channels, start = {}, 0
    for name, names in objects:
        channels[name] = slice(start, start + len(names))
        start += len(names)
    return channels


def check_keypoints(meta: dict, expected_keypoint_names: Sequence[str] | None = None,
                    object_name: str | None = None, path: Path | str = 'checkpoint') -> None:
    """Raise CheckpointError if the metadata's object or keypoints differ from the expected ones.

    The message names the file and what differs: object name, keypoint count, names or order.
    A network of several objects is checked for `object_name`, which it must serve.
    """
    objects = dict(network_objects(meta))
    if object_name is not None and object_name not in objects:
        trained = (f"object {meta['object_name']!r}" if len(objects) == 1
                   else f'objects {list(objects)}')
        raise CheckpointError(f'{path}: trained for {trained}, not {object_name!r}')
    if expected_keypoint_names is None:
        return
    if object_name is None and len(objects) > 1:
        raise CheckpointError(f'{path}: a network of several objects {list(objects)}: name the '
                              'object whose keypoints to check')
    ours = objects[object_name] if object_name is not None else next(iter(objects.values()))
    theirs = [str(n) for n in expected_keypoint_names]
    if ours == theirs:
        return
    if len(ours) != len(theirs):
        raise CheckpointError(f'{path}: keypoint count mismatch: checkpoint has {len(ours)} '
                              f'{ours}, object model has {len(theirs)} {theirs}')
    if sorted(ours) == sorted(theirs):
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        raise CheckpointError(f'{path}: keypoint order mismatch at index {i} '
                              f'({ours[i]!r} in the checkpoint, {theirs[i]!r} in the object '
                              f'model): checkpoint {ours}, object model {theirs}')
    only_ours = [n for n in ours if n not in theirs]
    only_theirs = [n for n in theirs if n not in ours]
    raise CheckpointError(f'{path}: keypoint name mismatch: checkpoint has {only_ours} that '
                          f'the object model lacks, object model has {only_theirs} that the '
                          f'checkpoint lacks')


def load_checkpoint(path: Path | str, expected_keypoint_names: Sequence[str] | None = None,
                    object_name: str | None = None,
                    device: torch.device | str = 'cpu') -> Checkpoint:
    """Load a checkpoint, check it against the object's keypoints, and build its network.

    Args:
        path: checkpoint file written by save_checkpoint.
        expected_keypoint_names: the object model's keypoint names in order (None: no check).
        object_name: the object model's name (None: no check).
        device: torch device for the model.

    Returns:
        Checkpoint with the model in eval mode.

    Raises:
        CheckpointError: missing or unreadable file, not a checkpoint, or a mismatch.
    """
    path = str(path)
    data = read_checkpoint_file(path)
    meta = check_format(data.get('meta') if isinstance(data, dict) else None, FORMAT,
                        FORMAT_VERSION, _META_KEYS, path, 'pose_kp_ros')
    if not isinstance(data.get('model'), dict):
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint (no model weights)')
    check_keypoints(meta, expected_keypoint_names, object_name, path)
    model = build_with_weights(
        lambda architecture: build_keypoint_network(HourglassConfig.from_dict(architecture)),
        meta['architecture'], data['model'], path, 'architecture')
    return Checkpoint(model=model.to(device).eval(), meta=meta, training=data.get('training'),
                      path=path)


def load_model(path: Path | str, expected_keypoint_names: Sequence[str] | None = None,
               object_name: str | None = None, device: torch.device | str = 'cpu',
               ) -> tuple[torch.nn.Module | OnnxNetwork, dict]:
    """Load a checkpoint or an exported model (.onnx or .pt2, pose-kp export) for inference.

    Returns:
        (model, meta): model maps normalised crops (B, 3, S, S) to the final heatmaps
        (B, N, H, H), in inference mode (batch norm frozen) on `device`: a torch module, or an
        OnnxNetwork (ONNX Runtime, network/onnx_runtime.py) for .onnx; meta is the metadata.
    """
    path = str(path)
    if is_onnx_model(path):
        model, meta = load_onnx_model(path, device)
    elif is_exported_program(path):
        model, meta = load_exported_program(path, device)
    else:
        checkpoint = load_checkpoint(path, expected_keypoint_names, object_name, device)
        return FinalHeatmaps(checkpoint.model).eval(), checkpoint.meta
    meta = check_format(meta, FORMAT, FORMAT_VERSION, _META_KEYS, path, 'pose_kp_ros')
    check_keypoints(meta, expected_keypoint_names, object_name, path)
    return model, meta


def load_exported_program(path: Path | str, device: torch.device | str = 'cpu',
                          ) -> tuple[torch.nn.Module, dict | None]:
    """Return (module on `device`, recorded metadata or None) of a torch.export archive (.pt2)."""
    extra = {EXPORT_META_FILE: ''}
    try:
        program = torch.export.load(path, extra_files=extra)
        meta = json.loads(extra[EXPORT_META_FILE] or 'null')
    except Exception as error:  # torch raises many types for corrupt archives
        lines = str(error).strip().splitlines()
        reason = lines[0] if lines else type(error).__name__
        raise CheckpointError(f'{path}: unreadable exported model ({reason})') from None
    return program.module().to(device), meta
