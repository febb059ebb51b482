"""Training of the keypoint network: config keys and defaults, validation metrics, the trainer."""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.network.checkpoint import (
    combined_names,
    load_checkpoint,
    load_model,
    make_meta,
    network_objects,
    object_channels,
)
from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.crops import heatmap_to_crop_affine
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassConfigError
from pose_kp_ros.network.keypoint_net import build_keypoint_network
from pose_kp_ros.network.keypoint_transfer import network_channels, transfer_stack_weights
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.onnx_runtime import OnnxNetwork
from pose_kp_ros.training.augmentation import AugmentConfig
from pose_kp_ros.training.config import (
    ENCODER_DEFAULTS,
    TrainConfigError,
    read_config,
    recorded_config,
    resolve_path,
)
from pose_kp_ros.training.distributed import all_reduce_sums
from pose_kp_ros.training.epoch_loop import Batch, EpochTrainer, plot_curves
from pose_kp_ros.training.keypoint_dataset import KeypointDataset, sample_heatmaps
from pose_kp_ros.training.keypoint_metrics import PCK_THRESHOLDS, keypoint_error_sums
from pose_kp_ros.training.losses import heatmap_loss
from pose_kp_ros.training.records import (
    DatasetError,
    load_records,
    object_file,
    read_dataset,
    split_records,
)

DEFAULTS = {
    'object': None,             # object YAML: whose instances to train on (needed when the
                                # datasets label several objects); its keypoints must match
    'objects': [],              # or object YAMLs: one network for all of them, each object's
                                # heatmaps the next channels in this order (not with object)
    'object_heads': False,      # objects: hourglass stacks of its own for each object on the
                                # shared encoder (keypoint_net.ObjectHeadsNet); each crop runs
                                # its object's only
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
    'min_visible_fraction': 0.1,  # leave out instances less visible (scenes of several objects)
    'occluded_peak': 1.0,       # target peak of hidden keypoints (visibility 1); < 1: lower conf
    'low_pass_px': 0.0,         # Gaussian blur of every crop, image pixels (saved in checkpoints)
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
    'amp': True,                # mixed precision: float16 on CUDA, bfloat16 on CPUs with it
    'threads': 0,               # torch CPU threads (0: all cores this process may use)
    'init_weights': None,       # start from this checkpoint's weights (fine-tuning; same net)
    'foreground_weight': 0.0,   # squared error weighted by 1 + this x target (leaves the
                                # all-zero plateau of plain MSE early; 0: plain MSE)
    'plain_mse_last_epochs': 0,  # the last N of `epochs` train with foreground_weight 0
    'keep_epoch_checkpoints': 0,  # also keep epoch_NNN.pt of the last N epochs (0: none)
    'teacher': None,            # distillation: a keypoint model (.pt or .onnx) of the same
                                # object, crop and heatmap sizes and low_pass_px
    'teacher_weight': 0.5,      # targets: (1 - this) x rendered Gaussians + this x the teacher's
                                # final heatmaps of the same crop
    **ENCODER_DEFAULTS,         # architecture encoder: ImageNet start and freezing schedule
}


REQUIRED = ('datasets', 'output_dir')


