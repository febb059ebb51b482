"""The checkpoint format both networks share: a `torch.save` dict, written atomically, read safely.

A checkpoint is {'meta': dict, 'model': state_dict, 'training': dict or None}. `meta` holds plain
types only (loadable with weights_only=True) and names its `format` and `format_version`; each
network adds its own keys (network/checkpoint.py, network/detector_checkpoint.py).
"""

from collections.abc import Callable, Sequence
from dataclasses import fields
import os
from pathlib import Path
import subprocess
from typing import Any, TypeVar
import zipfile

import torch

Config = TypeVar('Config')


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not match the object (one-line message)."""


def code_version() -> str:
    """Return pose_kp_ros.__version__, plus `git describe` of the source tree when available."""
    from pose_kp_ros import __version__
    try:
        described = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--tags'], capture_output=True, text=True,
            timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ''
    return f'{__version__} ({described})' if described else __version__


def save_checkpoint(path: Path | str, model: torch.nn.Module, meta: dict,
                    training: dict | None = None) -> None:
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


def read_checkpoint_file(path: Path | str) -> Any:
    """Return torch.load(path) with weights_only, or raise CheckpointError naming the file."""
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: checkpoint file not found')
    if is_exported_program(path) or is_onnx_model(path):
        kind = '.onnx' if is_onnx_model(path) else '.pt2'
        raise CheckpointError(f'{path}: an exported model ({kind}), not a training checkpoint')
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint (not a torch.save file)')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for foreign or corrupt files
        lines = str(error).strip().splitlines()
        reason = lines[0][:160] if lines else type(error).__name__
        raise CheckpointError(f'{path}: not a pose_kp_ros checkpoint ({reason})') from None


def architecture_from_dict(cls: type[Config], values: dict, error: type[Exception],
                           what: str) -> Config:
    """Return dataclass `cls` (a network's architecture config) built from `values`.

    Raises:
        error: `values` has keys that are not fields of cls (named with the known ones, `what`
            naming the kind of config: 'hourglass config', 'detector architecture').
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise error(f'unknown {what} keys {unknown}; known: {sorted(known)}')
    return cls(**values)


def build_with_weights(build: Callable[[dict], torch.nn.Module], architecture: dict,
                       weights: dict, path: str, what: str) -> torch.nn.Module:
    """Return build(architecture) with the state dict `weights` loaded.

    what: the architecture's kind in the message ('architecture', 'detector architecture').

    Raises:
        CheckpointError: the architecture cannot be built or the weights do not fit it.
    """
    try:
        model = build(architecture)
        model.load_state_dict(weights)
    except (ValueError, RuntimeError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(f'{path}: weights do not fit the recorded {what} '
                              f'({first_line})') from None
    return model


def check_format(meta: object, format_name: str, format_version: int,
                 required_keys: Sequence[str], path: Path | str, what: str) -> dict:
    """Return meta if it is metadata of `format_name` this code reads, else raise CheckpointError.

    what: the kind of checkpoint in the message ('pose_kp_ros', 'pose_kp_ros detector').
    """
    if not isinstance(meta, dict) or meta.get('format') != format_name:
        found = meta.get('format') if isinstance(meta, dict) else None
        raise CheckpointError(f'{path}: not a {what} checkpoint (format {found!r}, expected '
                              f'{format_name!r})')
    if meta.get('format_version', 0) > format_version:
        raise CheckpointError(f"{path}: {what} format_version {meta['format_version']} is "
                              f'newer than this code reads ({format_version})')
    missing = [key for key in required_keys if key not in meta]
    if missing:
        raise CheckpointError(f'{path}: {what} checkpoint metadata lacks {missing}')
    return meta


def is_exported_program(path: Path | str) -> bool:
    """Return True if `path` is a torch.export archive (a zip holding archive_format)."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('/archive_format') for name in archive.namelist())


def is_onnx_model(path: Path | str) -> bool:
    """Return True if `path` names an ONNX model (by its .onnx suffix)."""
    return str(path).lower().endswith('.onnx')
