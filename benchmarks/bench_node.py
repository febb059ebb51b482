"""End-to-end benchmark of the pose node over real DDS (loopback only, a domain of its own).

    python benchmarks/bench_node.py [--rate 30] [--seconds 300] [--pipeline-config FILE]
                                    [--torch-threads N] [--device auto|cpu|cuda|cuda:N]
                                    [--param NAME=VALUE ...]

Starts the LM-O camera replay (real photos, looping) and the pose node as separate processes
(the demo's NodeSpecs), receives the node's driller PoseStamped and its Detection3DArray (one per
answered frame, every object's poses in it) in this process, and reports: end-to-end latency
(image stamp -> message received here) median / p95 and output rate at the given input rate, of
the driller's poses and of answered frames, the poses per answered frame of each object,
the node's CPU load (% of one core) and resident memory over the run, and where the node's frame
time goes: the per-stage medians of its last 100 frames, as its /diagnostics reports them
('stage_ms/<stage>', the last status received before the camera stops). Writes
results/bench_node.json and prints a table. No assertions: figures only.
"""

import argparse
from collections import Counter
import os
from pathlib import Path
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from node_harness import (
    camera_and_node,
    isolate_ros_env,
    process_sample,
    start_process,
    stop_processes,
)
import numpy as np
import rclpy
from vision_msgs.msg import Detection3DArray
import yaml

from pose_kp_ros import strict_json
from pose_kp_ros.paths import portable_path
from pose_kp_ros.pipeline.stage_timer import cpu_model
from pose_kp_ros.ros.messages import stamp_seconds

STAGE = 'stage_ms/'  # the node's /diagnostics keys of stage medians


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--seconds', type=float, default=300.0)
    parser.add_argument('--pipeline-config', default='')
    parser.add_argument('--torch-threads', type=int, default=None,
                        help="the node's torch_threads (default: the node's default)")
    parser.add_argument('--output', default='results/bench_node.json')
    parser.add_argument('--device', default='auto',
                        help="the node's device parameter: auto (CUDA when present), cpu, "
                             'cuda or cuda:N')
    parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help="another of the node's parameters (YAML value), e.g. "
                             'verify_interval=0; repeatable')
    args = parser.parse_args()
    node_parameters = tuple(node_parameter(text) for text in args.param)

    isolate_ros_env()
    pose_spec, camera_spec = camera_and_node(args.rate, args.seconds, args.pipeline_config,
                                              args.torch_threads, args.device,
                                              node_parameters)
    node = start_process(pose_spec)
    rclpy.init()
    listener = rclpy.create_node('bench_node_listener')
    latencies, arrivals = [], []
    frame_latencies, frame_arrivals, object_poses = [], [], Counter()

    def record(header, latencies_ms, arrival_times):
        """Append a message's latency (its stamp to now, ms) and arrival time (monotonic s)."""
        now = listener.get_clock().now().nanoseconds * 1e-9
        latencies_ms.append((now - stamp_seconds(header.stamp)) * 1e3)
        arrival_times.append(time.monotonic())

    def on_detections(msg):
        record(msg.header, frame_latencies, frame_arrivals)
        object_poses.update(d.results[0].hypothesis.class_id for d in msg.detections if d.results)

    listener.create_subscription(PoseStamped, '/pose_kp/pose/driller',
                                 lambda msg: record(msg.header, latencies, arrivals), 50)
    listener.create_subscription(Detection3DArray, '/pose_kp/detections', on_detections, 50)
    stages = {}
    seen = {}  # the device the node reports running on

    def on_diagnostics(msg):
        for status in msg.status:
            values = {v.key: v.value for v in status.values}
            if any(k.startswith(STAGE) for k in values):  # the pose node's status
                seen['device'] = values.get('device')
                stages.clear()
                stages.update((k[len(STAGE):], float(v)) for k, v in values.items()
                              if k.startswith(STAGE))

    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    # the camera also waits for a ground-truth subscriber: this listener takes that role
    listener.create_subscription(PoseStamped, '/lmo_camera/ground_truth/driller',
                                 lambda msg: None, 50)
    camera = start_process(camera_spec)
    start = time.monotonic()
    samples = []
    next_sample = start
    while time.monotonic() - start < args.seconds + 10 and camera.poll() is None:
        rclpy.spin_once(listener, timeout_sec=0.05)
        if time.monotonic() >= next_sample and node.poll() is None:
            samples.append((time.monotonic(), *process_sample(node.pid)))
            next_sample += 1.0
    stop_processes([camera, node])
    listener.destroy_node()
    rclpy.shutdown()

    samples = np.array(samples)
    warm = samples[samples[:, 0] > start + 30] if len(samples) > 40 else samples
    cpu_percent = 100 * np.diff(warm[:, 1]).sum() / max(1e-9, warm[-1, 0] - warm[0, 0])
    frames = len(frame_latencies)
    result = {
        'input_rate_hz': args.rate, 'seconds': args.seconds,
        'poses_received': len(latencies),
        'output_rate_hz': rate(arrivals),
        'latency_median_ms': percentile(latencies, 50),
        'latency_p95_ms': percentile(latencies, 95),
        'frames_answered': frames,
        'frames_answered_per_s': rate(frame_arrivals),
        'frame_latency_median_ms': percentile(frame_latencies, 50),
        'frame_latency_p95_ms': percentile(frame_latencies, 95),
        'poses_per_answered_frame': {name: count / frames
                                     for name, count in sorted(object_poses.items())},
        'node_cpu_percent_of_one_core': float(cpu_percent),
        'node_rss_mb_start': float(warm[0, 2]), 'node_rss_mb_end': float(warm[-1, 2]),
        'node_rss_mb_max': float(samples[:, 2].max()),
        'load_average_1_5_15': list(os.getloadavg()), 'cpu_model': cpu_model(),
        'cores': sorted(os.sched_getaffinity(0)),
        'torch_threads': dict(pose_spec.parameters).get('torch_threads', 'node default'),
        'device': args.device, 'node_device': seen.get('device'),
        'node_parameters': dict(node_parameters),
        'pipeline_config': portable_path(args.pipeline_config) if args.pipeline_config
        else 'models/driller/pipeline.yaml',
        'stages_median_ms_last_100_frames': dict(stages),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(args.output, result)
    for key, value in result.items():
        if key == 'stages_median_ms_last_100_frames':
            continue
        if key == 'poses_per_answered_frame':
            value = ', '.join(f'{name} {share:.2f}' for name, share in value.items()) or '-'
        print(f'{key:<32} {value:.2f}' if isinstance(value, float) else f'{key:<32} {value}')
    print('node stage medians over its last 100 frames (ms):')
    for name, ms in stages.items():
        print(f"  {'  ' * name.count('/') + name.rsplit('/', 1)[-1]:<34} {ms:8.2f}")
    return 0


def node_parameter(text: str) -> tuple:
    """Return (name, value) of 'NAME=VALUE', the value read as YAML (7, 0.5, true, text)."""
    name, separator, value = text.partition('=')
    if not separator or not name:
        raise SystemExit(f'--param expects NAME=VALUE, got {text!r}')
    return name, yaml.safe_load(value)


def rate(arrivals: list) -> float:
    """Return messages per second between the first and the last of `arrivals` (s); 0: < 2."""
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


def percentile(values: list, q: float) -> float:
    """Return the q-th percentile of `values` (nan when empty)."""
    return float(np.percentile(values, q)) if values else float('nan')


if __name__ == '__main__':
    sys.exit(main())
