"""Pieces shared by the training tools (`pose-kp train`, `pose-kp train-detector`).

Config files (YAML over a dict of defaults, unknown keys are errors, relative paths relative to
the file), the learning-rate schedule, the seeded resumable DDP sampler, the distributed set-up,
sums over ranks, atomic JSON writes, the training curves, the resumable epoch loop
(EpochTrainer, one subclass per task) and the command-line flow (run_training_cli).
"""

import argparse
from contextlib import nullcontext
import math
import os
from pathlib import Path
import sys
import time

import cv2
import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm
import yaml

from pose_kp_ros import strict_json
from pose_kp_ros.network.checkpoint import CheckpointError, save_checkpoint
from pose_kp_ros.network.dataset import DatasetError
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


def parse_overrides(items):
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


def read_config(path, defaults, required, epochs=None, overrides=None):
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
    for key in ('frozen_encoder_blocks', 'encoder_warmup_epochs'):
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


def resolve_path(config_path, value):
    """Return `value` as an absolute path string, relative paths taken from the config's folder.

    '..' is taken lexically (symlinks kept), so that `recorded_config` gives back the path as
    the config file wrote it.
    """
    return os.path.abspath(Path(config_path).parent / value)


PATH_KEYS = ('object', 'datasets', 'val_datasets', 'output_dir', 'init_weights')
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


def learning_rate(config, epoch):
    """Return the learning rate of `epoch` (0-based) under the config's schedule."""
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


class EpochSampler(torch.utils.data.Sampler):
    """Seeded per-epoch order, sharded over DDP ranks, able to skip batches already trained.

    Training order: a permutation drawn from (seed, epoch), padded by wrapping to a multiple of
    world_size, then every world_size-th index from `rank`. Validation (shuffle False): indices
    in order, unpadded, so every sample is counted once over all ranks.
    """

    def __init__(self, size, seed=0, rank=0, world_size=1, shuffle=True):
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch, skip=0):
        """Select the epoch's order and skip its first `skip` samples of this rank."""
        self.epoch, self.skip = epoch, skip

    def _indices(self):
        if not self.shuffle:
            return np.arange(self.size)[self.rank::self.world_size]
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size)
        padded = np.resize(order, math.ceil(self.size / self.world_size) * self.world_size)
        return padded[self.rank::self.world_size]

    def __iter__(self):
        """Yield this rank's indices for the epoch."""
        return iter(self._indices()[self.skip:].tolist())

    def __len__(self):
        """Return the number of indices this rank yields."""
        return max(len(self._indices()) - self.skip, 0)


def worker_init(_):
    """Keep DataLoader workers to one OpenCV thread each (they run in parallel already)."""
    cv2.setNumThreads(1)


def distributed_setup(device_choice):
    """Return (rank, world_size, device); join the process group under torchrun."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = device_choice == 'cuda' or (device_choice == 'auto' and torch.cuda.is_available())
    if device_choice == 'cuda' and not torch.cuda.is_available():
        raise TrainConfigError('--device cuda requested but CUDA is not available')
    device = torch.device(f'cuda:{local_rank}' if use_cuda else 'cpu')
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1:
        dist.init_process_group('nccl' if use_cuda else 'gloo')
    return rank, world_size, device


def set_cpu_threads(threads=0):
    """Set torch's CPU threads: `threads`, or the usable cores / training processes if 0."""
    processes = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
    per_process = len(os.sched_getaffinity(0)) // processes
    torch.set_num_threads(threads or max(per_process, 1))


def all_reduce_sums(sums, device, world_size):
    """Sum a dict of numbers over DDP ranks."""
    if world_size == 1:
        return sums
    keys = sorted(sums)
    values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, values.tolist()))


def write_json_atomic(path, data):
    """Write data as indented strict JSON (NaN: null) to path through a temporary file."""
    path = Path(path)
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    strict_json.write(temporary, data)
    os.replace(temporary, path)


