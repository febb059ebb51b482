"""Checkpoints: network weights plus the metadata needed to use them, checked on load.

A checkpoint is a `torch.save` dict {'meta': dict, 'model': state_dict, 'training': dict or None}.
`meta` holds plain types only (loadable with weights_only=True):

    format ('pose_kp_ros.keypoint_checkpoint'), format_version, object_name, keypoint_names (in
    heatmap order), preset, architecture (HourglassConfig.to_dict()), input_size, heatmap_size,
    padding (crop side / box side), sigma (heatmap px), mean, std (RGB in [0, 1]),
    training_config, epoch (completed epochs), metrics (last validation), code_version.

An exported model (pose_kp_ros.tools.export_model) is a `torch.export` program archive (.pt2)
carrying the same `meta` as the extra file 'pose_kp_meta.json'; `load_model` reads either kind.
"""

from dataclasses import dataclass
import json
import os
from pathlib import Path
import subprocess
import zipfile

import torch

from pose_kp_ros.network.hourglass import FinalHeatmaps, HourglassConfig
from pose_kp_ros.network.keypoint_net import build_keypoint_network

FORMAT = 'pose_kp_ros.keypoint_checkpoint'
FORMAT_VERSION = 1
EXPORT_META_FILE = 'pose_kp_meta.json'
_META_KEYS = ('object_name', 'keypoint_names', 'architecture', 'input_size', 'heatmap_size',
              'padding', 'mean', 'std')


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not match the object (one-line message)."""


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


def code_version():
    """Return pose_kp_ros.__version__, plus `git describe` of the source tree when available."""
    from pose_kp_ros import __version__
    try:
        described = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--tags'], capture_output=True, text=True,
            timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ''
    return f'{__version__} ({described})' if described else __version__


def make_meta(config, object_name, keypoint_names, preset, padding, sigma, mean, std,
              training_config=None, epoch=0, metrics=None, low_pass_px=0.0):
    """Return the metadata dict of a checkpoint (plain types only)."""
    if len(keypoint_names) != config.num_keypoints:
        raise CheckpointError(f'{len(keypoint_names)} keypoint names for a network with '
                              f'{config.num_keypoints} heatmaps')
    return {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'object_name': str(object_name), 'keypoint_names': [str(n) for n in keypoint_names],
        'preset': preset, 'architecture': config.to_dict(),
        'input_size': config.input_size, 'heatmap_size': config.heatmap_size,
        'padding': float(padding), 'sigma': float(sigma), 'low_pass_px': float(low_pass_px),
        'mean': [float(m) for m in mean], 'std': [float(s) for s in std],
        'training_config': training_config or {}, 'epoch': int(epoch),
        'metrics': metrics or {}, 'code_version': code_version(),
    }


def save_checkpoint(path, model, meta, training=None):
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    Args:
        path: destination file.
        model: the network (or a DDP wrapper of one).
        meta: dict from make_meta.
        training: optional dict of optimizer / scheduler / scaler states for resuming.
    """
    model = getattr(model, 'module', model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        torch.save({'meta': meta, 'model': model.state_dict(), 'training': training}, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_keypoints(meta, expected_keypoint_names=None, object_name=None, path='checkpoint'):
    """Raise CheckpointError if the metadata's object or keypoints differ from the expected ones.

    The message names the file and what differs: object name, keypoint count, names or order.
    """
    if object_name is not None and meta['object_name'] != object_name:
        raise CheckpointError(f"{path}: trained for object {meta['object_name']!r}, "
                              f'not {object_name!r}')
    if expected_keypoint_names is None:
        return
    ours, theirs = list(meta['keypoint_names']), [str(n) for n in expected_keypoint_names]
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


def load_checkpoint(path, expected_keypoint_names=None, object_name=None, device='cpu'):
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
    meta = _check_meta(data.get('meta') if isinstance(data, dict) else None, path)
    if not isinstance(data.get('model'), dict):
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint (no model weights)')
    check_keypoints(meta, expected_keypoint_names, object_name, path)
    try:
        model = build_keypoint_network(HourglassConfig.from_dict(meta['architecture']))
        model.load_state_dict(data['model'])
    except (ValueError, RuntimeError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(f'{path}: weights do not fit the recorded architecture '
                              f'({first_line})') from None
    return Checkpoint(model=model.to(device).eval(), meta=meta, training=data.get('training'),
                      path=path)


def load_model(path, expected_keypoint_names=None, object_name=None, device='cpu'):
    """Load a checkpoint or an exported program (.pt2, pose-kp export) for inference.

    Returns:
        (model, meta): model maps normalised crops (B, 3, S, S) to the final heatmaps
        (B, N, H, H), in inference mode (batch norm frozen) on `device`; meta is the metadata.
    """
    path = str(path)
    if not _is_exported(path):
        checkpoint = load_checkpoint(path, expected_keypoint_names, object_name, device)
        return FinalHeatmaps(checkpoint.model).eval(), checkpoint.meta
    extra = {EXPORT_META_FILE: ''}
    try:
        program = torch.export.load(path, extra_files=extra)
        meta = json.loads(extra[EXPORT_META_FILE] or 'null')
    except Exception as error:  # torch raises many types for corrupt archives
        lines = str(error).strip().splitlines()
        reason = lines[0] if lines else type(error).__name__
        raise CheckpointError(f'{path}: unreadable exported model ({reason})') from None
    meta = _check_meta(meta, path)
    check_keypoints(meta, expected_keypoint_names, object_name, path)
    return program.module().to(device), meta


def read_checkpoint_file(path):
    """Return torch.load(path) with weights_only, or raise CheckpointError naming the file."""
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: checkpoint file not found')
    if _is_exported(path):
        raise CheckpointError(f'{path}: an exported model (.pt2), not a training checkpoint')
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint (not a torch.save file)')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for foreign or corrupt files
        lines = str(error).strip().splitlines()
        reason = lines[0][:160] if lines else type(error).__name__
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint ({reason})') from None


def _check_meta(meta, path):
    """Return meta if it is pose_kp_ros checkpoint metadata, else raise CheckpointError."""
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint (no {FORMAT} metadata)')
    if meta.get('format_version', 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {meta['format_version']} is "
                              f'newer than this code reads ({FORMAT_VERSION})')
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise CheckpointError(f'{path}: checkpoint metadata lacks {missing}')
    return meta


def _is_exported(path):
    """Return True if `path` is a torch.export archive (a zip holding archive_format)."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('/archive_format') for name in archive.namelist())
