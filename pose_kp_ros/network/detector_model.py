"""The CenterNet network of the full-image detector and its architecture (docs/detector.md).

A light fully-convolutional network (inverted-residual stages at strides 4, 8, 16 and 32, or
MobileNetV2, plus a top-down neck back to stride 4) predicts at every output cell one centre
heatmap per class (logits), the box width and height as log(output pixels) and the sub-pixel
offset of the centre from its cell.
"""

from collections.abc import Mapping
import copy
from dataclasses import asdict, dataclass
import math
from typing import Any, TypeVar

import torch
from torch import nn
import torch.nn.functional as F

from pose_kp_ros.network.checkpoint_format import architecture_from_dict
from pose_kp_ros.network.mobilenet_v2 import MobileNetV2

OUTPUT_STRIDE = 4
STAGE_STRIDES = (4, 8, 16, 32)
ENCODERS = ('none', 'mobilenet_v2')
_HEATMAP_PRIOR = 0.1

Module = TypeVar('Module', bound=nn.Module)


class DetectorConfigError(ValueError):
    """A detector architecture that cannot be built (names the field)."""


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture of the CenterNet detector.

    Attributes:
        num_classes: centre heatmaps (one per object class, in the checkpoint's class order).
        input_width, input_height: network input in pixels (multiples of 32).
        stem_channels: channels of the stride-2 stem convolution.
        stage_channels: channels of the stages at strides 4, 8, 16, 32.
        stage_blocks: inverted-residual blocks per stage (the first one strides by 2).
        expansion: inverted-residual expansion factor.
        neck_channels: channels of the top-down neck (and its stride-4 output).
        head_channels: hidden channels of each prediction head.
        encoder: 'none' (the stem and stages above, trained from scratch) or 'mobilenet_v2'
            (MobileNetV2's blocks 0-17, ImageNet-pretrainable, replace stem and stages; its
            features at strides 4-32 feed the neck; stem/stage fields are then unused).
    """

    num_classes: int
    input_width: int = 256
    input_height: int = 192
    stem_channels: int = 16
    stage_channels: tuple = (24, 40, 80, 128)
    stage_blocks: tuple = (1, 2, 2, 2)
    expansion: int = 4
    neck_channels: int = 48
    head_channels: int = 48
    encoder: str = 'none'

    def __post_init__(self):
        """Check that the configuration describes a buildable network."""
        object.__setattr__(self, 'stage_channels', tuple(self.stage_channels))
        object.__setattr__(self, 'stage_blocks', tuple(self.stage_blocks))
        for name in ('num_classes', 'input_width', 'input_height', 'stem_channels', 'expansion',
                     'neck_channels', 'head_channels'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DetectorConfigError(f'detector {name} must be a positive integer, '
                                          f'got {value!r}')
        for name in ('stage_channels', 'stage_blocks'):
            value = getattr(self, name)
            if len(value) != len(STAGE_STRIDES) or not all(
                    isinstance(v, int) and v >= 1 for v in value):
                raise DetectorConfigError(f'detector {name} must be {len(STAGE_STRIDES)} '
                                          f'positive integers, got {list(value)!r}')
        if self.encoder not in ENCODERS:
            raise DetectorConfigError(f'detector encoder must be one of {ENCODERS}, got '
                                      f'{self.encoder!r}')
        for name in ('input_width', 'input_height'):
            if getattr(self, name) % STAGE_STRIDES[-1]:
                raise DetectorConfigError(f'detector {name} must be a multiple of '
                                          f'{STAGE_STRIDES[-1]}, got {getattr(self, name)}')

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the stride-4 output maps."""
        return self.input_width // OUTPUT_STRIDE, self.input_height // OUTPUT_STRIDE

    def to_dict(self) -> dict:
        """Return the configuration as a plain dict (for checkpoints and JSON)."""
        values = asdict(self)
        values['stage_channels'] = list(self.stage_channels)
        values['stage_blocks'] = list(self.stage_blocks)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'DetectorConfig':
        """Build from a dict, naming unknown keys."""
        return architecture_from_dict(cls, values, DetectorConfigError,
                                      'detector architecture')


def _conv_bn(cin, cout, kernel=1, stride=1, groups=1, relu=True):
    """Return conv (no bias) + batch norm (+ ReLU6) as a Sequential."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise (maybe strided), 1x1 project, residual."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            _conv_bn(cin, hidden), _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, cout, relu=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, cin, H, W) to (B, cout, H / stride, W / stride)."""
        out = self.body(x)
        return x + out if self.residual else out


def _separable(channels_in, channels_out):
    """Return a 3x3 depthwise + 1x1 pointwise convolution pair with BN and ReLU6."""
    return nn.Sequential(_conv_bn(channels_in, channels_in, 3, groups=channels_in),
                         _conv_bn(channels_in, channels_out))


class CenterNet(nn.Module):
    """Backbone (stem + 4 inverted-residual stages, or MobileNetV2) + top-down neck + three heads.

    forward(images (B, 3, Hin, Win) normalised) returns a dict of stride-4 maps:
        'heatmap' (B, C, Hin / 4, Win / 4) logits; 'size' (B, 2, ...) log(width, height) in
        output pixels; 'offset' (B, 2, ...) centre minus cell, output pixels.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        if config.encoder == 'mobilenet_v2':
            self.encoder = MobileNetV2(num_blocks=18)
            channels = self.encoder.tap_channels(STAGE_STRIDES)
        else:
            self.encoder = None
            self.stem = _conv_bn(3, config.stem_channels, 3, 2)
            stages, cin = [], config.stem_channels
            for cout, blocks in zip(config.stage_channels, config.stage_blocks):
                stages.append(nn.Sequential(*(InvertedResidual(cin if i == 0 else cout, cout,
                                                               2 if i == 0 else 1,
                                                               config.expansion)
                                              for i in range(blocks))))
                cin = cout
            self.stages = nn.ModuleList(stages)
            channels = config.stage_channels
        neck = config.neck_channels
        self.laterals = nn.ModuleList(_conv_bn(c, neck) for c in channels)
        self.smooth = nn.ModuleList(_separable(neck, neck) for _ in channels[:-1])
        self.heads = nn.ModuleDict({
            name: nn.Sequential(_separable(neck, config.head_channels),
                                nn.Conv2d(config.head_channels, channels, 1))
            for name, channels in (('heatmap', config.num_classes), ('size', 2), ('offset', 2))})
        nn.init.constant_(self.heads['heatmap'][-1].bias,
                          -math.log((1 - _HEATMAP_PRIOR) / _HEATMAP_PRIOR))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return {'heatmap', 'size', 'offset'} maps at stride 4 (see the class docstring)."""
        if self.encoder is not None:
            features = self.encoder.taps(images, STAGE_STRIDES)
        else:
            x = self.stem(images)
            features = []
            for stage in self.stages:
                x = stage(x)
                features.append(x)
        top = self.laterals[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            top = F.interpolate(top, scale_factor=2.0, mode='nearest')
            top = self.smooth[i](self.laterals[i](features[i]) + top)
        return {name: head(top) for name, head in self.heads.items()}


def fold_batch_norm(model: Module) -> Module:
    """Return a copy of an eval-mode model with every conv + BatchNorm2d pair merged into the conv.

    For inference only (the same outputs, fewer memory passes): conv weights are scaled by
    gamma / sqrt(var + eps) and the bias becomes beta - mean * gamma / sqrt(var + eps).
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
                continue
            scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
            merged = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                               conv.stride, conv.padding, groups=conv.groups, bias=True)
            merged.weight.data = conv.weight.detach() * scale[:, None, None, None]
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
            merged.bias.data = norm.bias.detach() + (bias - norm.running_mean) * scale
            module[i], module[i + 1] = merged, nn.Identity()
    return folded