def plot_curves(history, path, loss_label, series, **metric_settings):
    """Save the train/validation loss and validation metric curves over epochs as a PNG.

    Args:
        history: metrics.json entries (epoch, train_loss, val_loss and the series' keys).
        path: the PNG file.
        loss_label: y label of the (log) loss plot.
        series: (history key, legend label) pairs of the metric plot (fractions in 0..1).
        **metric_settings: further matplotlib settings of the metric plot (title, ylabel).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = [h['epoch'] for h in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(epochs, [h['train_loss'] for h in history], 'o-', label='train')
    loss_axis.plot(epochs, [h['val_loss'] for h in history], 's-', label='validation')
    loss_axis.set(xlabel='epoch', ylabel=loss_label, yscale='log', title='Loss')
    for key, label in series:
        metric_axis.plot(epochs, [h[key] for h in history], 'o-', label=label)
    metric_axis.set(xlabel='epoch', ylim=(0, 1.02), **metric_settings)
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


class EpochTrainer:
    """One resumable training run: data, model, AdamW, AMP, DDP; rank 0 writes the outputs.

    The loop (learning-rate schedule, mid-epoch resume to the exact batch, periodic last.pt,
    validation, best.pt by score, metrics.json and the curves) is shared; a task subclass
    implements the hooks build_data, build_model, loss, evaluate, score, meta, load_weights,
    summary, describe and plot_history, and may set loss_parts and loss_format.
    """

    loss_parts = ()         # names of loss() parts logged per epoch as train_<name>_loss
    loss_format = '.5f'     # format of the running loss on the progress bar

    def __init__(self, config, device, rank, world_size):
        self.config, self.device, self.rank, self.world_size = config, device, rank, world_size
        self.output_dir = Path(config['output_dir'])
        self.is_main = rank == 0
        torch.manual_seed(config['seed'])
        self.build_data()
        self.train_sampler = EpochSampler(len(self.train_set), config['seed'], rank, world_size)
        self.val_sampler = EpochSampler(len(self.val_set), config['seed'], rank, world_size,
                                        shuffle=False)
        model = self.build_model().to(device)
        if world_size > 1 and device.type == 'cuda':
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        if world_size > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == 'cuda' else None,
                find_unused_parameters=self.encoder_blocks() is not None)  # frozen blocks
        self.optimizer = torch.optim.AdamW(self._parameter_groups(model), lr=config['lr'],
                                           weight_decay=config['weight_decay'])
        self.use_amp = bool(config['amp']) and device.type == 'cuda'
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.use_amp)
        self.epoch, self.batches_done, self.history, self.best = 0, 0, [], None
        if config['init_weights']:
            self.load_weights(config['init_weights'])

    # Hooks of the task.

    def build_data(self):
        """Set self.net_config, self.train_set and self.val_set (datasets with set_epoch)."""
        raise NotImplementedError

    def build_model(self):
        """Return a new network of self.net_config (an nn.Module taking batch['image'])."""
        raise NotImplementedError

    def loss(self, outputs, batch):
        """Return (scalar loss tensor, {name in loss_parts: float}) of one batch's outputs."""
        raise NotImplementedError

    def evaluate(self, results):
        """Return the task's validation metrics over all ranks.

        `results` yields this rank's (outputs, batch) pairs; consume it fully before any
        collective call.
        """
        raise NotImplementedError

    def score(self, metrics):
        """Return the tuple of validation metrics that picks best.pt (larger is better)."""
        raise NotImplementedError

    def meta(self, metrics=None):
        """Return the checkpoint metadata for the current state."""
        raise NotImplementedError

    def load_weights(self, path):
        """Load checkpoint `path` (checked against the config) into the model.

        Returns the checkpoint's training state (None for weights-only files).
        """
        raise NotImplementedError

    def encoder_blocks(self):
        """Return the pretrained encoder's blocks (nn.Sequential) for the freezing schedule.

        None (the default) when the network has no such encoder.
        """
        return None

    # The pretrained encoder's schedule.

    def _parameter_groups(self, model):
        """Return AdamW groups: the encoder's parameters (lr x encoder_lr_scale), the rest."""
        blocks = self.encoder_blocks()
        encoder = set() if blocks is None else {id(p) for p in blocks.parameters()}
        rest = [p for p in model.parameters() if id(p) not in encoder]
        if not encoder:
            return [{'params': rest, 'lr_scale': 1.0}]
        return [{'params': [p for p in model.parameters() if id(p) in encoder],
                 'lr_scale': float(self.config.get('encoder_lr_scale', 1.0))},
                {'params': rest, 'lr_scale': 1.0}]

    def apply_encoder_schedule(self):
        """Freeze the encoder's blocks the schedule holds this epoch (after model.train()).

        Frozen blocks get no gradient and keep their batch-norm statistics (eval mode); with
        encoder_bn 'frozen' every encoder batch norm keeps its statistics.
        """
        blocks = self.encoder_blocks()
        if blocks is None:
            return
        config = self.config
        frozen = (len(blocks) if self.epoch < config.get('encoder_warmup_epochs', 0)
                  else config.get('frozen_encoder_blocks', 0))
        for index, block in enumerate(blocks):
            trainable = index >= frozen
            block.requires_grad_(trainable)
            if not trainable or config.get('encoder_bn') == 'frozen':
                for module in block.modules():
                    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                        module.eval()

    def summary(self, train_metrics, metrics):
        """Return the end-of-epoch line after 'epoch N: ' (train and validation metrics)."""
        raise NotImplementedError

    def describe(self):
        """Return the start of the start-up line: the data and the network."""
        raise NotImplementedError

    def plot_history(self, path):
        """Save the curves of self.history as a PNG."""
        raise NotImplementedError

    # The shared loop.

    def _loader(self, dataset, sampler, shuffle_epoch):
        workers = self.config['workers']
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.config['batch_size'], sampler=sampler,
            num_workers=workers, worker_init_fn=worker_init if workers else None,
            pin_memory=self.device.type == 'cuda', drop_last=shuffle_epoch and
            len(sampler) >= self.config['batch_size'])

    def save(self, name, metrics=None):
        """Write output_dir/name with the weights and the resume state (rank 0 only)."""
        if not self.is_main:
            return
        training = {'epoch': self.epoch, 'batches_done': self.batches_done,
                    'optimizer': self.optimizer.state_dict(),
                    'scaler': self.scaler.state_dict(), 'history': self.history,
                    'best': self.best}
        save_checkpoint(self.output_dir / name, self.model, self.meta(metrics), training)

    def resume(self):
        """Continue from output_dir/last.pt; return False if there is none."""
        path = self.output_dir / 'last.pt'
        if not path.exists():
            return False
        state = self.load_weights(path)
        self.optimizer.load_state_dict(state['optimizer'])
        self.scaler.load_state_dict(state['scaler'])
        self.epoch, self.batches_done = state['epoch'], state['batches_done']
        self.history, self.best = state['history'], state['best']
        return True

    def train_epoch(self):
        """Train one epoch (or its remainder after a mid-epoch resume).

        Returns ({'train_loss', 'train_<part>_loss'...} means over all ranks, learning rate).
        """
        config = self.config
        lr = learning_rate(config, self.epoch)
        for group in self.optimizer.param_groups:
            group['lr'] = lr * group.get('lr_scale', 1.0)
        self.train_set.set_epoch(self.epoch)
        self.train_sampler.set_epoch(self.epoch, self.batches_done * config['batch_size'])
        loader = self._loader(self.train_set, self.train_sampler, True)
        self.model.train()
        self.apply_encoder_schedule()
        last_save = time.monotonic()
        sums = {'loss': 0.0, 'count': 0, **dict.fromkeys(self.loss_parts, 0.0)}
        bar = tqdm(loader, desc=f'epoch {self.epoch + 1}/{config["epochs"]} train',
                   disable=not self.is_main, leave=False, dynamic_ncols=True)
        autocast = (torch.autocast('cuda', dtype=torch.float16) if self.use_amp
                    else nullcontext())
        for batch in bar:
            with autocast:
                outputs = self.model(batch['image'].to(self.device, non_blocking=True))
            loss, parts = self.loss(outputs, batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            sums['loss'] += loss.item()
            sums['count'] += 1
            for name in self.loss_parts:
                sums[name] += parts[name]
            self.batches_done += 1
            bar.set_postfix(loss=f"{sums['loss'] / sums['count']:{self.loss_format}}",
                            lr=f'{lr:.2e}')
            minutes = config['save_every_minutes']
            if minutes and time.monotonic() - last_save > 60 * minutes:
                self.save('last.pt')
                last_save = time.monotonic()
        sums = all_reduce_sums(sums, self.device, self.world_size)
        count = max(sums['count'], 1)
        return {'train_loss': sums['loss'] / count,
                **{f'train_{name}_loss': sums[name] / count for name in self.loss_parts}}, lr

    @torch.no_grad()
    def validate(self):
        """Return {'val_loss', **evaluate()} over the validation set of all ranks."""
        loader = self._loader(self.val_set, self.val_sampler, False)
        model = getattr(self.model, 'module', self.model).eval()
        sums = {'loss': 0.0, 'batches': 0}

        def results():
            for batch in tqdm(loader, desc='validation', disable=not self.is_main, leave=False,
                              dynamic_ncols=True):
                outputs = model(batch['image'].to(self.device))
                sums['loss'] += self.loss(outputs, batch)[0].item()
                sums['batches'] += 1
                yield outputs, batch

        metrics = self.evaluate(results())
        sums = all_reduce_sums(sums, self.device, self.world_size)
        return {'val_loss': sums['loss'] / max(sums['batches'], 1), **metrics}

    def run(self):
        """Train from self.epoch to config epochs, validating and saving after each epoch."""
        while self.epoch < self.config['epochs']:
            started = time.monotonic()
            train_metrics, lr = self.train_epoch()
            metrics = self.validate()
            self.epoch, self.batches_done = self.epoch + 1, 0
            self.history.append({'epoch': self.epoch, **train_metrics, 'lr': lr, **metrics,
                                 'seconds': time.monotonic() - started})
            score = self.score(metrics)
            improved = self.best is None or score > tuple(self.best)
            if improved:
                self.best = list(score)
            self.save('last.pt', metrics)
            if improved:
                self.save('best.pt', metrics)
            if self.is_main:
                write_json_atomic(self.output_dir / 'metrics.json', self.history)
                self.plot_history(self.output_dir / 'training_curves.png')
                tqdm.write(f"epoch {self.epoch}: {self.summary(train_metrics, metrics)}"
                           f"{' (best)' if improved else ''}")


def run_training_cli(argv, trainer_class, load_config, prog, description, config_help,
                     errors=()):
    """Parse the command line of a training tool, train, and return the exit code.

    Args:
        argv: the arguments (None: sys.argv[1:]).
        trainer_class: the task's EpochTrainer subclass.
        load_config: function (config path, epochs or None, overrides) -> config dict.
        prog, description, config_help: the tool's name, help line and --config help.
        errors: the task's exception types that end the run with exit code 2, besides
            TrainConfigError, DatasetError and CheckpointError.

    Returns:
        0 when done, 2 on a config/data/checkpoint error, 130 on Ctrl-C.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument('--config', required=True, help=config_help)
    parser.add_argument('--resume', action='store_true',
                        help="continue from output_dir's last.pt (fresh start if none)")
    parser.add_argument('--epochs', type=int, help='total epochs (overrides the config)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    parser.add_argument('--set', action='append', metavar='KEY=VALUE', default=[],
                        help='replace a config key (value as YAML), e.g. --set '
                             'output_dir=../runs/x --set frozen_encoder_blocks=7; repeatable')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.epochs, parse_overrides(args.set))
        rank, world_size, device = distributed_setup(args.device)
        if device.type == 'cpu':
            set_cpu_threads(config['threads'])
        trainer = trainer_class(config, device, rank, world_size)
        last = Path(config['output_dir']) / 'last.pt'
        if args.resume:
            if trainer.resume():
                print(f'resuming from {last}: epoch {trainer.epoch}, batch '
                      f'{trainer.batches_done}', file=sys.stderr)
            else:
                print(f'no {last} yet: starting from epoch 0', file=sys.stderr)
        elif last.exists():
            raise TrainConfigError(f'{last} exists: pass --resume to continue, or choose '
                                   f'another output_dir')
        if rank == 0:
            print(f'{trainer.describe()}, device {device}, world size {world_size}',
                  file=sys.stderr)
        trainer.run()
    except (TrainConfigError, DatasetError, CheckpointError, *errors) as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted; continue with --resume from the last saved last.pt',
              file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
