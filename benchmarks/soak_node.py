"""Soak test of the pose node: 30 Hz camera input for a long time; memory, latency, lost frames.

    python benchmarks/soak_node.py [--duration 600] [--rate 30] [--pipeline-config FILE]

Starts the installed pose node and the LM-O camera replay as processes (loopback DDS, a domain of
its own), receives the node's Detection3DArray (one per processed frame) and /diagnostics in this
process, and samples the node's resident memory (VmRSS) and CPU every second. Counts the frames
sent (the camera's ground-truth messages, one per frame, or the node's received + lost in transport
when this listener missed some), the outputs received, the frames the node reports as processed,
dropped or lost in transport; unaccounted frames (sent - processed - dropped - lost in transport -
skipped) and lost outputs (processed - answers received) must be 0. After the warm-up (10% of the
duration, 5-60 s) it reports resident memory growth and end-to-end latency (image stamp -> output
received here) p50/p95/p99 in the first and last thirds. Writes results/soak_node.json. Figures
only: exit code 0 (test/integration/test_soak_short.py runs the same code for 45 s and checks
invariants).
"""

import argparse
from pathlib import Path
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from node_harness import (
    camera_and_node,
    isolate_ros_env,
    latency_percentiles,
    process_sample,
    start_process,
    stop_processes,
)
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from vision_msgs.msg import Detection3DArray

from pose_kp_ros import strict_json
from pose_kp_ros.paths import portable_path

COUNTERS = ('images_received', 'frames_lost_in_transport', 'frames_processed', 'frames_dropped',
            'frames_without_camera_info', 'frames_size_mismatch', 'errors')


def warmup_seconds(duration_s):
    """Return the warm-up excluded from the figures: 10% of the duration, within 5-60 s."""
    return min(60.0, max(5.0, 0.1 * duration_s))


def stream(duration_s, rate_hz, pipeline_config, node_log):
    """Run node + camera for about duration_s; return the raw record of what happened.

    The record: 'sent' {stamp ns: monotonic s}, 'answered' [(stamp ns, monotonic s, latency
    ms)], 'samples' [(monotonic s, node cpu s, node rss MB)], 'diagnostics' (the node's last
    status values), 'node_alive' (at the end of the stream), 'node_exit_code'.
    """
    pose_spec, camera_spec = camera_and_node(rate_hz, duration_s, pipeline_config)
    node = start_process(pose_spec, output=node_log)
    rclpy.init()
    listener = rclpy.create_node('soak_listener')
    record = {'sent': {}, 'answered': [], 'samples': [], 'diagnostics': {}}
    deep = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)

    def on_ground_truth(msg):
        record['sent'][Time.from_msg(msg.header.stamp).nanoseconds] = time.monotonic()

    def on_detections(msg):
        now_ns = listener.get_clock().now().nanoseconds
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        record['answered'].append((stamp_ns, time.monotonic(), (now_ns - stamp_ns) * 1e-6))

    def on_diagnostics(msg):
        for status in msg.status:
            if status.hardware_id == '/pose_kp':
                record['diagnostics'] = {kv.key: kv.value for kv in status.values}

    listener.create_subscription(PoseStamped, '/lmo_camera/ground_truth/driller',
                                 on_ground_truth, deep)
    listener.create_subscription(Detection3DArray, '/pose_kp/detections', on_detections, deep)
    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    ready_by = time.monotonic() + 180  # the node loads its model first
    while time.monotonic() < ready_by and node.poll() is None and \
            listener.count_publishers('/pose_kp/detections') == 0:
        rclpy.spin_once(listener, timeout_sec=0.1)
    camera = start_process(camera_spec)
    start = time.monotonic()
    next_sample = start
    limit = start + duration_s + 120  # start-up and the camera's loading of its photos
    while time.monotonic() < limit and camera.poll() is None and node.poll() is None:
        rclpy.spin_once(listener, timeout_sec=0.05)
        if time.monotonic() >= next_sample:
            record['samples'].append((time.monotonic(), *process_sample(node.pid)))
            next_sample += 1.0
    settle = time.monotonic() + 3.0  # the last outputs and a diagnostics status after them
    while time.monotonic() < settle and node.poll() is None:
        rclpy.spin_once(listener, timeout_sec=0.05)
    record['node_alive'] = node.poll() is None
    record['node_exit_code'], _ = stop_processes([node, camera])
    listener.destroy_node()
    rclpy.shutdown()
    return record


