"""The shipped driller models on every runtime present: CUDA and TensorRT beside CPU references.

    python benchmarks/bench_gpu.py [--repeats 20] [--frames 50] [--node-seconds 60]
                                   [--threads 1] [--trt-cache DIR] [--out results/bench_gpu.json]

Runtimes: torch on the CPU and on CUDA; ONNX Runtime with the CPU provider, the CUDA provider
and the TensorRT provider (onnxruntime-gpu). A runtime this machine lacks gets one line saying
why, and the others are still measured, so the CPU reference rows run anywhere (exit 0).
For each runtime:
- keypoint network (models/driller/keypoints.onnx; torch: the same architecture from its
  metadata, random weights) at batch 1, 2, 3, 4 and 8, all crops in one run call: median ms
  per call over --repeats after two warm-up calls (bench_network.time_forward); ONNX Runtime's
  input and output in host memory as the pipeline passes them (copies included), torch's on its
  device; and the detector (models/driller/detector.onnx, torch: detector.pt) at batch 1.
- first run: loading plus the first call, not in the medians. TensorRT builds its engines then
  (into the engine cache --trt-cache, by default an empty temporary folder: a folder that
  already holds engines makes the first run a cached start too); a second session then starts
  from that cache ('cached start'). The pipeline and node rows use the same cache.
- the providers the sessions actually run on (session.get_providers(), after ONNX Runtime's own
  fallback: a TensorRT that cannot start runs as CUDA and is reported missing, not timed as
  TensorRT), and the largest heatmap difference from ONNX Runtime on the CPU on the same crops.
Then, per ONNX Runtime runtime, the whole pipeline per LM-O frame on the first --frames photos
(pose-kp eval-lmo's code path: pipeline.multi_evaluation.evaluate_frames, detector boxes; one
warm-up frame and each batch size once first): runtime median / p95 per frame, its stages,
ADD < 0.1 d and detection rate (the same answers on every runtime is the check); and the node's
latency (benchmarks/bench_node.py --device ..., --node-seconds at 30 Hz; 0 skips it; it needs
rclpy and the installed pose_kp_node). Reports the GPU, driver and CUDA versions, ONNX Runtime's
providers and the CPU model. Writes --out and prints a table; no assertions.
"""

import argparse
import importlib.util
import json
import os
from pathlib import Path
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from bench_network import time_forward
import cv2
from gpu_runtimes import (
    RUNTIMES,
    TRT,
    fallback_reason,
    machine_info,
    missing_reason,
    runtime_environment,
)
import numpy as np
from report_format import number
import torch

from pose_kp_ros import strict_json
from pose_kp_ros.data.package_data import lmo_frames
from pose_kp_ros.network.detector import ObjectDetector
from pose_kp_ros.network.hourglass import FinalHeatmaps, HourglassConfig
from pose_kp_ros.network.keypoint_net import build_keypoint_network
from pose_kp_ros.network.onnx_runtime import (
    PROVIDERS_ENV,
    TRT_BATCH,
    TRT_CACHE_ENV,
    load_onnx_model,
)
from pose_kp_ros.paths import data_path, executable_path
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.pipeline.evaluation import model_points, summarize
from pose_kp_ros.pipeline.multi_evaluation import EvalFrame, evaluate_frames
from pose_kp_ros.pipeline.stage_timer import TOTAL, StageHistory

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'results' / 'bench_gpu.json'
OBJECT = 'driller'
BATCHES = (1, 2, 3, 4, 8)


