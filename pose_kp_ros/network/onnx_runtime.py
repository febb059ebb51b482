"""ONNX Runtime inference of exported networks (`pose-kp export --out FILE.onnx`).

An exported model carries its checkpoint's metadata as JSON in the ONNX model's metadata_props
under META_KEY; the loaders of both networks (checkpoint.load_model, ObjectDetector.from_file)
check it like a checkpoint's. `OnnxNetwork` is called like the torch module it was exported
from: a float tensor (B, 3, H, W) in, a tensor (one output) or a dict of tensors out, on the
input's device.

Execution providers: on a CUDA device the available ones of TensorRT and CUDA (onnxruntime-gpu),
then the CPU; on the CPU the CPU only. `providers` (or the environment variable
POSE_KP_ONNX_PROVIDERS, comma-separated names, e.g. CUDAExecutionProvider to leave TensorRT out)
narrows the GPU ones. ONNX Runtime falls back by itself (to CUDA, then the CPU) when a provider
cannot start, e.g. TensorRT's libraries are missing: `OnnxNetwork.providers` says which run, and
a warning names the asked ones that do not.

TensorRT gets an explicit optimisation profile for the dynamic batch axis (TRT_BATCH: min, opt,
max), so one engine serves every crop count without rebuilds; a call with more images than the
profile's max runs in chunks of max. Its engines (and timing cache) are kept in `trt_cache_dir`,
or the folder POSE_KP_TRT_CACHE names: building them takes seconds to minutes, loading them
from the cache far less. Intra-op threads: the process's torch thread count
(`torch.set_num_threads`: the node's `torch_threads`, `pose-kp eval-lmo --threads`) unless given;
idle ones sleep rather than spin, so they leave the cores to the node's other work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from pose_kp_ros.network.checkpoint_format import CheckpointError

if TYPE_CHECKING:
    import onnxruntime

META_KEY = 'pose_kp_meta'
GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
PROVIDERS_ENV = 'POSE_KP_ONNX_PROVIDERS'
TRT_CACHE_ENV = 'POSE_KP_TRT_CACHE'
TRT_BATCH = (1, 4, 32)
"""TensorRT profile of the batch axis: min, opt (the kernels are tuned for it), max."""
LOGGER = logging.getLogger(__name__)


def execution_providers(device: torch.device | str, available: list[str],
                        only: Sequence[str] | None = None,
                        input_shapes: Mapping[str, Sequence[int]] | None = None,
                        trt_batch: Sequence[int] = TRT_BATCH,
                        trt_cache_dir: Path | str | None = None,
                        ) -> list[str | tuple[str, dict]]:
    """Return the ONNX Runtime providers (with options) for a torch device, best first.

    available: onnxruntime.get_available_providers(). only: provider names to keep of the GPU
    ones (None: all). input_shapes: {input name: per-image shape (C, H, W)} for TensorRT's
    batch profile (None: none, TensorRT then sizes engines by the shapes it sees).
    trt_cache_dir: folder for TensorRT's engine and timing caches (None: no cache).
    """
    device = torch.device(device)
    if device.type != 'cuda':
        return ['CPUExecutionProvider']
    providers = []
    for name in GPU_PROVIDERS:
        if name in available and (only is None or name in only):
            options = {'device_id': device.index or 0}
            if name == 'TensorrtExecutionProvider':
                options.update(tensorrt_options(input_shapes, trt_batch, trt_cache_dir))
            providers.append((name, options))
    return providers + ['CPUExecutionProvider']


def tensorrt_options(input_shapes: Mapping[str, Sequence[int]] | None = None,
                     trt_batch: Sequence[int] = TRT_BATCH,
                     cache_dir: Path | str | None = None) -> dict[str, str]:
    """Return TensorRT provider options: the batch profile of each input, the engine cache.

    >>> tensorrt_options({'images': (3, 128, 128)}, (1, 4, 32))['trt_profile_max_shapes']
    'images:32x3x128x128'
    """
    options = {}
    if input_shapes:
        for key, batch in zip(('min', 'opt', 'max'), trt_batch):
            options[f'trt_profile_{key}_shapes'] = ','.join(
                f"{name}:{'x'.join(str(int(d)) for d in (batch, *shape))}"
                for name, shape in input_shapes.items())
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        options.update(trt_engine_cache_enable='True', trt_engine_cache_path=str(cache_dir),
                       trt_timing_cache_enable='True', trt_timing_cache_path=str(cache_dir))
    return options


class OnnxNetwork:
    """An ONNX Runtime session called like the torch network it was exported from.

    max_batch: the most images one session.run takes (TensorRT's profile); a larger batch runs
    in chunks. None: all images in one run.
    """

    def __init__(self, session: onnxruntime.InferenceSession, max_batch: int | None = None,
                 ) -> None:
        self.session = session
        self.max_batch = max_batch
        self.input_names = [item.name for item in session.get_inputs()]
        self.input_name = self.input_names[0]
        self.output_names = [output.name for output in session.get_outputs()]
        # TensorRT's profiles start at a batch of 1: an object without crops gets a blank one
        self.pad_empty_inputs = 'TensorrtExecutionProvider' in session.get_providers()

    @property
    def providers(self) -> list[str]:
        """Return the providers the session runs on, best first (after any fallback)."""
        return self.session.get_providers()

    def __call__(self, images: torch.Tensor, objects: torch.Tensor | None = None,
                 ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Run float images (B, 3, H, W); return the output tensor, or a dict by output name.

        A model of per-object heads (an input per object, export_model.py) needs `objects`,
        each image's object index (B,); it returns the heatmaps of all objects' channels
        (B, N, H, W), each image's other objects' channels zero, like the torch network.
        """
        pixels = np.ascontiguousarray(images.detach().cpu().numpy(), np.float32)
        step = self.max_batch or max(len(pixels), 1)
        starts = range(0, max(len(pixels), 1), step)
        if len(self.input_names) > 1:
            if objects is None or len(objects) != len(pixels):
                raise ValueError(f'a model of per-object heads ({len(self.input_names)} '
                                 f'inputs) needs the object index of each of the {len(pixels)} '
                                 'images')
            index = np.asarray(objects.detach().cpu().numpy() if isinstance(objects, torch.Tensor)
                               else objects, dtype=np.int64)
            heatmaps = [self._object_heatmaps(pixels[start:start + step],
                                              index[start:start + step]) for start in starts]
            return torch.from_numpy(np.concatenate(heatmaps)).to(images.device)
        chunks = [self.session.run(None, {self.input_name: pixels[start:start + step]})
                  for start in starts]
        outputs = [torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0])
                   .to(images.device) for parts in zip(*chunks)]
        return outputs[0] if len(outputs) == 1 else dict(zip(self.output_names, outputs))

    def _object_heatmaps(self, pixels: np.ndarray, objects: np.ndarray) -> np.ndarray:
        """Return (B, N, H, W) of images (B, 3, S, S) of objects (B,), one run for all."""
        if len(objects) and not 0 <= objects.min() <= objects.max() < len(self.input_names):
            raise ValueError(f'object indices {sorted(set(objects.tolist()))} outside the '
                             f"model's {len(self.input_names)} objects")
        rows = [objects == k for k in range(len(self.input_names))]
        feeds = {name: pixels[mine] for name, mine in zip(self.input_names, rows)}
        if self.pad_empty_inputs:
            blank = np.zeros((1, *pixels.shape[1:]), np.float32)
            feeds = {name: batch if len(batch) else blank for name, batch in feeds.items()}
        parts = [part[:np.count_nonzero(mine)]
                 for part, mine in zip(self.session.run(None, feeds), rows)]
        counts = [part.shape[1] for part in parts]
        heatmaps = np.zeros((len(pixels), sum(counts), *parts[0].shape[2:]), np.float32)
        for mine, part, start in zip(rows, parts, np.cumsum([0, *counts[:-1]])):
            heatmaps[mine, start:start + part.shape[1]] = part
        return heatmaps