def summarise(record, duration_s, rate_hz, warmup_s):
    """Return the soak figures (a JSON-able dict) from stream()'s record."""
    sent = record['sent']
    answered = record['answered']
    diagnostics = {key: int(record['diagnostics'].get(key, 0)) for key in COUNTERS}
    skipped = (diagnostics['frames_without_camera_info'] + diagnostics['frames_size_mismatch'])
    # Under load this listener may miss some of the camera's ground-truth messages; the node
    # counts every image the camera published (received, or a gap in the sequence numbers).
    frames_sent = max(len(sent), diagnostics['images_received']
                      + diagnostics['frames_lost_in_transport'])
    unaccounted = (frames_sent - diagnostics['frames_processed'] - diagnostics['frames_dropped']
                   - diagnostics['frames_lost_in_transport'] - skipped)
    lost = diagnostics['frames_processed'] - len({a[0] for a in answered})
    first_sent = min(sent.values()) if sent else float('nan')
    last_sent = max(sent.values()) if sent else float('nan')
    warm_end = first_sent + warmup_s
    samples = np.array([s for s in record['samples'] if s[0] >= warm_end]).reshape(-1, 3)
    samples = samples[samples[:, 0] <= last_sent] if sent else samples
    memory = {}
    if len(samples) >= 2:
        window = max(1, min(5, len(samples) // 4))  # medians of a few samples: less noise
        rss_start = float(np.median(samples[:window, 2]))
        rss_end = float(np.median(samples[-window:, 2]))
        memory = {'rss_mb_after_warmup': rss_start, 'rss_mb_end': rss_end,
                  'rss_mb_max': float(samples[:, 2].max()),
                  'rss_growth_percent': 100.0 * (rss_end - rss_start) / rss_start,
                  'cpu_percent_of_one_core': float(100.0 * (samples[-1, 1] - samples[0, 1]) /
                                                   max(1e-9, samples[-1, 0] - samples[0, 0]))}
    warm = [a for a in answered if a[1] >= warm_end]
    third = (last_sent - warm_end) / 3.0
    latency = {'all': latency_percentiles([a[2] for a in warm]),
               'first_third': latency_percentiles([a[2] for a in warm
                                                   if a[1] < warm_end + third]),
               'last_third': latency_percentiles([a[2] for a in warm
                                                  if a[1] >= warm_end + 2 * third])}
    return {
        'duration_s': duration_s, 'rate_hz': rate_hz, 'warmup_s': warmup_s,
        'streamed_s': float(last_sent - first_sent) if sent else 0.0,
        'node_alive': record['node_alive'], 'node_exit_code': record['node_exit_code'],
        'frames_sent': int(frames_sent), 'outputs_received': len(answered),
        'frames_answered': len({a[0] for a in answered}),
        'node_counters': diagnostics, 'unaccounted_frames': int(unaccounted),
        'lost_outputs': int(lost),
        'memory': memory, 'latency_ms': latency,
        'samples': [[round(t - first_sent, 2), round(cpu, 2), round(rss, 1)]
                    for t, cpu, rss in record['samples']] if sent else [],
    }


def run_soak(duration_s, rate_hz=30.0, pipeline_config='', node_log=None):
    """Stream, then summarise (see the module docstring); DDS settings come from os.environ."""
    record = stream(duration_s, rate_hz, pipeline_config, node_log)
    return summarise(record, duration_s, rate_hz, warmup_seconds(duration_s))


def print_summary(result):
    """Print the headline figures of a soak result."""
    memory, latency = result['memory'], result['latency_ms']
    print(f"streamed {result['streamed_s']:.0f} s at {result['rate_hz']:g} Hz, "
          f"node alive: {result['node_alive']}")
    print(f"frames sent {result['frames_sent']}, answered {result['frames_answered']}, "
          f"node counters {result['node_counters']}, unaccounted frames "
          f"{result['unaccounted_frames']}, lost outputs {result['lost_outputs']}")
    if memory:
        print(f"rss after warm-up {memory['rss_mb_after_warmup']:.1f} MB -> end "
              f"{memory['rss_mb_end']:.1f} MB ({memory['rss_growth_percent']:+.2f}%), "
              f"cpu {memory['cpu_percent_of_one_core']:.0f}% of one core")
    for part in ('first_third', 'last_third'):
        values = ' '.join(f'{k} {v:.1f}' for k, v in latency[part].items())
        print(f'latency {part} (ms): {values}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--duration', type=float, default=600.0, help='seconds of input')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate, Hz')
    parser.add_argument('--pipeline-config', default='',
                        help='pipeline YAML (default: the installed default model)')
    parser.add_argument('--output', default='results/soak_node.json')
    args = parser.parse_args()
    isolate_ros_env()
    result = run_soak(args.duration, args.rate, args.pipeline_config)
    result['pipeline_config'] = portable_path(args.pipeline_config) if args.pipeline_config \
        else 'models/driller/pipeline.yaml'
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(args.output, result)
    print_summary(result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
