"""A stacked hourglass rebuilt from its exported ONNX model, to fine-tune a shipped network.

`pose-kp export` folds every batch norm that follows a convolution into that convolution
(W' = W gamma / sigma, bias b' = beta - mu gamma / sigma), so an .onnx file keeps the network's
function but not its layers. recover_hourglass rebuilds the HourglassNet of the recorded
architecture: parameters copied where the names match, and each folded pair as the folded
convolution followed by a batch norm set to the statistics of its input W' x on the given crops
(running mean m, variance v, scale sqrt(v + eps), shift m + b'). The network then computes the
ONNX model's heatmaps in eval mode; in train mode each rebuilt batch norm still adds b' while
its batch statistics stay near m, v, so a fine-tuning (`init_weights`) starts from the same
function. Only the first `stacks` hourglasses may be kept: every stack's heatmaps are
supervised (intermediate supervision).
"""

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
import torch

from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet
from pose_kp_ros.network.onnx_runtime import META_KEY

FOLDED_BIAS_SUFFIX = '.weight_bias'
"""The exporter's name of a folded convolution's bias: '<convolution>.weight_bias'."""
PREFIX = 'network.'
"""Prefix of the parameter names in an exported keypoint model (export wraps the network)."""


def recover_hourglass(path: Path | str, crops: torch.Tensor,
                      stacks: int = 0) -> tuple[HourglassNet, dict]:
    """Return (HourglassNet in eval mode, its metadata) rebuilt from the ONNX model at `path`.

    crops: (B, 3, S, S) normalised crops (the network's input, a few hundred real ones) whose
    statistics set the rebuilt batch norms. stacks: keep the first `stacks` hourglasses (0:
    all); the metadata's architecture says how many there are.

    Raises:
        CheckpointError: not an exported stacked hourglass (other architecture or names).
    """
    model = onnx.load(str(path))
    try:
        meta = json.loads({p.key: p.value for p in model.metadata_props}[META_KEY])
        config = HourglassConfig.from_dict(meta['architecture'])
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f'{path}: not an exported stacked hourglass ({error})') from None
    weights = {tensor.name.removeprefix(PREFIX): numpy_helper.to_array(tensor)
               for tensor in model.graph.initializer}
    network = HourglassNet(config).eval()
    pairs = folded_pairs(network, weights)
    folded = {f'{norm}.{name}' for _, norm in pairs
              for name in ('weight', 'bias', 'running_mean', 'running_var')}
    state = network.state_dict()
    missing = [key for key in state if key not in weights and key not in folded
               and not key.endswith('num_batches_tracked')]
    if missing:
        raise CheckpointError(f'{path}: no value for {missing[:3]} ({len(missing)} in all)')
    for key in state:
        if key in weights:
            state[key] = torch.from_numpy(np.array(weights[key]))
    for conv, norm in pairs:  # pass-through batch norms: x + b'
        bias = torch.from_numpy(np.array(weights[conv + FOLDED_BIAS_SUFFIX]))
        eps = network.get_submodule(norm).eps
        state.update({f'{norm}.running_mean': torch.zeros_like(bias),
                      f'{norm}.running_var': torch.full_like(bias, 1.0 - eps),
                      f'{norm}.weight': torch.ones_like(bias), f'{norm}.bias': bias})
    network.load_state_dict(state)
    _set_input_statistics(network, [norm for _, norm in pairs], crops)
    if stacks and stacks != config.num_stacks:
        network = first_stacks(network, stacks)
        meta = {**meta, 'architecture': network.config.to_dict()}
    return network, meta


def folded_pairs(network: torch.nn.Module, weights: dict) -> list[tuple[str, str]]:
    """Return the (convolution, batch norm) module names of `network` folded in `weights`.

    weights: parameter names (without PREFIX) of the exported model.
    """
    pairs = []
    for name, module in network.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = [(f'{name}.{child}'.lstrip('.'), layer)
                        for child, layer in module.named_children()]
            pairs += [(conv, norm) for (conv, first), (norm, second) in zip(children, children[1:])
                      if isinstance(first, torch.nn.Conv2d)
                      and isinstance(second, torch.nn.BatchNorm2d)
                      and conv + FOLDED_BIAS_SUFFIX in weights]
    return pairs


def first_stacks(network: HourglassNet, stacks: int) -> HourglassNet:
    """Return a HourglassNet (eval mode) of the first `stacks` hourglasses of `network`."""
    config = HourglassConfig.from_dict({**network.config.to_dict(), 'num_stacks': stacks})
    smaller = HourglassNet(config).eval()
    source = network.state_dict()
    smaller.load_state_dict({key: source[key] for key in smaller.state_dict()})
    return smaller


def _set_input_statistics(network, norms, crops):
    """Give each pass-through batch norm in `norms` its input's statistics on `crops`.

    (x - m) / sqrt(v + eps) * sqrt(v + eps) + (m + b') = x + b': the function is kept.
    """
    moments = {}

    def record(name):
        def hook(module, inputs, output):
            moments[name] = (inputs[0].mean((0, 2, 3)), inputs[0].var((0, 2, 3)))
        return hook

    hooks = [network.get_submodule(name).register_forward_hook(record(name)) for name in norms]
    try:
        with torch.no_grad():
            network(crops)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for name in norms:
            layer, (mean, var) = network.get_submodule(name), moments[name]
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.bias.add_(mean)
            layer.weight.copy_(torch.sqrt(var + layer.eps))
