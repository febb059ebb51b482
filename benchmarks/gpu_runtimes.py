"""The runtimes benchmarks/bench_gpu.py measures, whether this machine has them, and its facts.

RUNTIMES lists (name, library, device, ONNX Runtime GPU providers asked for); machine_info()
describes the CPU, GPUs, driver, CUDA, torch and ONNX Runtime; missing_reason() and
fallback_reason() say in one line why a runtime is absent or fell back; runtime_environment()
steers the pipeline's ONNX Runtime sessions through the environment.
"""

from contextlib import contextmanager
import importlib.metadata
import os
import platform
import re
import subprocess

import onnxruntime
import torch

from pose_kp_ros.network.onnx_runtime import PROVIDERS_ENV, TRT_CACHE_ENV
from pose_kp_ros.pipeline.stage_timer import cpu_model

CUDA, TRT = 'CUDAExecutionProvider', 'TensorrtExecutionProvider'
RUNTIMES = (  # name, library, device, ONNX Runtime GPU providers asked for (best first)
    ('torch-cpu', 'torch', 'cpu', None),
    ('torch-cuda', 'torch', 'cuda', None),
    ('ort-cpu', 'onnxruntime', 'cpu', None),
    ('ort-cuda', 'onnxruntime', 'cuda', [CUDA]),
    ('ort-tensorrt', 'onnxruntime', 'cuda', [TRT, CUDA]),
)


def command_output(*command):
    """Return a command's stdout, or '' when it is missing or fails."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ''


def package_version(*names):
    """Return 'name version' of the first installed distribution among names, else None."""
    for name in names:
        try:
            return f'{name} {importlib.metadata.version(name)}'
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def machine_info():
    """Return the CPU, GPU, driver, CUDA, torch and ONNX Runtime facts of this machine."""
    gpus = [line.split(', ') for line in command_output(
        'nvidia-smi', '--query-gpu=name,driver_version,memory.total',
        '--format=csv,noheader').strip().splitlines()]
    driver_cuda = re.search(r'CUDA Version:\s*([\d.]+)', command_output('nvidia-smi'))
    try:
        from onnxruntime.capi import build_and_package_info as ort_build
    except ImportError:
        ort_build = None
    return {
        'cpu_model': cpu_model(), 'cpu_count': os.cpu_count(), 'machine': platform.machine(),
        'python': platform.python_version(),
        'gpus': [dict(zip(('name', 'driver', 'memory'), gpu)) for gpu in gpus],
        'driver_cuda_version': driver_cuda.group(1) if driver_cuda else None,
        'torch': torch.__version__, 'torch_cuda_version': torch.version.cuda,
        'torch_cuda_available': torch.cuda.is_available(),
        'torch_gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'cudnn': torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        'onnxruntime': onnxruntime.__version__,
        'onnxruntime_package': getattr(ort_build, 'package_name', None),
        'onnxruntime_cuda_version': getattr(ort_build, 'cuda_version', None),
        'ort_providers_available': onnxruntime.get_available_providers(),
        'tensorrt': package_version('tensorrt', 'tensorrt-cu13', 'tensorrt-cu12',
                                    'tensorrt-cu13-libs', 'tensorrt-cu12-libs'),
    }


def missing_reason(library, device, providers):
    """Return why a runtime cannot run on this machine, or None when it can be tried."""
    if library == 'torch':
        if device == 'cuda' and not torch.cuda.is_available():
            return f'torch {torch.__version__} sees no CUDA device'
        return None
    available = onnxruntime.get_available_providers()
    absent = [name for name in providers or () if name not in available]
    if absent:
        return (f"{absent[0]} is not among onnxruntime {onnxruntime.__version__}'s providers "
                f"({', '.join(available)}): install onnxruntime-gpu")
    return None


def fallback_reason(providers, running):
    """Return why a session is not what was asked (its best provider fell back), or None."""
    if providers and running[0] != providers[0]:
        return (f'{providers[0]} could not start here (its libraries missing?): ONNX Runtime '
                f"fell back to {', '.join(running)}")
    return None


@contextmanager
def runtime_environment(providers, trt_cache):
    """Set the variables that steer the pipeline's ONNX Runtime sessions (restored after)."""
    saved = {key: os.environ.get(key) for key in (PROVIDERS_ENV, TRT_CACHE_ENV)}
    os.environ[TRT_CACHE_ENV] = str(trt_cache)
    if providers:
        os.environ[PROVIDERS_ENV] = ','.join(providers)
    else:
        os.environ.pop(PROVIDERS_ENV, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
