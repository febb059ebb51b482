"""Starting a keypoint network from another object's network (training's `init_weights`).

Two networks of the same architecture that differ in their objects or keypoints share every
parameter except the few whose size is the number of heatmaps: each stack's last 1x1
convolution (rows: one per heatmap) and the 1x1 convolution that feeds a stack's heatmaps to the
next one (columns: one per heatmap). `transfer_keypoint_weights` copies the trunk whole and,
channel by channel, the heatmaps of the (object, keypoint) pairs both networks have; a heatmap
the source never had keeps its fresh rows and gets zero columns, so that at the start it changes
nothing the next stack sees. When the target has every heatmap of the source, its shared
heatmaps are the source's exactly: a driller network so gives an eight-object network its trunk
and the same driller heatmaps before any training. A custom
object's network starts from trained keypoint features instead of ImageNet's alone.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

from pose_kp_ros.network.hourglass import HourglassConfig, transfer_weights
from pose_kp_ros.network.keypoint_net import build_keypoint_network

Channel = tuple[str, str]
"""One heatmap: (object name, keypoint name)."""


def network_channels(objects: Sequence[tuple[str, Sequence[str]]]) -> list[Channel]:
    """Return the (object, keypoint) of every heatmap, in channel order.

    objects: [(object name, keypoint names)] as `checkpoint.network_objects` gives them.

    >>> network_channels([('ape', ['a', 'b']), ('can', ['a'])])
    [('ape', 'a'), ('ape', 'b'), ('can', 'a')]
    """
    return [(str(name), str(keypoint)) for name, names in objects for keypoint in names]


def heatmap_dimensions(config: HourglassConfig) -> dict[str, int]:
    """Return {state-dict name: its dimension over the heatmaps} of `config`'s network.

    Found by building the network (on the meta device: no memory, no time) for one and for two
    keypoints and comparing every tensor's shape.
    """
    with torch.device('meta'):
        one, two = (build_keypoint_network(replace(config, num_keypoints=n)).state_dict()
                    for n in (1, 2))
    dimensions = {}
    for name, tensor in one.items():
        changed = [d for d, (a, b) in enumerate(zip(tensor.shape, two[name].shape)) if a != b]
        if changed:
            dimensions[name] = changed[0]
    return dimensions


def transfer_keypoint_weights(state_dict: Mapping[str, torch.Tensor], source: HourglassConfig,
                              source_channels: Sequence[Channel],
                              target_state: Mapping[str, torch.Tensor], target: HourglassConfig,
                              target_channels: Sequence[Channel]) -> dict[str, torch.Tensor]:
    """Return a state dict for the target network, started from the source network's weights.

    state_dict, source, source_channels: the trained network's weights, config and heatmaps;
    target_state, target, target_channels: the new network's freshly initialised weights, config
    and heatmaps. The configs may differ in num_keypoints and heatmap_stride (see
    hourglass.transfer_weights) only; anything else raises HourglassConfigError naming the fields.
    """
    if len(source_channels) != source.num_keypoints:
        raise ValueError(f'{len(source_channels)} source channels for a network of '
                         f'{source.num_keypoints} heatmaps')
    if len(target_channels) != target.num_keypoints:
        raise ValueError(f'{len(target_channels)} target channels for a network of '
                         f'{target.num_keypoints} heatmaps')
    weights = transfer_weights(state_dict, source,
                               replace(target, num_keypoints=source.num_keypoints))
    index = {channel: i for i, channel in enumerate(source_channels)}
    shared = [(t, index[channel]) for t, channel in enumerate(target_channels)
              if channel in index]
    dimensions = heatmap_dimensions(target)
    result = {}
    for name, fresh in target_state.items():
        dimension = dimensions.get(name)
        if dimension is None:
            result[name] = weights[name].clone()
            continue
        merged = fresh.detach().clone()
        if dimension > 0:  # input columns: a heatmap the source never had adds nothing at first
            merged.zero_()
        for t, s in shared:
            merged.select(dimension, t).copy_(weights[name].select(dimension, s))
        result[name] = merged
    return result
