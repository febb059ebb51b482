"""Starting a keypoint network from another object's network: trunk and shared heatmaps."""

import pytest
import torch

from pose_kp_ros.network.hourglass import HourglassConfig, HourglassConfigError
from pose_kp_ros.network.keypoint_net import build_keypoint_network
from pose_kp_ros.network.keypoint_transfer import (
    heatmap_dimensions,
    network_channels,
    transfer_keypoint_weights,
)

ARCHITECTURES = {
    'hourglass': {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 32},
    'mobilenet': {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 64,
                  'heatmap_stride': 2, 'encoder': 'mobilenet_v2'},
}


def randomised(network):
    """Give every parameter and batch-norm statistic random values (fresh ones are trivial)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(values + 0.5 if name.endswith('running_var') else values - 0.5)
    return network.eval()


@pytest.mark.parametrize('kind', sorted(ARCHITECTURES))
def test_shared_heatmaps_are_the_source_networks_exactly(kind):
    source_channels = network_channels([('drill', ['tip', 'grip', 'base'])])
    target_channels = network_channels([('ape', ['ear', 'tail']),
                                        ('drill', ['base', 'tip', 'chuck', 'grip'])])
    source_config = HourglassConfig(num_keypoints=3, **ARCHITECTURES[kind])
    target_config = HourglassConfig(num_keypoints=6, **ARCHITECTURES[kind])
    source = randomised(build_keypoint_network(source_config))
    target = build_keypoint_network(target_config).eval()
    fresh = {name: tensor.clone() for name, tensor in target.state_dict().items()}
    weights = transfer_keypoint_weights(source.state_dict(), source_config, source_channels,
                                        target.state_dict(), target_config, target_channels)
    target.load_state_dict(weights)  # strict: every tensor, none left over
    images = torch.randn(2, 3, source_config.input_size, source_config.input_size)
    with torch.no_grad():
        before, after = source(images), target(images)
    for stack_before, stack_after in zip(before, after, strict=True):
        # every drill heatmap in every stack, though the new heatmaps feed stack 2 too
        torch.testing.assert_close(stack_after[:, [2, 3, 5]], stack_before[:, [2, 0, 1]])
    # The heatmaps the source never had keep their fresh output rows ...
    rows = [name for name, d in heatmap_dimensions(target_config).items() if d == 0]
    assert rows
    for name in rows:
        torch.testing.assert_close(weights[name][[0, 1, 4]], fresh[name][[0, 1, 4]])
    # ... and feed nothing to the next stack yet.
    columns = [name for name, d in heatmap_dimensions(target_config).items() if d == 1]
    assert columns
    for name in columns:
        assert not weights[name][:, [0, 1, 4]].any()


def test_only_num_keypoints_and_heatmap_stride_may_differ():
    source_config = HourglassConfig(num_keypoints=3, **ARCHITECTURES['hourglass'])
    source = build_keypoint_network(source_config)
    wider = HourglassConfig(num_keypoints=3, **{**ARCHITECTURES['hourglass'], 'features': 32})
    channels = network_channels([('drill', ['tip', 'grip', 'base'])])
    with pytest.raises(HourglassConfigError, match='features'):
        transfer_keypoint_weights(source.state_dict(), source_config, channels,
                                  build_keypoint_network(wider).state_dict(), wider, channels)
    with pytest.raises(ValueError, match='2 target channels for a network of 3 heatmaps'):
        transfer_keypoint_weights(source.state_dict(), source_config, channels,
                                  source.state_dict(), source_config, channels[:2])


def test_the_same_keypoints_copy_every_tensor():
    config = HourglassConfig(num_keypoints=3, **ARCHITECTURES['hourglass'])
    source = randomised(build_keypoint_network(config))
    channels = network_channels([('drill', ['tip', 'grip', 'base'])])
    weights = transfer_keypoint_weights(source.state_dict(), config, channels,
                                        build_keypoint_network(config).state_dict(), config,
                                        channels)
    for name, tensor in source.state_dict().items():
        assert torch.equal(weights[name], tensor), name
