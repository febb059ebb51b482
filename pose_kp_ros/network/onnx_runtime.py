"""ONNX Runtime inference of exported networks (`pose-kp export --out FILE.onnx`).

An exported model carries its checkpoint's metadata as JSON in the ONNX model's metadata_props
under META_KEY; the loaders of both networks (checkpoint.load_model, ObjectDetector.from_file)
check it like a checkpoint's. `OnnxNetwork` is called like the torch module it was exported
from: a float tensor (B, 3, H, W) in, a tensor (one output) or a dict of tensors out, on the
input's device.

Execution providers: on a CUDA device the available ones of TensorRT and CUDA (onnxruntime-gpu),
then the CPU; on the CPU the CPU only. Intra-op threads: the process's torch thread count
(`torch.set_num_threads`: the node's `torch_threads`, `pose-kp eval-lmo --threads`) unless given.
"""

import json
import logging
import os

import numpy as np
import torch

from pose_kp_ros.network.checkpoint_format import CheckpointError

META_KEY = 'pose_kp_meta'
GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
LOGGER = logging.getLogger(__name__)


def execution_providers(device, available: list[str]) -> list:
    """Return the ONNX Runtime providers (with options) for a torch device, best first.

    available: onnxruntime.get_available_providers().
    """
    device = torch.device(device)
    if device.type != 'cuda':
        return ['CPUExecutionProvider']
    options = {'device_id': device.index or 0}
    return [(name, options) for name in GPU_PROVIDERS if name in available] \
        + ['CPUExecutionProvider']


class OnnxNetwork:
    """An ONNX Runtime session called like the torch network it was exported from."""

    def __init__(self, session):
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [output.name for output in session.get_outputs()]

    def __call__(self, images: torch.Tensor):
        """Run float images (B, 3, H, W); return the output tensor, or a dict by output name."""
        pixels = np.ascontiguousarray(images.detach().cpu().numpy(), np.float32)
        outputs = [torch.from_numpy(output).to(images.device)
                   for output in self.session.run(None, {self.input_name: pixels})]
        return outputs[0] if len(outputs) == 1 else dict(zip(self.output_names, outputs))


def load_onnx_model(path, device='cpu',
                    threads: int | None = None) -> tuple[OnnxNetwork, dict | None]:
    """Open an exported model with ONNX Runtime.

    Args:
        path: .onnx file written by `pose-kp export`.
        device: torch device the pipeline runs on (chooses the execution providers).
        threads: intra-op threads (None: torch.get_num_threads()).

    Returns:
        (network, meta): meta is the metadata dict recorded at export, or None if it has none
        (the caller checks it with checkpoint_format.check_format).

    Raises:
        CheckpointError: onnxruntime missing, file missing or not a readable ONNX model.
    """
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError(f'{path}: onnxruntime is not installed (pip install onnxruntime; '
                              'pinned in requirements.txt): needed to run .onnx models') from None
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: model file not found')
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = execution_providers(device, onnxruntime.get_available_providers())
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own types for missing or corrupt files
        lines = str(error).strip().splitlines()
        reason = lines[0][:160] if lines else type(error).__name__
        raise CheckpointError(f'{path}: unreadable ONNX model ({reason})') from None
    if torch.device(device).type == 'cuda' and session.get_providers()[0] not in GPU_PROVIDERS:
        LOGGER.warning('%s: device %s asked but ONNX Runtime has no GPU provider here '
                       '(onnxruntime-gpu not installed?): running on the CPU', path, device)
    try:
        meta = json.loads(session.get_modelmeta().custom_metadata_map.get(META_KEY, 'null'))
    except ValueError:
        meta = None
    return OnnxNetwork(session), meta
