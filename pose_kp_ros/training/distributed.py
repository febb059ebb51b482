"""Data-parallel training: seeded resumable sampler, process group, CPU threads, rank sums."""

from collections.abc import Iterator
import math
import os

import cv2
import numpy as np
import torch
import torch.distributed as dist

from pose_kp_ros.training.config import TrainConfigError


class EpochSampler(torch.utils.data.Sampler):
    """Seeded per-epoch order, sharded over DDP ranks, able to skip batches already trained.

    Training order: a permutation drawn from (seed, epoch), padded by wrapping to a multiple of
    world_size, then every world_size-th index from `rank`. Validation (shuffle False): indices
    in order, unpadded, so every sample is counted once over all ranks.
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order and skip its first `skip` samples of this rank."""
        self.epoch, self.skip = epoch, skip

    def _indices(self):
        if not self.shuffle:
            return np.arange(self.size)[self.rank::self.world_size]
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size)
        padded = np.resize(order, math.ceil(self.size / self.world_size) * self.world_size)
        return padded[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices for the epoch."""
        return iter(self._indices()[self.skip:].tolist())

    def __len__(self) -> int:
        """Return the number of indices this rank yields."""
        return max(len(self._indices()) - self.skip, 0)


def worker_init(_: int) -> None:
    """Keep DataLoader workers to one OpenCV thread each (they run in parallel already)."""
    cv2.setNumThreads(1)


def distributed_setup(device_choice: str) -> tuple[int, int, torch.device]:
    """Return (rank, world_size, device); join the process group under torchrun.

    device_choice: 'auto' (CUDA when available), 'cpu' or 'cuda'.
    """
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = device_choice == 'cuda' or (device_choice == 'auto' and torch.cuda.is_available())
    if device_choice == 'cuda' and not torch.cuda.is_available():
        raise TrainConfigError('--device cuda requested but CUDA is not available')
    device = torch.device(f'cuda:{local_rank}' if use_cuda else 'cpu')
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1:
        dist.init_process_group('nccl' if use_cuda else 'gloo')
    return rank, world_size, device


def autocast_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """Return the mixed-precision dtype of `amp` on `device`, or None for float32 throughout.

    float16 on CUDA (with a gradient scaler); bfloat16 on CPUs that compute it natively
    (AVX512-BF16 or AMX: 1.6x faster training steps, docs/training.md); elsewhere bfloat16 is
    emulated and slower, so float32.
    """
    if not amp:
        return None
    if device.type == 'cuda':
        return torch.float16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.bfloat16 if device.type == 'cpu' and native else None


def set_cpu_threads(threads: int = 0) -> None:
    """Set torch's CPU threads: `threads`, or the usable cores / training processes if 0."""
    processes = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
    per_process = len(os.sched_getaffinity(0)) // processes
    torch.set_num_threads(threads or max(per_process, 1))


def all_reduce_sums(sums: dict[str, float], device: torch.device,
                    world_size: int) -> dict[str, float]:
    """Return a dict of numbers summed over DDP ranks (the dict itself with one process)."""
    if world_size == 1:
        return sums
    keys = sorted(sums)
    values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, values.tolist()))
