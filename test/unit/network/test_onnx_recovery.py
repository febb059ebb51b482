"""A stacked hourglass rebuilt from its exported ONNX model computes the same heatmaps."""

import numpy as np
import onnxruntime
import pytest
import torch

from pose_kp_ros.network.checkpoint import make_meta
from pose_kp_ros.network.checkpoint_format import CheckpointError, save_checkpoint
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.onnx_recovery import first_stacks, recover_hourglass
from pose_kp_ros.tools.export_model import main as export_main


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Return (eval-mode network with non-trivial batch norms, its exported .onnx path)."""
    torch.manual_seed(0)
    config = HourglassConfig(num_keypoints=3, num_stacks=2, features=16, depth=2,
                             input_size=32, heatmap_stride=2)
    network = HourglassNet(config)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        network.train()
        for _ in range(3):  # running statistics of some inputs
            network(torch.randn(8, 3, 32, 32) * 2.0 + 0.5)
    network.eval()
    folder = tmp_path_factory.mktemp('recovery')
    meta = make_meta(config, 'kite', ['a', 'b', 'c'], 'tiny', 1.25, 2.0, IMAGENET_MEAN,
                     IMAGENET_STD)
    save_checkpoint(folder / 'model.pt', network, meta)
    assert export_main([str(folder / 'model.pt'), '--out', str(folder / 'model.onnx')]) == 0
    return network, folder / 'model.onnx'


def test_rebuilt_network_computes_the_onnx_heatmaps(trained):
    network, path = trained
    crops = torch.randn(32, 3, 32, 32)
    rebuilt, meta = recover_hourglass(path, crops)
    assert meta['object_name'] == 'kite' and meta['architecture']['num_stacks'] == 2
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        heatmaps = rebuilt(crops[:4])
        original = network(crops[:4])
    np.testing.assert_allclose(heatmaps[-1].numpy(),
                               session.run(None, {'images': crops[:4].numpy()})[0], atol=1e-4)
    for mine, theirs in zip(heatmaps, original):  # every stack, not only the exported last one
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-4)


def test_rebuilt_batch_norms_keep_their_shift_in_train_mode(trained):
    """On the crops that set it, a rebuilt batch norm adds b' in train mode as in eval mode.

    The stem's: its input does not depend on other batch norms (downstream ones see inputs that
    the kept batch norms, now normalising by batch statistics, move a little).
    """
    _, path = trained
    crops = torch.randn(64, 3, 32, 32)
    rebuilt, _ = recover_hourglass(path, crops)
    stem_norm = rebuilt.get_submodule('stem.1')
    seen = []
    hook = stem_norm.register_forward_hook(
        lambda module, inputs, output: seen.append((inputs[0], output.clone())))
    with torch.no_grad():
        rebuilt.train()(crops)
    hook.remove()
    (given, produced), = seen
    shift = (stem_norm.bias - stem_norm.running_mean).detach()[None, :, None, None]
    np.testing.assert_allclose(produced.numpy(), (given + shift).numpy(), atol=1e-3)


def test_first_stacks_keep_the_first_heatmaps(trained):
    network, path = trained
    crops = torch.randn(8, 3, 32, 32)
    one, meta = recover_hourglass(path, crops, stacks=1)
    assert one.config.num_stacks == 1 and meta['architecture']['num_stacks'] == 1
    with torch.no_grad():
        np.testing.assert_allclose(one(crops)[0].numpy(), network(crops)[0].numpy(), atol=1e-4)
        assert len(first_stacks(one, 1)(crops)) == 1


def test_not_an_exported_hourglass_is_a_clear_error(tmp_path):
    from pose_kp_ros.network.onnx_export import write_onnx
    path = tmp_path / 'conv.onnx'
    write_onnx(torch.nn.Conv2d(3, 2, 1).eval(), torch.randn(1, 3, 8, 8), ['heatmaps'], '{}',
               path)
    with pytest.raises(CheckpointError, match='not an exported stacked hourglass'):
        recover_hourglass(path, torch.randn(2, 3, 8, 8))
