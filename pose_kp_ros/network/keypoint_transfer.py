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

Networks of per-object heads (keypoint_net.ObjectHeadsNet) take part as sets of stacks:
`transfer_stack_weights` starts every target set of stacks (the one of a shared network, or
each object's) from the source set that has most of its heatmaps (the first on a tie), so a
shared network's stacks become every object's head, each with its own object's heatmaps.
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


def stack_sets(state_dict: Mapping[str, torch.Tensor], config: HourglassConfig,
               channels: Sequence[Channel],
               ) -> list[tuple[dict[str, torch.Tensor], HourglassConfig, list[Channel], str]]:
    """Return a network's sets of stacks, each as a shared network would hold them.

    Each set is (state, config, channels, prefix of its stack parameters in `state_dict`). A
    shared network is one set (prefix ''); a network of per-object heads has one set per object
    (prefix 'object_heads.<k>.'), each with the trunk and that object's stacks.
    """
    if not config.object_keypoints:
        return [(dict(state_dict), config, list(channels), '')]
    trunk = {name: value for name, value in state_dict.items()
             if not name.startswith('object_heads.')}
    sets, start = [], 0
    for k, count in enumerate(config.object_keypoints):
        prefix = f'object_heads.{k}.'
        stacks = {name[len(prefix):]: value for name, value in state_dict.items()
                  if name.startswith(prefix)}
        sets.append(({**trunk, **stacks}, replace(config, num_keypoints=count,
                                                  object_keypoints=()),
                     list(channels[start:start + count]), prefix))
        start += count
    return sets


def transfer_stack_weights(state_dict: Mapping[str, torch.Tensor], source: HourglassConfig,
                           source_channels: Sequence[Channel],
                           target_state: Mapping[str, torch.Tensor], target: HourglassConfig,
                           target_channels: Sequence[Channel]) -> dict[str, torch.Tensor]:
    """Return `transfer_keypoint_weights` for networks with or without per-object heads.

    Each target set of stacks (`stack_sets`) starts from the source set sharing most of its
    heatmaps; the trunk comes from the source's.
    """
    for config, channels in ((source, source_channels), (target, target_channels)):
        if len(channels) != config.num_keypoints:
            raise ValueError(f'{len(channels)} channels for a network of '
                             f'{config.num_keypoints} heatmaps')
    sources = stack_sets(state_dict, source, source_channels)
    result = {}
    for fresh, config, channels, prefix in stack_sets(target_state, target, target_channels):
        state, source_config, source_set_channels, _ = max(
            sources, key=lambda item: len(set(item[2]) & set(channels)))
        weights = transfer_keypoint_weights(state, source_config, source_set_channels, fresh,
                                            config, channels)
        for name, value in weights.items():
            result[f'{prefix}{name}' if f'{prefix}{name}' in target_state else name] = value
    return result


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