def models(library, device, providers, threads, trt_cache):
    """Return (keypoint network, detector, facts) of one runtime; facts: providers, first run."""
    folder = data_path('models', OBJECT)
    if library == 'torch':
        _, meta = load_onnx_model(folder / 'keypoints.onnx', threads=threads)
        config = HourglassConfig.from_dict(meta['architecture'])
        network = FinalHeatmaps(build_keypoint_network(config)).eval().to(device)
        detector = ObjectDetector.from_file(folder / 'detector.pt', device=device).model
        return network, detector, {'keypoint_weights': 'random (the architecture of '
                                   'keypoints.onnx)', 'detector_weights': 'detector.pt'}
    facts = {}
    loaded = []
    input_size, detector_size = input_sizes()
    for name, trt_batch, size in (('keypoints', TRT_BATCH, (input_size, input_size)),
                                  ('detector', (1, 1, TRT_BATCH[2]), detector_size)):
        for attempt in ('first_run_s', 'cached_start_s'):
            started = time.perf_counter()
            network, _ = load_onnx_model(folder / f'{name}.onnx', device, threads, providers,
                                         trt_cache, trt_batch)
            network(torch.zeros(1, 3, *size))
            facts[f'{name}_{attempt}'] = time.perf_counter() - started
            if TRT not in (providers or ()):
                break  # an engine cache only for TensorRT
        facts[f'{name}_providers'] = network.providers
        loaded.append(network)
    return loaded[0], loaded[1], facts


def time_models(network, detector, library, device, repeats, input_size, detector_size):
    """Return {b<N>: ms per call} of the keypoint network and the detector's ms at batch 1."""
    torch_device = torch.device(device if library == 'torch' else 'cpu')
    row = {}
    for batch in BATCHES:
        per_crop, = time_forward([network], batch, input_size, torch_device, repeats)
        row[f'b{batch}'] = per_crop * batch
    row['detector_b1'], = time_forward([detector], 1, detector_size, torch_device, repeats)
    return row


