"""Keypoint network cost: ms per crop for each preset at batch 1 and 8 (CPU; CUDA fp16 if present).

    python benchmarks/bench_network.py [--keypoints 8] [--repeats 10] [--threads 0]

Prints a table and writes results/bench_network.json. Times are medians over repeats of one
forward pass (inference mode, eval batch norm) divided by the batch size, measured after warm-up,
with all cores of the process (--threads) and with one thread. On one thread, at batch 1, 3 and
8, torch and ONNX Runtime (the network exported as `pose-kp export` does, random weights) run
the same inputs alternately, so that both see the same machine load.
The machine's load average is recorded with the numbers: other jobs on a shared machine slow them.
"""

import argparse
import os
from pathlib import Path
import platform
import statistics
import tempfile
import time

import onnxruntime
import torch

from pose_kp_ros import strict_json
from pose_kp_ros.network.hourglass import (
    PRESETS,
    FinalHeatmaps,
    HourglassConfig,
    count_parameters,
)
from pose_kp_ros.network.keypoint_net import build_keypoint_network
from pose_kp_ros.network.onnx_export import write_onnx
from pose_kp_ros.network.onnx_runtime import load_onnx_model
from pose_kp_ros.pipeline.stage_timer import cpu_model

RESULTS = Path(__file__).resolve().parent.parent / 'results' / 'bench_network.json'


def time_forward(models, batch, size, device, repeats, dtype=torch.float32):
    """Return the median ms per crop of each model(batch x 3 x size x size) on device.

    models: callables run alternately on the same input, each after the other in every repeat
    (two warm-up repeats first, not counted). size: an int, or (height, width).
    """
    height, width = (size, size) if isinstance(size, int) else size
    images = torch.randn(batch, 3, height, width, device=device, dtype=dtype)
    times = [[] for _ in models]
    with torch.inference_mode():
        for i in range(repeats + 2):
            for model, model_times in zip(models, times):
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                started = time.perf_counter()
                model(images)
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                if i >= 2:
                    model_times.append((time.perf_counter() - started) * 1000 / batch)
    return [statistics.median(model_times) for model_times in times]


def onnx_network(model, size, folder, threads):
    """Export `model` to ONNX (as pose-kp export does) and return it in ONNX Runtime."""
    path = Path(folder) / 'network.onnx'
    write_onnx(FinalHeatmaps(model).eval(), torch.zeros(2, 3, size, size), ['heatmaps'], '{}',
               path)
    return load_onnx_model(path, threads=threads)[0]


def runtime_rows(model, size, repeats):
    """Return {torch|onnx}_1thread_ms_per_crop_b{1,3,8} and their ratios, one thread each."""
    torch.set_num_threads(1)
    row = {}
    with tempfile.TemporaryDirectory() as folder:
        network = onnx_network(model, size, folder, threads=1)
        final = FinalHeatmaps(model).eval()
        for batch in (1, 3, 8):
            torch_ms, onnx_ms = time_forward([final, network], batch, size,
                                             torch.device('cpu'), repeats)
            row[f'cpu_1thread_ms_per_crop_b{batch}'] = torch_ms
            row[f'onnx_1thread_ms_per_crop_b{batch}'] = onnx_ms
            row[f'torch_over_onnx_b{batch}'] = torch_ms / onnx_ms
    return row



def main():
    """Run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--keypoints', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=0, help='0: all cores of this process')
    parser.add_argument('--out', default=str(RESULTS))
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    load_at_start = os.getloadavg()
    rows = []
    for name in sorted(PRESETS):
        config = HourglassConfig.from_preset(name, args.keypoints)
        model = build_keypoint_network(config).eval()
        row = {'preset': name, 'params': count_parameters(model),
               'input_size': config.input_size, 'heatmap_size': config.heatmap_size,
               'num_stacks': config.num_stacks, 'features': config.features,
               'block': config.block, 'encoder': config.encoder}
        repeats = max(args.repeats // 3, 3) if config.input_size >= 256 else args.repeats
        for batch in (1, 8):
            row[f'cpu_ms_per_crop_b{batch}'], = time_forward(
                [model], batch, config.input_size, torch.device('cpu'), repeats)
        row.update(runtime_rows(model, config.input_size, repeats))
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            cuda = torch.device('cuda')
            half = model.to(cuda).half()
            for batch in (1, 8):
                row[f'cuda_fp16_ms_per_crop_b{batch}'], = time_forward(
                    [half], batch, config.input_size, cuda, args.repeats, torch.float16)
        rows.append(row)
        print(f'{name}: done', flush=True)
    report = {
        'torch': torch.__version__, 'onnxruntime': onnxruntime.__version__, 'threads': threads,
        'cpu_count': os.cpu_count(), 'machine': platform.machine(), 'cpu_model': cpu_model(),
        'load_average_1_5_15_start': load_at_start,
        'load_average_1_5_15_end': os.getloadavg(), 'cuda': torch.cuda.is_available(),
        'keypoints': args.keypoints, 'repeats': args.repeats, 'presets': rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(args.out, report)
    header = (f"{'preset':<9} {'params':>9} {'input':>6} {'heatmap':>8} {'cpu b1 ms':>10} "
              f"{'cpu b8 ms/crop':>15} {'1 thread b8':>12} {'cuda fp16 b8':>13}")
    print(header)
    print('-' * len(header))
    for row in rows:
        cuda = row.get('cuda_fp16_ms_per_crop_b8')
        print(f"{row['preset']:<9} {row['params']:>9,} {row['input_size']:>6} "
              f"{row['heatmap_size']:>8} {row['cpu_ms_per_crop_b1']:>10.1f} "
              f"{row['cpu_ms_per_crop_b8']:>15.1f} {row['cpu_1thread_ms_per_crop_b8']:>12.1f} "
              f"{'n/a' if cuda is None else f'{cuda:.2f}':>13}")
    print('\none thread, ms per crop:  torch / ONNX Runtime (torch time over ONNX Runtime time)')
    for row in rows:
        print(f"{row['preset']:<9} " + '   '.join(
            f"b{batch}: {row[f'cpu_1thread_ms_per_crop_b{batch}']:.1f} / "
            f"{row[f'onnx_1thread_ms_per_crop_b{batch}']:.1f} "
            f"({row[f'torch_over_onnx_b{batch}']:.2f}x)" for batch in (1, 3, 8)))
    print(f"{report['cpu_model']}, torch {report['torch']}, onnxruntime "
          f"{report['onnxruntime']}, {threads} threads, 1-min load average "
          f"{load_at_start[0]:.1f} at start, {report['load_average_1_5_15_end'][0]:.1f} at end "
          f'(other jobs share these cores) -> {args.out}')


if __name__ == '__main__':
    main()