def static_input_shapes(path: Path | str, onnxruntime: ModuleType) -> dict[str, list[int]] | None:
    """Return {input name: shape without the batch axis} of a model, None if not all static."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=['CPUExecutionProvider'])
    shapes = {item.name: item.shape[1:] for item in session.get_inputs()}
    if all(isinstance(d, int) for shape in shapes.values() for d in shape):
        return shapes
    return None


def load_onnx_model(path: Path | str, device: torch.device | str = 'cpu',
                    threads: int | None = None, providers: Sequence[str] | None = None,
                    trt_cache_dir: Path | str | None = None,
                    trt_batch: Sequence[int] = TRT_BATCH) -> tuple[OnnxNetwork, dict | None]:
    """Open an exported model with ONNX Runtime.

    Args:
        path: .onnx file written by `pose-kp export`.
        device: torch device the pipeline runs on (chooses the execution providers).
        threads: intra-op threads (None: torch.get_num_threads()).
        providers: names of the GPU providers to use on a CUDA device (None: those listed in
            POSE_KP_ONNX_PROVIDERS, else every available one).
        trt_cache_dir: TensorRT engine cache folder (None: POSE_KP_TRT_CACHE, else no cache).
        trt_batch: TensorRT's (min, opt, max) batch profile.

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
    # idle intra-op threads sleep instead of spinning: spinning took the node from 10 to 6.5
    # poses/s at 2 threads on 2 cores (docs/performance.md, "Threads and batching")
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if providers is None and os.environ.get(PROVIDERS_ENV):
        providers = [name.strip() for name in os.environ[PROVIDERS_ENV].split(',')]
    available = onnxruntime.get_available_providers()
    trt = torch.device(device).type == 'cuda' and 'TensorrtExecutionProvider' in available \
        and (providers is None or 'TensorrtExecutionProvider' in providers)
    try:
        chosen = execution_providers(
            device, available, providers, static_input_shapes(path, onnxruntime) if trt else None,
            trt_batch, (trt_cache_dir or os.environ.get(TRT_CACHE_ENV)) if trt else None)
        session = onnxruntime.InferenceSession(str(path), options, providers=chosen)
    except Exception as error:  # onnxruntime raises its own types for missing or corrupt files
        lines = str(error).strip().splitlines()
        reason = lines[0][:160] if lines else type(error).__name__
        raise CheckpointError(f'{path}: unreadable ONNX model ({reason})') from None
    warn_missing_providers(path, device, chosen, session.get_providers())
    try:
        meta = json.loads(session.get_modelmeta().custom_metadata_map.get(META_KEY, 'null'))
    except ValueError:
        meta = None
    return OnnxNetwork(session, trt_batch[2] if trt else None), meta


def warn_missing_providers(path: Path | str, device: torch.device | str,
                           asked: Sequence[str | tuple[str, dict]], running: Sequence[str],
                           ) -> None:
    """Log a warning for each GPU provider asked for that the session does not run on."""
    if torch.device(device).type != 'cuda':
        return
    asked = [item[0] if isinstance(item, tuple) else item for item in asked]
    if not set(GPU_PROVIDERS) & set(asked):
        LOGGER.warning('%s: device %s asked but ONNX Runtime has no GPU provider here '
                       '(onnxruntime-gpu not installed?): running on the CPU', path, device)
    for name in GPU_PROVIDERS:
        if name in asked and name not in running:
            LOGGER.warning('%s: %s could not start (its libraries missing?): running on %s',
                           path, name, ', '.join(running))
