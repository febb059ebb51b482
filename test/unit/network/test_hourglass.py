import pytest
import torch

from pose_kp_ros.network.hourglass import (
    PRESETS,
    FinalHeatmaps,
    HourglassConfig,
    HourglassConfigError,
    HourglassNet,
    transfer_weights,
)


@pytest.mark.parametrize('preset', sorted(PRESETS))
def test_every_preset_gives_one_heatmap_set_per_stack(preset):
    config = HourglassConfig.from_preset(preset, num_keypoints=7)
    model = HourglassNet(config).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(2, 3, config.input_size, config.input_size))
    assert len(outputs) == config.num_stacks
    for heatmaps in outputs:
        assert heatmaps.shape == (2, 7, config.heatmap_size, config.heatmap_size)


def test_paper_preset_is_newell():
    config = HourglassConfig.from_preset('paper', num_keypoints=10)
    assert (config.num_stacks, config.features, config.input_size, config.heatmap_size) == (
        2, 256, 256, 64)


def test_cpu_preset_keeps_64_pixel_heatmaps():
    assert HourglassConfig.from_preset('cpu', num_keypoints=3).heatmap_size == 64


@pytest.mark.parametrize('block', ['bottleneck', 'separable'])
def test_configurable_variants_and_final_wrapper(block):
    config = HourglassConfig(num_keypoints=4, num_stacks=3, features=16, depth=2,
                             blocks_per_stage=2, input_size=32, heatmap_stride=4, block=block)
    model = HourglassNet(config).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        outputs = model(x)
        final = FinalHeatmaps(model)(x)
    assert [o.shape for o in outputs] == [(1, 4, 8, 8)] * 3
    torch.testing.assert_close(final, outputs[-1])


def test_config_round_trip_and_errors():
    config = HourglassConfig.from_preset('cpu', num_keypoints=5, num_stacks=1)
    assert HourglassConfig.from_dict(config.to_dict()) == config
    with pytest.raises(HourglassConfigError, match='input_size'):
        HourglassConfig(num_keypoints=5, input_size=100)
    with pytest.raises(HourglassConfigError, match='heatmap_stride'):
        HourglassConfig(num_keypoints=5, heatmap_stride=3)
    with pytest.raises(HourglassConfigError, match='unknown hourglass preset'):
        HourglassConfig.from_preset('huge', num_keypoints=5)
    with pytest.raises(HourglassConfigError, match=r'unknown architecture field.*stacks'):
        HourglassConfig.from_preset('cpu', num_keypoints=5, stacks=3)
    with pytest.raises(HourglassConfigError, match='unknown hourglass config keys'):
        HourglassConfig.from_dict({'num_keypoints': 5, 'stacks': 2})


def test_weights_transfer_between_heatmap_strides():
    coarse = HourglassConfig(num_keypoints=3, num_stacks=2, features=16, depth=2,
                             input_size=32, heatmap_stride=4)
    fine = HourglassConfig(**{**coarse.to_dict(), 'heatmap_stride': 2})
    source = HourglassNet(coarse).state_dict()
    moved = transfer_weights(source, coarse, fine)
    target = HourglassNet(fine)
    target.load_state_dict(moved)  # strict: every parameter found, none left over
    # The stem's blocks after the max-pool moved down one index, unchanged.
    torch.testing.assert_close(moved['stem.4.body.2.weight'], source['stem.5.body.2.weight'])
    torch.testing.assert_close(moved['hourglasses.1.inner.skip.0.body.5.weight'],
                               source['hourglasses.1.inner.skip.0.body.5.weight'])
    back = transfer_weights(target.state_dict(), fine, coarse)
    assert back.keys() == source.keys()
    for key, value in source.items():
        torch.testing.assert_close(back[key], value)
    with pytest.raises(HourglassConfigError, match=r"\['features'\]"):
        transfer_weights(source, coarse, HourglassConfig(**{**fine.to_dict(), 'features': 32}))


