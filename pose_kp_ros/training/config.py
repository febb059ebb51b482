"""Training config files, `--set` overrides, the record checkpoints keep, the lr schedule.

A config is YAML over a dict of defaults: unknown keys are errors, relative paths are relative
to the file.
"""

from collections.abc import Iterable, Mapping
import math
import os
from pathlib import Path
from typing import Any

import yaml

from pose_kp_ros.paths import portable_path

LR_SCHEDULES = ('cosine', 'step', 'constant')
ENCODER_BN = ('train', 'frozen')
ENCODER_DEFAULTS = {
    'imagenet': False,             # start the encoder from its ImageNet weights (needs an encoder)
    'frozen_encoder_blocks': 0,    # the encoder's first blocks never train (e.g. 7: to stride 8)
    'encoder_warmup_epochs': 0,    # the whole encoder is frozen in the first epochs (head only)
    'encoder_bn': 'train',         # train | frozen: the encoder's batch-norm statistics
    'encoder_lr_scale': 1.0,       # the encoder's learning rate / lr
}
"""Training keys of a network with a pretrained encoder (both trainers; docs/training.md)."""


class TrainConfigError(ValueError):
    """An invalid training config (names the file and key)."""


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """Return {key: value} of command-line `KEY=VALUE` items, each value read as YAML."""
    overrides = {}
    for item in items or ():
        key, sep, text = item.partition('=')
        if not sep or not key:
            raise TrainConfigError(f'--set {item!r}: expected KEY=VALUE')
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise TrainConfigError(f'--set {item!r}: value is not YAML ({error})') from None
    return overrides


def read_config(path: Path | str, defaults: Mapping[str, Any], required: Iterable[str],
                epochs: int | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a training config YAML over `defaults`; check keys, required keys and lr_schedule.

    Args:
        path: the YAML file.
        defaults: dict of every known key and its default; it holds the keys datasets,
            val_datasets (a folder or a list of folders), output_dir and init_weights.
        required: keys that must be given (truthy).
        epochs: overrides the config's 'epochs' when not None.
        overrides: {key: value} replacing the file's values (paths relative to the file too).

    Returns:
        the merged dict; datasets and val_datasets as lists of absolute folders, output_dir and
        init_weights (if given) absolute (see resolve_path); other paths not yet resolved;
        config_file: the YAML's absolute path (checkpoints record `recorded_config`).
    """
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TrainConfigError(f'{path}: cannot read config ({error})') from None
    if not isinstance(values, dict):
        raise TrainConfigError(f'{path}: expected a mapping of config keys')
    values.update(overrides or {})
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise TrainConfigError(f'{path}: unknown keys {unknown}; known: {sorted(defaults)}')
    config = {**defaults, **values}
    for key in required:
        if not config[key]:
            raise TrainConfigError(f'{path}: missing required key {key!r}')
    if epochs is not None:
        config['epochs'] = epochs
    if 'encoder_bn' in config and config['encoder_bn'] not in ENCODER_BN:
        raise TrainConfigError(f"{path}: encoder_bn must be train or frozen, got "
                               f"{config['encoder_bn']!r}")
    for key in ('frozen_encoder_blocks', 'encoder_warmup_epochs', 'plain_mse_last_epochs',
                'keep_epoch_checkpoints'):
        if key in config and not (isinstance(config[key], int) and config[key] >= 0):
            raise TrainConfigError(f'{path}: {key} must be an integer >= 0, got {config[key]!r}')
    if config.get('lr_schedule') not in LR_SCHEDULES:
        raise TrainConfigError(f"{path}: lr_schedule must be cosine, step or constant, got "
                               f"{config.get('lr_schedule')!r}")
    for key in ('datasets', 'val_datasets'):
        folders = config[key] if isinstance(config[key], list) else [config[key]]
        config[key] = [resolve_path(path, p) for p in folders]
    config['output_dir'] = resolve_path(path, config['output_dir'])
    if config['init_weights']:
        config['init_weights'] = resolve_path(path, config['init_weights'])
    config['config_file'] = os.path.abspath(path)
    return config


def resolve_path(config_path: Path | str, value: Path | str) -> str:
    """Return `value` as an absolute path string, relative paths taken from the config's folder.

    '..' is taken lexically (symlinks kept), so that `recorded_config` gives back the path as
    the config file wrote it.
    """
    return os.path.abspath(Path(config_path).parent / value)


PATH_KEYS = ('object', 'objects', 'datasets', 'val_datasets', 'output_dir', 'init_weights',
             'teacher')
"""Config keys holding paths (a path or a list of paths; empty when unset)."""


def recorded_config(config: dict) -> dict:
    """Return a config (from read_config) as checkpoints record it: no absolute paths.

    Paths are relative to the config file's folder (as the file writes them), background_dirs
    of the augmentation too; config_file is relative to the repository (or working directory).
    """
    folder = Path(config['config_file']).parent

    def relative(value):
        return [relative(v) for v in value] if isinstance(value, list) else \
            portable_path(value, folder) if value else value

    recorded = {key: relative(value) if key in PATH_KEYS else value
                for key, value in config.items()}
    augmentation = recorded.get('augmentation')
    if isinstance(augmentation, dict) and augmentation.get('background_dirs'):
        recorded['augmentation'] = {**augmentation, 'background_dirs': relative(
            list(augmentation['background_dirs']))}
    recorded['config_file'] = portable_path(config['config_file'])
    return recorded


def learning_rate(config: Mapping[str, Any], epoch: float) -> float:
    """Return the learning rate at `epoch` (0-based; fractions: part of an epoch done).

    Warm-up ramps linearly, the cosine decays from lr to min_lr_fraction x lr at the last
    epoch's end, a step schedule multiplies by lr_gamma at each milestone epoch.
    """
    lr, warmup = config['lr'], config['warmup_epochs']
    if epoch < warmup:
        return lr * (epoch + 1) / (warmup + 1)
    if config['lr_schedule'] == 'step':
        return lr * config['lr_gamma'] ** sum(epoch >= m for m in config['lr_milestones'])
    if config['lr_schedule'] == 'cosine':
        progress = (epoch - warmup) / max(config['epochs'] - warmup, 1)
        floor = config['min_lr_fraction']
        return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr
