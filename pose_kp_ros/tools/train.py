"""`pose-kp train`: train a stacked-hourglass keypoint network from a YAML config.

    pose-kp train --config config/train_example.yaml [--resume] [--epochs N]
                  [--device auto|cpu|cuda]
    torchrun --nproc_per_node 4 -m pose_kp_ros.tools.train --config ...   # multi-GPU (DDP)

Writes into the config's output_dir: last.pt (every epoch and every save_every_minutes, atomic),
best.pt (best validation PCK@0.1), metrics.json (one entry per epoch) and training_curves.png.
See docs/training.md for the config keys.
"""

import argparse
from contextlib import nullcontext
from pathlib import Path
import sys
import time

import torch
import torch.distributed as dist
from tqdm import tqdm

from pose_kp_ros.network.checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_meta,
    save_checkpoint,
)
from pose_kp_ros.network.crops import heatmap_to_crop_affine, transform_points
from pose_kp_ros.network.dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    DatasetError,
    KeypointDataset,
    load_records,
    split_records,
)
from pose_kp_ros.network.heatmaps import decode_heatmaps
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassConfigError, HourglassNet
from pose_kp_ros.tools.training_common import (
    EpochSampler,
    TrainConfigError,
    all_reduce_sums,
    distributed_setup,
    learning_rate,
    read_config,
    resolve_path,
    set_cpu_threads,
    worker_init,
    write_json_atomic,
)

DEFAULTS = {
    'object': None,             # optional object YAML: its keypoint names must match the data
    'datasets': None,           # required: dataset folder or list of folders
    'val_datasets': [],         # optional validation folders; else val_fraction of the images
    'val_fraction': 0.1,
    'output_dir': None,         # required
    'seed': 0,
    'preset': 'cpu',
    'architecture': {},         # overrides of the preset's HourglassConfig fields
    'sigma': 2.0,               # Gaussian target sigma, heatmap pixels
    'padding': 1.25,            # crop side / longer box side
    'min_visibility': 1,        # supervise keypoints with visibility >= this
    'eval_min_visibility': 2,   # metrics over keypoints with visibility >= this
    'epochs': 50,
    'batch_size': 16,           # per process
    'workers': 2,               # DataLoader workers per process
    'lr': 1e-3,
    'weight_decay': 0.0,
    'lr_schedule': 'cosine',    # cosine | step | constant
    'warmup_epochs': 1,
    'lr_milestones': [],        # step schedule: epochs where lr *= lr_gamma
    'lr_gamma': 0.1,
    'min_lr_fraction': 0.01,    # cosine schedule floor, fraction of lr
    'augmentation': {},         # AugmentConfig fields
    'save_every_minutes': 10,   # also save last.pt mid-epoch (0: only at epoch end)
    'amp': True,                # mixed precision on CUDA
    'threads': 0,               # torch CPU threads (0: all cores this process may use)
    'init_weights': None,       # start from this checkpoint's weights (fine-tuning; same net)
}
REQUIRED = ('datasets', 'output_dir')
PCK_THRESHOLDS = (0.05, 0.1)


def load_config(path, epochs=None):
    """Read a training config YAML over DEFAULTS; relative paths are relative to the file."""
    config = read_config(path, DEFAULTS, REQUIRED, epochs)
    for key in ('datasets', 'val_datasets'):
        folders = config[key] if isinstance(config[key], list) else [config[key]]
        config[key] = [resolve_path(path, p) for p in folders]
    config['output_dir'] = resolve_path(path, config['output_dir'])
    for key in ('object', 'init_weights'):
        if config[key]:
            config[key] = resolve_path(path, config[key])
    augmentation = dict(config['augmentation'] or {})
    if augmentation.get('background_dirs'):
        augmentation['background_dirs'] = [resolve_path(path, p)
                                           for p in augmentation['background_dirs']]
    config['augmentation'] = augmentation
    return config


def heatmap_loss(outputs, targets, weights):
    """Sum over stacks of the visibility-weighted mean squared heatmap error.

    Args:
        outputs: list of (B, N, H, H) heatmaps, one per stack (intermediate supervision).
        targets: (B, N, H, H) Gaussian targets.
        weights: (B, N) keypoint weights.
    """
    normaliser = weights.sum().clamp(min=1.0)
    return sum(((out.float() - targets) ** 2).mean((-2, -1)).mul(weights).sum() / normaliser
               for out in outputs)


def keypoint_error_sums(heatmaps, batch, crop_from_heatmap, min_visibility):
    """Return sums for validation metrics of one batch (crop and image pixels, PCK counts).

    Keypoints with visibility >= min_visibility count. Image-pixel error = crop error / crop
    scale; PCK@a counts errors <= a * longer side of the tight box.
    """
    decoded, _ = decode_heatmaps(heatmaps)
    predicted = transform_points(torch.as_tensor(crop_from_heatmap, dtype=torch.float32),
                                 decoded.cpu())
    error_crop = (predicted - batch['keypoints']).norm(dim=-1)
    error_image = error_crop / batch['crop_scale'][:, None]
    counted = batch['visibility'] >= min_visibility
    sums = {'count': counted.sum().item(),
            'error_crop_px': error_crop[counted].sum().item(),
            'error_image_px': error_image[counted].sum().item()}
    for alpha in PCK_THRESHOLDS:
        hit = error_image <= alpha * batch['box_size'][:, None]
        sums[f'pck@{alpha}'] = (hit & counted).sum().item()
    return sums