def load_config(path: Path | str, epochs: int | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a training config YAML over DEFAULTS; relative paths are relative to the file."""
    config = read_config(path, DEFAULTS, REQUIRED, epochs, overrides)
    if config['object'] and config['objects']:
        raise TrainConfigError(f'{path}: give object (one) or objects (several), not both')
    for key in ('object', 'teacher'):
        if config[key]:
            config[key] = resolve_path(path, config[key])
    if not 0.0 <= config['teacher_weight'] <= 1.0:
        raise TrainConfigError(f"{path}: teacher_weight must be in [0, 1], got "
                               f"{config['teacher_weight']!r}")
    config['objects'] = [resolve_path(path, item) for item in config['objects'] or []]
    if config['object_heads'] and len(config['objects']) < 2:
        raise TrainConfigError(f'{path}: object_heads needs several objects (objects: [...])')
    augmentation = dict(config['augmentation'] or {})
    if augmentation.get('background_dirs'):
        augmentation['background_dirs'] = [resolve_path(path, p)
                                           for p in augmentation['background_dirs']]
    config['augmentation'] = augmentation
    return config


def epoch_foreground_weight(config: Mapping[str, Any], epoch: int) -> float:
    """Return the heatmap loss's foreground_weight in `epoch` (0-based).

    0 (plain squared error, whose peak heights are calibrated confidences) in the last
    `plain_mse_last_epochs` of the config's `epochs`, `foreground_weight` before: a function of
    the epoch alone, so a resumed run continues the same schedule (a larger `--epochs` moves
    the plain epochs to its end).
    """
    if epoch >= config['epochs'] - config['plain_mse_last_epochs']:
        return 0.0
    return float(config['foreground_weight'])


class KeypointTrainer(EpochTrainer):
    """Training run of a stacked-hourglass keypoint network (best.pt: PCK@0.1, then error)."""

    def build_data(self) -> None:
        """Read the datasets, check the objects, build the network config and datasets.

        Each object's model is the config's (`object` or `objects`), else the YAML the datasets
        record for it (its symmetries decide the targets, training.symmetric_targets), else none.
        """
        config = self.config
        self.objects, models, train_records, val_records = [], [], [], []
        read = {key: read_dataset(config[key]) if config[key] else None  # once for all objects
                for key in ('datasets', 'val_datasets')}
        for path in config['objects'] or [config['object']]:
            model, name, names, train, val = self._object_records(path, read)
            self.objects.append((name, names))
            models += [] if model is None else [model]
            train_records += train
            val_records += val
        if len(self.objects) > 1:
            self.object_name, self.keypoint_names = combined_names(self.objects)
        else:
            (self.object_name, self.keypoint_names), = self.objects
        heads = {'object_keypoints': tuple(len(names) for _, names in self.objects)
                 } if config['object_heads'] else {}
        self.net_config = net = HourglassConfig.from_preset(
            config['preset'], len(self.keypoint_names), **config['architecture'], **heads)
        self.crop_from_heatmap = heatmap_to_crop_affine(net.input_size, net.heatmap_size)
        channels = ({name: channel.start for name, channel in
                     object_channels(self.objects).items()} if len(self.objects) > 1 else None)
        rows = max(len(names) for _, names in self.objects)
        common = {'input_size': net.input_size, 'heatmap_size': net.heatmap_size,
                  'sigma': config['sigma'], 'padding': config['padding'],
                  'seed': config['seed'], 'min_visibility': config['min_visibility'],
                  'occluded_peak': config['occluded_peak'], 'low_pass_px': config['low_pass_px'],
                  'min_visible_fraction': config['min_visible_fraction'],
                  'object_models': models, 'object_channels': channels,
                  'keypoint_rows': rows}
        self.train_set = KeypointDataset(
            train_records, augment=AugmentConfig.from_dict(config['augmentation']), **common)
        self.val_set = KeypointDataset(val_records, augment=None, **common)
        self.teacher = self._load_teacher() if config['teacher'] else None

    def _load_teacher(self) -> torch.nn.Module | OnnxNetwork:
        """Return the teacher network of `teacher` (crops in, final heatmaps out), checked."""
        path, net = self.config['teacher'], self.net_config
        if len(self.objects) > 1:
            raise TrainConfigError(f'teacher {path}: distillation serves one object, not '
                                   f'{[name for name, _ in self.objects]}')
        model, meta = load_model(path, self.keypoint_names, self.object_name, self.device)
        mine = {'input_size': net.input_size, 'heatmap_size': net.heatmap_size,
                'low_pass_px': float(self.config['low_pass_px']),
                'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)}
        differ = {key: meta.get(key) for key, value in mine.items() if meta.get(key) != value}
        if differ:
            raise TrainConfigError(f"teacher {path}: {differ} differ from this run's {mine}")
        return model

    def _object_records(self, path: str | None, read: dict[str, tuple | None],
                        ) -> tuple[ObjectModel | None, str, list[str], list, list]:
        """Return (object model or None, name, keypoint names, training and validation records).

        path: the object's YAML, or None for the datasets' only object (its model then the YAML
        the datasets record, if any); read: read_dataset of 'datasets' and 'val_datasets'.
        """
        config = self.config
        model = ObjectModel.from_yaml(path) if path else None
        object_name, names, records = load_records(
            config['datasets'], object_name=None if model is None else model.name,
            dataset=read['datasets'])
        recorded = object_file(config['datasets'], object_name)
        if model is None and recorded is not None:
            model = ObjectModel.from_yaml(recorded)
        if model is not None and (model.name, list(model.keypoint_names)) != (object_name, names):
            raise DatasetError(f'{model.source}: object {model.name!r} with keypoints '
                               f'{list(model.keypoint_names)} does not match the datasets '
                               f'({object_name!r}, {names})')
        if config['val_datasets']:
            _, _, val_records = load_records(config['val_datasets'], names, object_name,
                                             read['val_datasets'])
            train_records = records
        else:
            train_records, val_records = split_records(records, config['val_fraction'],
                                                       config['seed'])
        if not train_records or not val_records:
            raise DatasetError(f'{object_name}: need training and validation instances, got '
                               f'{len(train_records)} and {len(val_records)} (set val_fraction '
                               f'or val_datasets)')
        return model, object_name, names, train_records, val_records

    def build_model(self) -> torch.nn.Module:
        """Return a new keypoint network (encoder from ImageNet when `imagenet` and no init)."""
        imagenet = bool(self.config['imagenet']) and not self.config['init_weights']
        if imagenet and self.net_config.encoder == 'none':
            raise TrainConfigError('imagenet: true needs a pretrained encoder (preset mobilenet, '
                                   'or architecture encoder: mobilenet_v2)')
        return build_keypoint_network(self.net_config, imagenet=imagenet)

    def encoder_blocks(self) -> torch.nn.Sequential | None:
        """Return the pretrained encoder's blocks, or None for the plain hourglass."""
        encoder = getattr(getattr(self.model, 'module', self.model), 'encoder', None)
        return None if encoder is None else encoder.features

    def forward(self, model: torch.nn.Module, batch: Batch) -> list[torch.Tensor]:
        """Return every stack's heatmaps of the batch; per-object heads get each crop's object."""
        images = self._images(batch)
        if not self.net_config.object_keypoints:
            return model(images)
        starts = torch.tensor([channel.start for channel in
                               object_channels(self.objects).values()])
        objects = torch.searchsorted(starts, batch['channels'][:, 0].contiguous(), right=True) - 1
        return model(images, objects.to(self.device))

    def loss(self, outputs: list[torch.Tensor],
             batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (heatmap loss summed over stacks, {}) of one batch (outputs: one per stack)."""
        targets = batch['heatmaps'].to(self.device, non_blocking=True)
        weights = batch['weights'].to(self.device, non_blocking=True)
        if self.teacher is not None:
            with torch.no_grad():
                taught = self.teacher(self._images(batch)).float()
            share = float(self.config['teacher_weight'])
            targets = (1.0 - share) * targets + share * taught
        if 'channels' in batch:  # several objects: each crop against its own object's heatmaps
            outputs = [sample_heatmaps(heatmaps, batch['channels']) for heatmaps in outputs]
        return heatmap_loss(outputs, targets, weights,
                            epoch_foreground_weight(self.config, self.epoch)), {}

    def train_epoch(self) -> tuple[dict[str, float], float]:
        """Train one epoch (see EpochTrainer); the metrics also hold its foreground_weight."""
        metrics, lr = super().train_epoch()
        return {**metrics, 'foreground_weight': epoch_foreground_weight(self.config,
                                                                        self.epoch)}, lr

    def evaluate(self, results: Iterator[tuple[list[torch.Tensor], Batch]]) -> dict[str, float]:
        """Return mean error in crop/image px, counted keypoints and PCK over all ranks.

        A network of several objects also gets them per object (`<metric>/<object>`).
        """
        channels = object_channels(self.objects) if len(self.objects) > 1 else None
        sums = {}
        for outputs, batch in results:
            heatmaps, groups = outputs[-1].float(), None
            if channels is not None:
                heatmaps = sample_heatmaps(heatmaps, batch['channels'])
                groups = {name: batch['channels'][:, 0] == channel.start
                          for name, channel in channels.items()}
            batch_sums = keypoint_error_sums(heatmaps, batch, self.crop_from_heatmap,
                                             self.config['eval_min_visibility'], groups)
            for key, value in batch_sums.items():
                sums[key] = sums.get(key, 0) + value
        sums = all_reduce_sums(sums, self.device, self.world_size)
        metrics = {}
        for suffix in ['', *(f'/{name}' for name in channels or {})]:
            total = {key: sums.get(f'{key}{suffix}', 0) for key in (
                'count', 'error_image_px', 'error_crop_px',
                *(f'pck@{alpha}' for alpha in PCK_THRESHOLDS))}
            count = max(total['count'], 1)
            metrics[f'val_mean_error_px{suffix}'] = total['error_image_px'] / count
            metrics[f'val_mean_error_crop_px{suffix}'] = total['error_crop_px'] / count
            metrics[f'val_keypoints{suffix}'] = int(total['count'])
            for alpha in PCK_THRESHOLDS:
                metrics[f'val_pck@{alpha}{suffix}'] = total[f'pck@{alpha}'] / count
        return metrics

    def score(self, metrics: Mapping[str, float]) -> tuple[float, float]:
        """Return (PCK@0.1, -mean image error): best.pt has the best PCK, then error."""
        return metrics['val_pck@0.1'], -metrics['val_mean_error_px']

    def meta(self, metrics: dict[str, float] | None = None) -> dict:
        """Return the checkpoint metadata for the current state."""
        return make_meta(self.net_config, self.object_name, self.keypoint_names,
                         self.config['preset'], self.config['padding'], self.config['sigma'],
                         IMAGENET_MEAN, IMAGENET_STD,
                         training_config=recorded_config(self.config),
                         epoch=self.epoch, metrics=metrics,
                         low_pass_px=self.config['low_pass_px'], objects=self.objects)

    def load_weights(self, path: Path | str) -> dict | None:
        """Load checkpoint `path` (resume); return its training state.

        The checkpoint must serve the same objects and keypoints with the same architecture.
        """
        several = len(self.objects) > 1
        checkpoint = load_checkpoint(path, None if several else self.keypoint_names,
                                     None if several else self.object_name)
        if several and network_objects(checkpoint.meta) != self.objects:
            raise CheckpointError(f'{path}: a network of {network_objects(checkpoint.meta)}, '
                                  f'not of the configured objects {self.objects}')
        source = HourglassConfig.from_dict(checkpoint.meta['architecture'])
        if source != self.net_config:
            raise CheckpointError(f'{path}: architecture {source.to_dict()} is not the '
                                  f"config's {self.net_config.to_dict()}")
        getattr(self.model, 'module', self.model).load_state_dict(checkpoint.model.state_dict())
        return checkpoint.training

    def start_from(self, path: Path | str) -> None:
        """Start from checkpoint `path`: its trunk and the heatmaps of the keypoints both have.

        The checkpoint may serve other objects or keypoints and have another heatmap_stride
        (network/keypoint_transfer.py); any other architecture difference is a CheckpointError.
        """
        checkpoint = load_checkpoint(path)
        source = HourglassConfig.from_dict(checkpoint.meta['architecture'])
        source_channels = network_channels(network_objects(checkpoint.meta))
        target_channels = network_channels(self.objects)
        model = getattr(self.model, 'module', self.model)
        try:
            weights = transfer_stack_weights(
                checkpoint.model.state_dict(), source, source_channels, model.state_dict(),
                self.net_config, target_channels)
        except HourglassConfigError as error:
            raise CheckpointError(f'{path}: architecture {source.to_dict()} does not fit the '
                                  f"config's {self.net_config.to_dict()}: {error}") from None
        model.load_state_dict(weights)
        shared = len(set(source_channels) & set(target_channels))
        if shared < len(target_channels) and self.is_main:
            print(f'init_weights {path}: trunk and {shared} of {len(target_channels)} heatmaps '
                  f'(the others start fresh)', flush=True)

    def summary(self, train_metrics: Mapping[str, float], metrics: Mapping[str, float]) -> str:
        """Return losses, mean image error and PCK of the epoch."""
        return (f"train loss {train_metrics['train_loss']:.5f}, val loss "
                f"{metrics['val_loss']:.5f}, error {metrics['val_mean_error_px']:.2f} px, "
                f"PCK@0.05 {metrics['val_pck@0.05']:.3f}, PCK@0.1 {metrics['val_pck@0.1']:.3f}")

    def describe(self) -> str:
        """Return object, instance counts, preset and architecture."""
        return (f'{self.object_name}: {len(self.train_set)} training / {len(self.val_set)} '
                f"validation instances, preset {self.config['preset']} "
                f'{self.net_config.to_dict()}')

    def plot_history(self, path: Path | str) -> None:
        """Save loss and PCK curves over epochs as a PNG."""
        series = [(f'val_pck@{alpha}', f'PCK@{alpha}') for alpha in PCK_THRESHOLDS]
        plot_curves(self.history, path, 'loss (heatmaps summed over stacks)', series,
                    ylabel='fraction', title='Validation PCK (of box size)')
