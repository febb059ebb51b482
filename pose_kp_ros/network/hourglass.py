"""Stacked hourglass network (Newell, Yang and Deng, ECCV 2016) with intermediate supervision.

The network maps a normalised RGB crop `(B, 3, S, S)` to one heatmap per keypoint for every
stack, `[(B, N, S / stride, S / stride)] * num_stacks`; the last stack's heatmaps are the
prediction and all of them are supervised during training.

    >>> import torch
    >>> config = HourglassConfig.from_preset('cpu', num_keypoints=8)
    >>> model = HourglassNet(config)
    >>> [h.shape for h in model(torch.zeros(1, 3, 128, 128))]
    [torch.Size([1, 8, 64, 64]), torch.Size([1, 8, 64, 64])]
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from pose_kp_ros.network.checkpoint_format import architecture_from_dict

BLOCK_TYPES = ('bottleneck', 'separable')
ENCODERS = ('none', 'mobilenet_v2')


class HourglassConfigError(ValueError):
    """An hourglass configuration that cannot be built (names the field)."""


@dataclass(frozen=True)
class HourglassConfig:
    """Architecture of a stacked hourglass.

    Attributes:
        num_keypoints: heatmaps per stack (one per semantic keypoint, in the object's order).
        num_stacks: hourglasses in sequence; each one's heatmaps are supervised.
        features: channels inside the hourglasses.
        depth: poolings inside one hourglass (its lowest resolution is heatmap_size / 2**depth).
        blocks_per_stage: residual blocks at each stage of the hourglass.
        input_size: side of the square input crop in pixels.
        heatmap_stride: input pixels per heatmap pixel (2 or 4);
            heatmap_size = input_size / heatmap_stride.
        block: 'bottleneck' (Newell's 1x1-3x3-1x1 residual) or 'separable' (1x1 then depthwise
            3x3 then 1x1, cheaper on CPU).
        encoder: 'none' (Newell's convolutional stem, trained from scratch) or 'mobilenet_v2'
            (an ImageNet-pretrainable MobileNetV2 to stride 16 whose features feed hourglasses
            at stride 4; see keypoint_net.EncoderHourglassNet; heatmap_stride must be 2).
        object_keypoints: () for one set of hourglass stacks writing every heatmap; else the
            keypoint count of each object, in channel order (summing to num_keypoints): every
            object gets hourglass stacks of its own on the shared encoder
            (keypoint_net.ObjectHeadsNet; needs an encoder).
    """

    num_keypoints: int
    num_stacks: int = 2
    features: int = 256
    depth: int = 4
    blocks_per_stage: int = 1
    input_size: int = 256
    heatmap_stride: int = 4
    block: str = 'bottleneck'
    encoder: str = 'none'
    object_keypoints: tuple[int, ...] = ()

    def __post_init__(self):
        """Check that the configuration describes a buildable network."""
        for name in ('num_keypoints', 'num_stacks', 'features', 'depth', 'blocks_per_stage',
                     'input_size'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise HourglassConfigError(f'hourglass {name} must be a positive integer, '
                                           f'got {value!r}')
        if self.heatmap_stride not in (2, 4):
            raise HourglassConfigError(f'hourglass heatmap_stride must be 2 or 4, '
                                       f'got {self.heatmap_stride!r}')
        if self.block not in BLOCK_TYPES:
            raise HourglassConfigError(f'hourglass block must be one of {BLOCK_TYPES}, '
                                       f'got {self.block!r}')
        if self.encoder not in ENCODERS:
            raise HourglassConfigError(f'hourglass encoder must be one of {ENCODERS}, '
                                       f'got {self.encoder!r}')
        if self.encoder != 'none' and self.heatmap_stride != 2:
            raise HourglassConfigError(f'hourglass encoder {self.encoder!r} needs '
                                       f'heatmap_stride 2')
        if not isinstance(self.object_keypoints, tuple):  # lists from JSON and YAML
            object.__setattr__(self, 'object_keypoints', tuple(self.object_keypoints))
        if self.object_keypoints:
            if self.encoder == 'none':
                raise HourglassConfigError('hourglass object_keypoints (per-object heads) needs '
                                           "an encoder (encoder: 'mobilenet_v2')")
            if (any(not isinstance(n, int) or n < 1 for n in self.object_keypoints)
                    or sum(self.object_keypoints) != self.num_keypoints):
                raise HourglassConfigError(
                    f'hourglass object_keypoints must be positive integers summing to '
                    f'num_keypoints {self.num_keypoints}, got {list(self.object_keypoints)}')
        if self.features % 4:
            raise HourglassConfigError(f'hourglass features must be a multiple of 4, '
                                       f'got {self.features}')
        # with an encoder the hourglasses run at stride 4 on features of stride 16
        divisor = (max(4 * 2 ** self.depth, 16) if self.encoder != 'none'
                   else self.heatmap_stride * 2 ** self.depth)
        if self.input_size % divisor:
            raise HourglassConfigError(
                f'hourglass input_size {self.input_size} must be a multiple of '
                f"the network's coarsest stride {divisor}")

    @property
    def heatmap_size(self) -> int:
        """Side of the square output heatmaps in heatmap pixels."""
        return self.input_size // self.heatmap_stride

    def to_dict(self) -> dict:
        """Return the configuration as a plain dict (for checkpoints and JSON).

        object_keypoints is a list; a shared-heads network (the default) leaves it out, so
        its dict is the one written before per-object heads existed.
        """
        values = asdict(self)
        values['object_keypoints'] = list(self.object_keypoints)
        if not self.object_keypoints:
            del values['object_keypoints']
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'HourglassConfig':
        """Build a configuration from a dict, naming any unknown key.

        `visible_mask: false`, written by earlier versions, is accepted and dropped.
        """
        values = dict(values)
        if values.get('visible_mask') is False:
            del values['visible_mask']
        return architecture_from_dict(cls, values, HourglassConfigError, 'hourglass config')

    @classmethod
    def from_preset(cls, preset: str, num_keypoints: int,
                    **overrides: Any) -> 'HourglassConfig':
        """Build the named preset (see PRESETS) for `num_keypoints`, with optional overrides."""
        if preset not in PRESETS:
            raise HourglassConfigError(f'unknown hourglass preset {preset!r}; '
                                       f'known: {sorted(PRESETS)}')
        known = set(cls.__dataclass_fields__) - {'num_keypoints'}  # that one is the object's
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise HourglassConfigError(f'unknown architecture field(s) {unknown}; known: '
                                       f'{sorted(known)}')
        return replace(PRESETS[preset], num_keypoints=num_keypoints, **overrides)


# Presets; num_keypoints is set per object by from_preset. Costs measured in docs/network.md.
PRESETS = {
    # Newell et al. / Pavlakos et al.: 2 stacks, 256 features, 256x256 input, 64x64 heatmaps.
    'paper': HourglassConfig(num_keypoints=1, num_stacks=2, features=256, depth=4,
                             blocks_per_stage=1, input_size=256, heatmap_stride=4,
                             block='bottleneck'),
    # CPU real-time: 128x128 input, 64x64 heatmaps (stride 2) for sub-pixel keypoints.
    'cpu': HourglassConfig(num_keypoints=1, num_stacks=2, features=64, depth=4,
                           blocks_per_stage=1, input_size=128, heatmap_stride=2,
                           block='bottleneck'),
    # ImageNet MobileNetV2 to stride 16 under 2 hourglasses at stride 4: 128 px -> 64x64.
    'mobilenet': HourglassConfig(num_keypoints=1, num_stacks=2, features=128, depth=3,
                                 blocks_per_stage=1, input_size=128, heatmap_stride=2,
                                 block='bottleneck', encoder='mobilenet_v2'),
}


class Bottleneck(nn.Module):
    """Pre-activation residual block 1x1 -> 3x3 -> 1x1 (Newell's residual module)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1))
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return skip(x) + body(x) (B, out_channels, H, W) for x (B, in_channels, H, W)."""
        return self.skip(x) + self.body(x)


class Separable(Bottleneck):
    """Bottleneck whose 3x3 convolution is depthwise (one filter per channel)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        mid = out_channels // 2
        self.body[5] = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)


def residual_blocks(block: type[Bottleneck], in_channels: int, out_channels: int,
                    count: int) -> nn.Sequential:
    """Return `count` residual blocks in sequence, the first changing the channel count."""
    layers = [block(in_channels, out_channels)]
    layers += [block(out_channels, out_channels) for _ in range(count - 1)]
    return nn.Sequential(*layers)


class Hourglass(nn.Module):
    """One hourglass: recursive pool / process / upsample with a skip branch at each scale."""

    def __init__(self, block: type[Bottleneck], features: int, depth: int,
                 blocks_per_stage: int) -> None:
        super().__init__()
        self.skip = residual_blocks(block, features, features, blocks_per_stage)
        self.down = nn.Sequential(nn.MaxPool2d(2),
                                  residual_blocks(block, features, features, blocks_per_stage))
        self.inner = (Hourglass(block, features, depth - 1, blocks_per_stage) if depth > 1
                      else residual_blocks(block, features, features, blocks_per_stage))
        self.up = nn.Sequential(residual_blocks(block, features, features, blocks_per_stage),
                                nn.Upsample(scale_factor=2, mode='nearest'))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (B, features, H, W) at the input resolution of x (B, features, H, W)."""
        return self.skip(x) + self.up(self.inner(self.down(x)))


class HourglassNet(nn.Module):
    """Stacked hourglass returning every stack's heatmaps (intermediate supervision)."""

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        block = {'bottleneck': Bottleneck, 'separable': Separable}[config.block]
        c = config.features
        stem = [nn.Conv2d(3, c // 4, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(c // 4), nn.ReLU(inplace=True), block(c // 4, c // 2)]
        if config.heatmap_stride == 4:
            stem.append(nn.MaxPool2d(2))
        stem += [block(c // 2, c // 2), block(c // 2, c)]
        self.stem = nn.Sequential(*stem)
        n = config.num_keypoints
        self.hourglasses = nn.ModuleList(
            Hourglass(block, c, config.depth, config.blocks_per_stage)
            for _ in range(config.num_stacks))
        self.heads = nn.ModuleList(
            nn.Sequential(residual_blocks(block, c, c, config.blocks_per_stage),
                          nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
                          nn.ReLU(inplace=True))
            for _ in range(config.num_stacks))
        self.to_heatmaps = nn.ModuleList(nn.Conv2d(c, n, 1) for _ in range(config.num_stacks))
        self.merge_features = nn.ModuleList(
            nn.Conv2d(c, c, 1) for _ in range(config.num_stacks - 1))
        self.merge_heatmaps = nn.ModuleList(
            nn.Conv2d(n, c, 1) for _ in range(config.num_stacks - 1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Map normalised crops (B, 3, S, S) to a list of num_stacks heatmaps (B, N, H, H)."""
        x = self.stem(images)
        outputs = []
        for i in range(self.config.num_stacks):
            features = self.heads[i](self.hourglasses[i](x))
            heatmaps = self.to_heatmaps[i](features)
            outputs.append(heatmaps)
            if i + 1 < self.config.num_stacks:
                x = x + self.merge_features[i](features) + self.merge_heatmaps[i](heatmaps)
        return outputs


def transfer_weights(state_dict: Mapping[str, torch.Tensor], source: HourglassConfig,
                     target: HourglassConfig) -> dict[str, torch.Tensor]:
    """Return a HourglassNet state dict of config `source` renamed for config `target`.

    The two configs may differ only in heatmap_stride. Every parameter has the same shape at
    stride 2 and 4, only the stem's parameter-free max-pool (stride 4) shifts the indices of the
    stem modules after it: used to start a finer-heatmap network from a trained coarser one.
    Raises HourglassConfigError naming the fields when anything else differs.
    """
    different = sorted(name for name, value in source.to_dict().items()
                       if name != 'heatmap_stride' and target.to_dict()[name] != value)
    if different:
        raise HourglassConfigError(f'cannot transfer weights between architectures that differ '
                                   f'in {different} (only heatmap_stride may differ)')
    pool = 4  # index of the stride-4 stem's max-pool: conv, batch norm, ReLU, block, pool
    shift = (target.heatmap_stride == 4) - (source.heatmap_stride == 4)
    renamed = {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if parts[0] == 'stem' and int(parts[1]) >= pool:
            parts[1] = str(int(parts[1]) + shift)
        renamed['.'.join(parts)] = value
    return renamed


class FinalHeatmaps(nn.Module):
    """Wrap a HourglassNet so that forward returns only the last stack's heatmaps (B, N, H, H)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor,
                objects: torch.Tensor | None = None) -> torch.Tensor:
        """Return the last stack's heatmaps for normalised crops (B, 3, S, S).

        objects: each crop's object index (B,) int64, for a network of per-object heads
        (keypoint_net.ObjectHeadsNet); None for any other.
        """
        return (self.network(images) if objects is None else self.network(images, objects))[-1]


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of a module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
