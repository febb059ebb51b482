"""The resumable epoch loop both trainers share (EpochTrainer), its curves and metrics file."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
import os
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pose_kp_ros import strict_json
from pose_kp_ros.network.checkpoint_format import save_checkpoint
from pose_kp_ros.training.config import learning_rate
from pose_kp_ros.training.distributed import (
    EpochSampler,
    all_reduce_sums,
    autocast_dtype,
    worker_init,
)
from pose_kp_ros.training.records import read_image

Batch = dict[str, torch.Tensor]
"""A DataLoader batch: a dataset's sample dict, each tensor stacked along a first axis B."""
Outputs = list[torch.Tensor] | dict[str, torch.Tensor]
"""A network's outputs: the keypoint network's heatmaps per stack, the detector's maps."""


def outputs_float32(outputs: Outputs) -> Outputs:
    """Return the network's outputs as float32 (mixed precision: losses in full precision)."""
    if isinstance(outputs, dict):
        return {name: output.float() for name, output in outputs.items()}
    return [output.float() for output in outputs]


class EpochDataset(torch.utils.data.Dataset):
    """A training set of `self.records` (one sample each) whose augmentation is drawn per epoch.

    A sample is a pure function of (seed, epoch, index): the loop calls set_epoch before each
    epoch. Subclasses set `records`, `seed` and `epoch` and start __getitem__ with `open_record`.
    """

    records: list
    seed: int
    epoch: int

    def __len__(self) -> int:
        """Return the number of records (samples)."""
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random augmentation is drawn."""
        self.epoch = int(epoch)

    def open_record(self, index: int) -> tuple:
        """Return (record, rng, image): record `index`, its epoch's random draws, its RGB image."""
        record = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return record, rng, read_image(record.image)


EPOCH_CHECKPOINT = 'epoch_{:03d}.pt'
"""Name of the checkpoint kept after each epoch (1-based) with keep_epoch_checkpoints."""


def epoch_checkpoints(folder: Path | str) -> dict[int, Path]:
    """Return {epoch: path} of the epoch checkpoints in a run's folder, in epoch order."""
    found = {}
    for path in Path(folder).glob('epoch_*.pt'):
        number = path.stem.partition('_')[2]
        if number.isdigit():
            found[int(number)] = path
    return dict(sorted(found.items()))


def write_json_atomic(path: Path | str, data: Any) -> None:
    """Write data as indented strict JSON (NaN: null) to path through a temporary file."""
    path = Path(path)
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    strict_json.write(temporary, data)
    os.replace(temporary, path)