@torch.inference_mode()
def heatmaps_difference(network, reference, input_size):
    """Return the largest |difference| of two networks' outputs on the same 8 random crops."""
    images = torch.randn(8, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    return float((network(images).float().cpu() - reference(images).float().cpu()).abs().max())


def lmo_eval_frames(count):
    """Return the first `count` LM-O photos of the object whose files exist, as EvalFrames."""
    frames = [EvalFrame(name, path, K, {OBJECT: (R, t, visible)})
              for name, path, K, R, t, visible in lmo_frames(OBJECT) if Path(path).is_file()]
    return frames[:count]


def pipeline_row(device, frames, threads):
    """Run eval-lmo's code path on the frames on `device`; return its figures."""
    torch.set_num_threads(threads)
    estimator = KeypointPoseEstimator.from_config(
        str(data_path('models', OBJECT, 'pipeline.yaml')), device=device)
    model = estimator.objects[OBJECT].model
    image = cv2.imread(str(frames[0].path), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    started = time.perf_counter()
    estimator(image, frames[0].K)  # warm-up (TensorRT engines load or build here) and every
    box = np.array([[200.0, 100.0, 400.0, 350.0]])  # batch size once (new shapes cost once)
    for batch in BATCHES:
        estimator.objects[OBJECT].predictor.predict(image, np.repeat(box, batch, axis=0))
    warm_up_s = time.perf_counter() - started
    stages = StageHistory()
    results, _ = evaluate_frames(estimator, frames, [OBJECT], {OBJECT: model_points(model)},
                                 'detector', None, 0, iter, stages)
    summary = summarize(results[OBJECT], model.diameter)
    table = stages.summary()
    return {
        'device': str(estimator.device), 'frames': summary['frames'],
        'keypoint_providers': getattr(estimator.objects[OBJECT].predictor.model, 'providers',
                                      None),
        'detector_providers': getattr(estimator.detectors[0].model, 'providers', None)
        if estimator.detectors else None,
        'warm_up_frame_s': warm_up_s,
        'runtime_median_ms': summary['runtime_median_ms'],
        'runtime_p95_ms': summary['runtime_p95_ms'],
        'runtime_mean_ms': table[TOTAL]['mean_ms'],
        'stages_median_ms': {name: row['median_ms'] for name, row in table.items()},
        'add_0.1d_accuracy': summary['add_0.1d_accuracy'],
        'detection_rate': summary['detection_rate'],
    }


def node_unavailable():
    """Return why the node cannot be started here, or None."""
    if importlib.util.find_spec('rclpy') is None:
        return f'rclpy is not importable in Python {platform.python_version()}'
    try:
        executable_path('pose_kp_node')
    except FileNotFoundError as error:
        return str(error)
    return None


def node_row(device, providers, trt_cache, seconds, folder):
    """Run benchmarks/bench_node.py on `device`; return its figures (or why it failed)."""
    output = Path(folder) / f'node_{device}_{"_".join(providers or ["cpu"])}.json'
    env = dict(os.environ, **{TRT_CACHE_ENV: str(trt_cache)})
    env.pop(PROVIDERS_ENV, None)
    if providers:
        env[PROVIDERS_ENV] = ','.join(providers)
    command = [sys.executable, str(Path(__file__).with_name('bench_node.py')), '--device', device,
               '--rate', '30', '--seconds', str(seconds), '--output', str(output)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=seconds + 300)
    except subprocess.TimeoutExpired:
        return {'missing': f'bench_node.py did not finish within {seconds + 300:.0f} s'}
    if done.returncode != 0 or not output.is_file():
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {'missing': f'bench_node.py exit {done.returncode}: '
                           f"{lines[-1] if lines else 'no output'}"}
    result = json.loads(output.read_text())
    keep = ('node_device', 'poses_received', 'output_rate_hz', 'latency_median_ms',
            'latency_p95_ms', 'node_cpu_percent_of_one_core', 'node_rss_mb_max',
            'stages_median_ms_last_100_frames')
    return {key: result.get(key) for key in keep}


def print_report(report, missing):
    """Print the tables and one line per runtime or row not measured."""
    info = report['machine']
    gpus = '; '.join(f"{g['name']} (driver {g['driver']}, {g['memory']})"
                     for g in info['gpus']) or 'no NVIDIA GPU (nvidia-smi found none)'
    print(f"CPU: {info['cpu_model']} ({info['cpu_count']} cores); GPU: {gpus}; "
          f"driver CUDA {info['driver_cuda_version']}; torch {info['torch']} (CUDA "
          f"{info['torch_cuda_version']}); {info['onnxruntime_package'] or 'onnxruntime'} "
          f"{info['onnxruntime']} (CUDA {info['onnxruntime_cuda_version']}), providers "
          f"{', '.join(info['ort_providers_available'])}; TensorRT {info['tensorrt']}")
    print(f"\nkeypoint network, ms per run call (all crops in one batch); detector batch 1 "
          f"({report['threads']} CPU thread(s), medians of {report['repeats']}):")
    header = (f"{'runtime':<13} " + ' '.join(f'{f"b{b}":>7}' for b in BATCHES)
              + f" {'det b1':>7} {'first run s':>11} {'cached s':>8}  providers")
    print(header)
    print('-' * len(header))
    for row in report['runtimes']:
        if 'keypoint_ms_per_call' not in row:
            continue
        ms = row['keypoint_ms_per_call']
        print(f"{row['name']:<13} " + ' '.join(f'{ms[f"b{b}"]:>7.2f}' for b in BATCHES)
              + f" {ms['detector_b1']:>7.2f} {number(row.get('keypoints_first_run_s'), 2):>11}"
              f" {number(row.get('keypoints_cached_start_s'), 2):>8}  "
              f"{','.join(row.get('keypoints_providers') or [row['device']])}")
    if report['pipeline']:
        print(f"\nwhole pipeline per LM-O frame ({report['frames']} photos, eval-lmo's code "
              'path, detector boxes):')
        print(f"{'runtime':<13} {'median ms':>9} {'p95 ms':>7} {'network':>8} {'detector':>8} "
              f"{'ADD<0.1d':>8} {'found':>6}")
        for row in report['pipeline']:
            stages = row['stages_median_ms']
            print(f"{row['runtime']:<13} {row['runtime_median_ms']:>9.1f} "
                  f"{row['runtime_p95_ms']:>7.1f} {number(stages.get('network')):>8} "
                  f"{number(stages.get('detector')):>8} {100 * row['add_0.1d_accuracy']:>7.1f}% "
                  f"{100 * row['detection_rate']:>5.1f}%")
    measured = [row for row in report['node'] if 'latency_median_ms' in row]
    if measured:
        print('\nnode at 30 Hz (bench_node.py): latency median / p95 ms, poses/s')
        for row in measured:
            print(f"{row['runtime']:<13} {number(row['latency_median_ms'])} / "
                  f"{number(row['latency_p95_ms'])}  {number(row['output_rate_hz'], 2)}")
    print()
    for line in missing:
        print(line)


def main(argv=None):
    """Run every runtime present; print the tables and write the JSON; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--frames', type=int, default=50, help='LM-O photos for the pipeline')
    parser.add_argument('--node-seconds', type=float, default=60.0,
                        help='seconds of 30 Hz input per node run (0: no node runs)')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads (torch, ORT)')
    parser.add_argument('--trt-cache', default='',
                        help='TensorRT engine cache folder (default: a temporary one, removed)')
    parser.add_argument('--out', default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scratch = tempfile.mkdtemp(prefix='bench_gpu_')
    trt_cache = Path(args.trt_cache or Path(scratch) / 'trt_engines')
    report = {'machine': machine_info(), 'threads': args.threads, 'repeats': args.repeats,
              'frames': args.frames, 'batches': list(BATCHES), 'trt_batch_profile':
              list(TRT_BATCH), 'load_average_1_5_15_start': list(os.getloadavg()),
              'runtimes': [], 'pipeline': [], 'node': []}
    missing = []
    reference = None
    try:
        for name, library, device, providers in RUNTIMES:
            row = {'name': name, 'library': library, 'device': device,
                   'providers_asked': providers}
            report['runtimes'].append(row)
            row['missing'] = missing_reason(library, device, providers)
            if row['missing'] is None:
                network, detector, facts = models(library, device, providers, args.threads,
                                                  trt_cache)
                row.update(facts)
                if library == 'onnxruntime':
                    row['missing'] = fallback_reason(providers, network.providers) \
                        or fallback_reason(providers, detector.providers)
            if row['missing'] is not None:
                missing.append(f'{name}: not measured: {row["missing"]}')
                continue
            input_size, detector_size = input_sizes()
            row['keypoint_ms_per_call'] = time_models(network, detector, library, device,
                                                      args.repeats, input_size, detector_size)
            if library == 'onnxruntime':  # a provider failing on a later shape falls back too
                row['providers_after_timing'] = network.providers
                if device == 'cpu':
                    reference = network
                elif reference is not None:
                    row['max_heatmap_difference_vs_ort_cpu'] = heatmaps_difference(
                        network, reference, input_size)
            print(f'{name}: done', flush=True)
        frames = lmo_eval_frames(args.frames)
        report['frames'] = len(frames)
        node_reason = node_unavailable() if args.node_seconds > 0 else 'skipped (--node-seconds 0)'
        for row in report['runtimes']:
            if row['library'] != 'onnxruntime':
                continue
            if row['missing'] is not None:
                continue  # its line is printed above
            if not frames:
                missing.append(f"pipeline {row['name']}: not measured: no LM-O photos found")
            else:
                with runtime_environment(row['providers_asked'], trt_cache):
                    report['pipeline'].append({'runtime': row['name'], **pipeline_row(
                        row['device'], frames, args.threads)})
                print(f"pipeline {row['name']}: done", flush=True)
            if node_reason is None:
                node = node_row(row['device'], row['providers_asked'], trt_cache,
                                args.node_seconds, scratch)
            else:
                node = {'missing': node_reason}
            report['node'].append({'runtime': row['name'], **node})
            if 'missing' in node:
                missing.append(f"node {row['name']}: not measured: {node['missing']}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report['load_average_1_5_15_end'] = list(os.getloadavg())
    report['not_measured'] = missing
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(args.out, report)
    print_report(report, missing)
    print(f'-> {args.out}')
    return 0


def input_sizes():
    """Return the keypoint network's input size and the detector's (height, width)."""
    folder = data_path('models', OBJECT)
    keypoints = json.loads((folder / 'keypoints.onnx.json').read_text())
    detector = json.loads((folder / 'detector.onnx.json').read_text())
    width, height = detector['input_size']
    return int(keypoints['input_size']), (int(height), int(width))


if __name__ == '__main__':
    sys.exit(main())
