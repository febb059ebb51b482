"""Threads and batch sizes by measurement, on one core and on two (what the node's defaults use).

    python benchmarks/bench_threads.py [--threads 1 2] [--cores 0 0,1] [--frames 100]
                                       [--node-seconds 45] [--repeats 30]

For every set of cores (the benchmark's processes are held to them, as `taskset -c` does) and
every intra-op thread count of ONNX Runtime / torch:
- the shipped keypoint network (models/driller/keypoints.onnx): ms for B crops in one run call
  against B calls of one crop, B = 1..6 (does batching all crops pay?), and the detector;
- `pose-kp eval-lmo --object driller --threads T` on the first `--frames` photos: median ms
  per frame;
- `benchmarks/bench_node.py --rate 30 --torch-threads T`: the node's poses/s and latency.
Writes results/bench_threads.json and prints a table. No assertions: figures only.
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

from node_harness import run_held_to
import numpy as np

from pose_kp_ros import strict_json
from pose_kp_ros.network.onnx_runtime import load_onnx_model
from pose_kp_ros.paths import executable_path
from pose_kp_ros.pipeline.stage_timer import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'results' / 'bench_threads.json'
MODELS = ROOT / 'models' / 'driller'


def _median_ms(calls, repeats):
    """Return the median wall time in ms of each callable, run alternately `repeats` times.

    Two warm-up rounds are not counted; alternating lets every call see the same machine load.
    """
    times = [[] for _ in calls]
    for i in range(repeats + 2):
        for call, call_times in zip(calls, times):
            started = time.perf_counter()
            call()
            if i >= 2:
                call_times.append((time.perf_counter() - started) * 1e3)
    return [statistics.median(call_times) for call_times in times]


def _batch_calls(network, crops):
    """Return (one run call on all crops, one run call per crop) of an ONNX network."""
    def one_call():
        network.session.run(None, {network.input_name: crops})

    def separate_calls():
        for i in range(len(crops)):
            network.session.run(None, {network.input_name: crops[i:i + 1]})
    return one_call, separate_calls


def network_times(threads: int, repeats: int) -> dict:
    """Return {keypoints_batch{B}_one_call_ms, keypoints_batch{B}_separate_calls_ms, detector_ms}.

    Shipped ONNX models, `threads` intra-op threads, random inputs at the models' sizes.
    """
    keypoints, meta = load_onnx_model(MODELS / 'keypoints.onnx', threads=threads)
    size = int(meta['input_size'])
    detector, detector_meta = load_onnx_model(MODELS / 'detector.onnx', threads=threads)
    rng = np.random.default_rng(0)
    row = {}
    for batch in range(1, 7):
        crops = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
        one, separate = _median_ms(_batch_calls(keypoints, crops), repeats)
        row[f'keypoints_batch{batch}_one_call_ms'] = one
        row[f'keypoints_batch{batch}_separate_calls_ms'] = separate
    width, height = detector_meta['input_size']
    image = rng.normal(size=(1, 3, height, width)).astype(np.float32)
    row['detector_ms'], = _median_ms([_batch_calls(detector, image)[0]], repeats)
    return row


def eval_lmo_ms(cores, threads: int, frames: int) -> dict:
    """Return eval-lmo's median / p95 ms per frame and ADD < 0.1 d on the first `frames` photos."""
    with tempfile.TemporaryDirectory() as folder:
        run_held_to(cores, [executable_path('pose-kp'), 'eval-lmo', '--object', 'driller',
                             '--threads', str(threads), '--frames', str(frames),
                             '--mosaic-frames', '1', '--output-dir', folder])
        summary = json.loads(Path(folder, 'driller_detector_summary.json').read_text())
    return {'eval_lmo_median_ms': summary['runtime_median_ms'],
            'eval_lmo_p95_ms': summary['runtime_p95_ms'],
            'eval_lmo_add_0.1d': summary['add_0.1d_accuracy'], 'eval_lmo_frames': frames}


def node_rates(cores, threads: int, seconds: float) -> dict:
    """Return the node's poses/s, latency median / p95 ms and CPU use at 30 Hz input."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder, 'node.json')
        run_held_to(cores, [sys.executable, str(ROOT / 'benchmarks' / 'bench_node.py'),
                             '--rate', '30', '--seconds', str(seconds),
                             '--torch-threads', str(threads), '--output', str(output)])
        result = json.loads(output.read_text())
    return {'node_poses_per_s': result['output_rate_hz'],
            'node_latency_median_ms': result['latency_median_ms'],
            'node_latency_p95_ms': result['latency_p95_ms'],
            'node_cpu_percent_of_one_core': result['node_cpu_percent_of_one_core']}


def _network_in_child(cores, threads, repeats):
    """Run network_times in a child process held to `cores` (threads start there)."""
    output = run_held_to(cores, [sys.executable, __file__, '--network-only', '--threads',
                                  str(threads), '--repeats', str(repeats)])
    return json.loads(output.strip().splitlines()[-1])


def main():
    """Measure every (cores, threads) setting, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--cores', nargs='+', default=['0', '0,1'],
                        help='core sets, comma-separated core numbers each')
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--node-seconds', type=float, default=45.0)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--network-only', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--output', default=str(RESULTS))
    args = parser.parse_args()
    if args.network_only:
        print(json.dumps(network_times(args.threads[0], args.repeats)))
        return 0
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    rows = []
    for core_text in args.cores:
        cores = {int(core) for core in core_text.split(',')}
        for threads in args.threads:
            print(f'cores {core_text}, {threads} thread(s) ...', flush=True)
            row = {'cores': sorted(cores), 'threads': threads,
                   'load_average_1min_at_start': os.getloadavg()[0]}
            row.update(_network_in_child(cores, threads, args.repeats))
            row.update(eval_lmo_ms(cores, threads, args.frames))
            if args.node_seconds > 0:
                row.update(node_rates(cores, threads, args.node_seconds))
            rows.append(row)
    report = {'cpu_model': cpu_model(), 'cpu_count': os.cpu_count(), 'rows': rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(args.output, report)
    print(table(rows))
    return 0


def table(rows) -> str:
    """Return the rows as a text table: one column per (cores, threads) setting."""
    keys = [key for key in rows[0] if key not in ('cores', 'threads')]
    header = ['cores ' + ','.join(map(str, r['cores'])) + f' / {r["threads"]}t' for r in rows]
    lines = [f'{"":<40}' + ''.join(f'{h:>16}' for h in header)]
    for key in keys:
        cells = [row.get(key) for row in rows]
        lines.append(f'{key:<40}' + ''.join(
            f'{c:>16.2f}' if isinstance(c, float) else f'{c!s:>16}' for c in cells))
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