def plot_curves(history: Sequence[Mapping[str, float]], path: Path | str, loss_label: str,
                series: Iterable[tuple[str, str]], **metric_settings: Any) -> None:
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
    summary, describe and plot_history, may override start_from (init_weights) and may set
    loss_parts and loss_format.
    """

    loss_parts = ()         # names of loss() parts logged per epoch as train_<name>_loss
    loss_format = '.5f'     # format of the running loss on the progress bar

    def __init__(self, config: dict[str, Any], device: torch.device, rank: int,
                 world_size: int) -> None:
        self.config, self.device, self.rank, self.world_size = config, device, rank, world_size
        self.output_dir = Path(config['output_dir'])
        self.is_main = rank == 0
        torch.manual_seed(config['seed'])
        self.build_data()
        self.train_sampler = EpochSampler(len(self.train_set), config['seed'], rank, world_size)
        self.val_sampler = EpochSampler(len(self.val_set), config['seed'], rank, world_size,
                                        shuffle=False)
        # Channels-last (NHWC) activations and weights: 1.3-1.5x faster training steps on the
        # CPU for every network here (docs/training.md, "Devices, threads, multi-GPU").
        model = self.build_model().to(device, memory_format=torch.channels_last)
        if world_size > 1 and device.type == 'cuda':
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        if world_size > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == 'cuda' else None,
                find_unused_parameters=self.encoder_blocks() is not None)  # frozen blocks
        self.optimizer = torch.optim.AdamW(self._parameter_groups(model), lr=config['lr'],
                                           weight_decay=config['weight_decay'])
        self.amp_dtype = autocast_dtype(bool(config['amp']), device)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        self.epoch, self.batches_done, self.history, self.best = 0, 0, [], None
        if config['init_weights']:
            self.start_from(config['init_weights'])

    # Hooks of the task.

    def build_data(self) -> None:
        """Set self.net_config, self.train_set and self.val_set (datasets with set_epoch)."""
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        """Return a new network of self.net_config (an nn.Module taking batch['image'])."""
        raise NotImplementedError

    def loss(self, outputs: Outputs, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (scalar loss tensor, {name in loss_parts: float}) of one batch's outputs."""
        raise NotImplementedError

    def evaluate(self, results: Iterator[tuple[Outputs, Batch]]) -> dict[str, float]:
        """Return the task's validation metrics over all ranks.

        `results` yields this rank's (outputs, batch) pairs; consume it fully before any
        collective call.
        """
        raise NotImplementedError

    def score(self, metrics: Mapping[str, float]) -> tuple[float, ...]:
        """Return the tuple of validation metrics that picks best.pt (larger is better)."""
        raise NotImplementedError

    def meta(self, metrics: dict[str, float] | None = None) -> dict:
        """Return the checkpoint metadata for the current state."""
        raise NotImplementedError

    def load_weights(self, path: Path | str) -> dict | None:
        """Load checkpoint `path` (checked against the config) into the model.

        Returns the checkpoint's training state (None for weights-only files).
        """
        raise NotImplementedError

    def start_from(self, path: Path | str) -> None:
        """Start from checkpoint `path`'s weights (`init_weights`); the default: load_weights."""
        self.load_weights(path)

    def encoder_blocks(self) -> torch.nn.Sequential | None:
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

    def apply_encoder_schedule(self) -> None:
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

    def summary(self, train_metrics: Mapping[str, float], metrics: Mapping[str, float]) -> str:
        """Return the end-of-epoch line after 'epoch N: ' (train and validation metrics)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Return the start of the start-up line: the data and the network."""
        raise NotImplementedError

    def plot_history(self, path: Path | str) -> None:
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

    def save(self, name: str, metrics: dict[str, float] | None = None) -> None:
        """Write output_dir/name with the weights and the resume state (rank 0 only)."""
        if not self.is_main:
            return
        training = {'epoch': self.epoch, 'batches_done': self.batches_done,
                    'optimizer': self.optimizer.state_dict(),
                    'scaler': self.scaler.state_dict(), 'history': self.history,
                    'best': self.best}
        save_checkpoint(self.output_dir / name, self.model, self.meta(metrics), training)

    def keep_epoch_checkpoint(self, metrics: dict[str, float]) -> None:
        """Save epoch_NNN.pt and delete those before the last keep_epoch_checkpoints (rank 0).

        The file holds the weights and metadata, no resume state; nothing when the key is 0.
        """
        keep = self.config.get('keep_epoch_checkpoints', 0)
        if not keep or not self.is_main:
            return
        save_checkpoint(self.output_dir / EPOCH_CHECKPOINT.format(self.epoch), self.model,
                        self.meta(metrics))
        for path in list(epoch_checkpoints(self.output_dir).values())[:-keep]:
            path.unlink()

    def resume(self) -> bool:
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

    def forward(self, model: torch.nn.Module, batch: Batch) -> list[torch.Tensor]:
        """Return model's outputs for the batch (a network that needs more overrides this)."""
        return model(self._images(batch))

    def _images(self, batch: Batch) -> torch.Tensor:
        """Return the batch's images (B, 3, H, W) on the device, channels-last like the model."""
        return batch['image'].to(self.device, non_blocking=True,
                                 memory_format=torch.channels_last)

    def train_epoch(self) -> tuple[dict[str, float], float]:
        """Train one epoch (or its remainder after a mid-epoch resume).

        The learning rate follows the schedule batch by batch (learning_rate at the fraction of
        the epoch done). Returns ({'train_loss', 'train_<part>_loss'...} means over all ranks,
        the learning rate at the epoch's start).
        """
        config = self.config
        self.train_set.set_epoch(self.epoch)
        self.train_sampler.set_epoch(self.epoch, self.batches_done * config['batch_size'])
        loader = self._loader(self.train_set, self.train_sampler, True)
        epoch_batches = max(self.batches_done + len(loader), 1)
        first_lr = learning_rate(config, self.epoch)
        self.model.train()
        self.apply_encoder_schedule()
        last_save = time.monotonic()
        sums = {'loss': 0.0, 'count': 0, **dict.fromkeys(self.loss_parts, 0.0)}
        bar = tqdm(loader, desc=f'epoch {self.epoch + 1}/{config["epochs"]} train',
                   disable=not self.is_main, leave=False, dynamic_ncols=True)
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                    else nullcontext())
        for batch in bar:
            lr = learning_rate(config, self.epoch + self.batches_done / epoch_batches)
            for group in self.optimizer.param_groups:
                group['lr'] = lr * group.get('lr_scale', 1.0)
            with autocast:
                outputs = self.forward(self.model, batch)
            loss, parts = self.loss(outputs_float32(outputs), batch)
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
                **{f'train_{name}_loss': sums[name] / count for name in self.loss_parts}}, first_lr

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Return {'val_loss', **evaluate()} over the validation set of all ranks."""
        loader = self._loader(self.val_set, self.val_sampler, False)
        model = getattr(self.model, 'module', self.model).eval()
        sums = {'loss': 0.0, 'batches': 0}

        def results():
            for batch in tqdm(loader, desc='validation', disable=not self.is_main, leave=False,
                              dynamic_ncols=True):
                outputs = self.forward(model, batch)
                sums['loss'] += self.loss(outputs, batch)[0].item()
                sums['batches'] += 1
                yield outputs, batch

        metrics = self.evaluate(results())
        sums = all_reduce_sums(sums, self.device, self.world_size)
        return {'val_loss': sums['loss'] / max(sums['batches'], 1), **metrics}

    def run(self) -> None:
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
            self.keep_epoch_checkpoint(metrics)
            if improved:
                self.save('best.pt', metrics)
            if self.is_main:
                write_json_atomic(self.output_dir / 'metrics.json', self.history)
                self.plot_history(self.output_dir / 'training_curves.png')
                tqdm.write(f"epoch {self.epoch}: {self.summary(train_metrics, metrics)}"
                           f"{' (best)' if improved else ''}")