def plot_history(history, path):
    """Save loss and PCK curves over epochs as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = [h['epoch'] for h in history]
    figure, (loss_axis, pck_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(epochs, [h['train_loss'] for h in history], 'o-', label='train')
    loss_axis.plot(epochs, [h['val_loss'] for h in history], 's-', label='validation')
    loss_axis.set(xlabel='epoch', ylabel='heatmap loss (sum over stacks)', yscale='log',
                  title='Loss')
    for alpha in PCK_THRESHOLDS:
        pck_axis.plot(epochs, [h[f'val_pck@{alpha}'] for h in history], 'o-',
                      label=f'PCK@{alpha}')
    pck_axis.set(xlabel='epoch', ylabel='fraction of keypoints', ylim=(0, 1.02),
                 title='Validation PCK (of box size)')
    for axis in (loss_axis, pck_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


class Trainer:
    """State of one training run: data, model, optimiser, history; rank 0 writes the outputs."""

    def __init__(self, config, device, rank, world_size):
        self.config, self.device, self.rank, self.world_size = config, device, rank, world_size
        self.output_dir = Path(config['output_dir'])
        self.is_main = rank == 0
        torch.manual_seed(config['seed'])
        self._build_data()
        model = HourglassNet(self.net_config).to(device)
        if world_size > 1 and device.type == 'cuda':
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        if world_size > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == 'cuda' else None)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config['lr'],
                                           weight_decay=config['weight_decay'])
        self.use_amp = bool(config['amp']) and device.type == 'cuda'
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.use_amp)
        self.crop_from_heatmap = heatmap_to_crop_affine(self.net_config.input_size,
                                                        self.net_config.heatmap_size)
        self.epoch, self.batches_done, self.history, self.best = 0, 0, [], None
        if config['init_weights']:
            self._load_weights(config['init_weights'])

    def _load_weights(self, path):
        """Load checkpoint `path` (same keypoints and architecture) into the model; return it."""
        checkpoint = load_checkpoint(path, self.keypoint_names, self.object_name)
        if checkpoint.meta['architecture'] != self.net_config.to_dict():
            raise CheckpointError(f'{path}: architecture {checkpoint.meta["architecture"]} '
                                  f"differs from the config's {self.net_config.to_dict()}")
        getattr(self.model, 'module', self.model).load_state_dict(checkpoint.model.state_dict())
        return checkpoint

    def _build_data(self):
        config = self.config
        object_name, names, records = load_records(config['datasets'])
        if config['object']:
            from pose_kp_ros.geometry.object_model import ObjectModel
            model = ObjectModel.from_yaml(config['object'])
            if model.name != object_name or list(model.keypoint_names) != names:
                raise DatasetError(f"{config['object']}: object {model.name!r} with keypoints "
                                   f'{list(model.keypoint_names)} does not match the datasets '
                                   f'({object_name!r}, {names})')
        if config['val_datasets']:
            _, _, val_records = load_records(config['val_datasets'], names, object_name)
            train_records = records
        else:
            train_records, val_records = split_records(records, config['val_fraction'],
                                                       config['seed'])
        if not train_records or not val_records:
            raise DatasetError(f'need training and validation instances, got '
                               f'{len(train_records)} and {len(val_records)} (set val_fraction '
                               f'or val_datasets)')
        self.object_name, self.keypoint_names = object_name, names
        self.net_config = net = HourglassConfig.from_preset(config['preset'], len(names),
                                                            **config['architecture'])
        common = {'input_size': net.input_size, 'heatmap_size': net.heatmap_size,
                  'sigma': config['sigma'], 'padding': config['padding'],
                  'seed': config['seed'], 'min_visibility': config['min_visibility']}
        self.train_set = KeypointDataset(
            train_records, augment=AugmentConfig.from_dict(config['augmentation']), **common)
        self.val_set = KeypointDataset(val_records, augment=None, **common)
        self.train_sampler = EpochSampler(len(self.train_set), config['seed'], self.rank,
                                          self.world_size)
        self.val_sampler = EpochSampler(len(self.val_set), config['seed'], self.rank,
                                        self.world_size, shuffle=False)

    def _loader(self, dataset, sampler, shuffle_epoch):
        workers = self.config['workers']
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.config['batch_size'], sampler=sampler,
            num_workers=workers, worker_init_fn=worker_init if workers else None,
            pin_memory=self.device.type == 'cuda', drop_last=shuffle_epoch and
            len(sampler) >= self.config['batch_size'])

    def meta(self, metrics=None):
        """Return the checkpoint metadata for the current state."""
        return make_meta(self.net_config, self.object_name, self.keypoint_names,
                         self.config['preset'], self.config['padding'], self.config['sigma'],
                         IMAGENET_MEAN, IMAGENET_STD, training_config=self.config,
                         epoch=self.epoch, metrics=metrics)

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
        state = self._load_weights(path).training
        self.optimizer.load_state_dict(state['optimizer'])
        self.scaler.load_state_dict(state['scaler'])
        self.epoch, self.batches_done = state['epoch'], state['batches_done']
        self.history, self.best = state['history'], state['best']
        return True

    def train_epoch(self):
        """Train one epoch (or its remainder after a mid-epoch resume); return the mean loss."""
        config = self.config
        lr = learning_rate(config, self.epoch)
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        self.train_set.set_epoch(self.epoch)
        skip = self.batches_done * config['batch_size']
        self.train_sampler.set_epoch(self.epoch, skip)
        loader = self._loader(self.train_set, self.train_sampler, True)
        self.model.train()
        last_save, total, count = time.monotonic(), 0.0, 0
        bar = tqdm(loader, desc=f'epoch {self.epoch + 1}/{config["epochs"]} train',
                   disable=not self.is_main, leave=False, dynamic_ncols=True)
        autocast = (torch.autocast('cuda', dtype=torch.float16) if self.use_amp
                    else nullcontext())
        for batch in bar:
            images = batch['image'].to(self.device, non_blocking=True)
            targets = batch['heatmaps'].to(self.device, non_blocking=True)
            weights = batch['weights'].to(self.device, non_blocking=True)
            with autocast:
                outputs = self.model(images)
            loss = heatmap_loss(outputs, targets, weights)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total, count = total + loss.item(), count + 1
            self.batches_done += 1
            bar.set_postfix(loss=f'{total / count:.5f}', lr=f'{lr:.2e}')
            minutes = config['save_every_minutes']
            if minutes and time.monotonic() - last_save > 60 * minutes:
                self.save('last.pt')
                last_save = time.monotonic()
        sums = all_reduce_sums({'loss': total, 'count': count}, self.device, self.world_size)
        return sums['loss'] / max(sums['count'], 1), lr

    @torch.no_grad()
    def validate(self):
        """Return validation metrics (loss, mean error in crop/image px, PCK) over all ranks."""
        loader = self._loader(self.val_set, self.val_sampler, False)
        model = getattr(self.model, 'module', self.model).eval()
        sums = {'loss': 0.0, 'batches': 0}
        for batch in tqdm(loader, desc='validation', disable=not self.is_main, leave=False,
                          dynamic_ncols=True):
            outputs = model(batch['image'].to(self.device))
            sums['loss'] += heatmap_loss(outputs, batch['heatmaps'].to(self.device),
                                         batch['weights'].to(self.device)).item()
            sums['batches'] += 1
            batch_sums = keypoint_error_sums(outputs[-1].float(), batch, self.crop_from_heatmap,
                                             self.config['eval_min_visibility'])
            for key, value in batch_sums.items():
                sums[key] = sums.get(key, 0) + value
        sums = all_reduce_sums(sums, self.device, self.world_size)
        count = max(sums.get('count', 0), 1)
        metrics = {'val_loss': sums['loss'] / max(sums['batches'], 1),
                   'val_mean_error_px': sums.get('error_image_px', 0) / count,
                   'val_mean_error_crop_px': sums.get('error_crop_px', 0) / count,
                   'val_keypoints': int(sums.get('count', 0))}
        for alpha in PCK_THRESHOLDS:
            metrics[f'val_pck@{alpha}'] = sums.get(f'pck@{alpha}', 0) / count
        return metrics

    def run(self):
        """Train from self.epoch to config epochs, validating and saving after each epoch."""
        while self.epoch < self.config['epochs']:
            started = time.monotonic()
            train_loss, lr = self.train_epoch()
            metrics = self.validate()
            self.epoch, self.batches_done = self.epoch + 1, 0
            entry = {'epoch': self.epoch, 'train_loss': train_loss, 'lr': lr, **metrics,
                     'seconds': time.monotonic() - started}
            self.history.append(entry)
            score = (metrics['val_pck@0.1'], -metrics['val_mean_error_px'])
            improved = self.best is None or score > tuple(self.best)
            if improved:
                self.best = list(score)
            self.save('last.pt', metrics)
            if improved:
                self.save('best.pt', metrics)
            if self.is_main:
                self._write_history()
                tqdm.write(f"epoch {self.epoch}: train loss {train_loss:.5f}, val loss "
                           f"{metrics['val_loss']:.5f}, error {metrics['val_mean_error_px']:.2f} "
                           f"px, PCK@0.05 {metrics['val_pck@0.05']:.3f}, PCK@0.1 "
                           f"{metrics['val_pck@0.1']:.3f}{' (best)' if improved else ''}")

    def _write_history(self):
        write_json_atomic(self.output_dir / 'metrics.json', self.history)
        plot_history(self.history, self.output_dir / 'training_curves.png')


def parse_args(argv):
    """Parse the command line of `pose-kp train`."""
    parser = argparse.ArgumentParser(prog='pose-kp train', description=__doc__.split('\n')[0])
    parser.add_argument('--config', required=True, help='training config YAML')
    parser.add_argument('--resume', action='store_true',
                        help="continue from output_dir's last.pt (fresh start if none)")
    parser.add_argument('--epochs', type=int, help='total epochs (overrides the config)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    return parser.parse_args(argv)


def main(argv=None):
    """Run `pose-kp train`; return the exit code."""
    args = parse_args(argv)
    try:
        config = load_config(args.config, args.epochs)
        rank, world_size, device = distributed_setup(args.device)
        if device.type == 'cpu':
            set_cpu_threads(config['threads'])
        trainer = Trainer(config, device, rank, world_size)
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
            print(f'{trainer.object_name}: {len(trainer.train_set)} training / '
                  f'{len(trainer.val_set)} validation instances, preset {config["preset"]} '
                  f'{trainer.net_config.to_dict()}, device {device}, world size {world_size}',
                  file=sys.stderr)
        trainer.run()
    except (TrainConfigError, DatasetError, CheckpointError, HourglassConfigError) as error:
        print(f'pose-kp train: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('pose-kp train: interrupted; continue with --resume from the last saved last.pt',
              file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
