"""Shared parts of the node benchmarks (bench_node.py, soak_node.py).

Start the LM-O camera replay and the pose node as processes (the demo's NodeSpecs), keep DDS on
loopback in a domain of its own, sample a process's CPU and memory from /proc, summarise
latencies.
"""

import math
import os
from pathlib import Path
import random
import signal
import subprocess

import numpy as np

from pose_kp_ros.launch_graph import demo_graph
from pose_kp_ros.paths import executable_path

CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
CAMERA_DISTINCT_FRAMES = 200


def isolate_ros_env(log_dir='/tmp/pose_kp_bench_ros_log'):
    """Keep this process's and its children's DDS on loopback, in a random domain unless set."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    os.environ.setdefault('ROS_LOG_DIR', log_dir)


def process_sample(pid):
    """Return (cpu seconds so far, resident MB from VmRSS) of a live process from /proc."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return cpu, int(line.split()[1]) / 1024.0
    raise ProcessLookupError(f'process {pid} has no VmRSS (exited?)')


def camera_and_node(rate_hz, seconds, pipeline_config='', torch_threads=None,
                    device='auto', node_parameters=()):
    """Return (pose node NodeSpec, LM-O camera NodeSpec) replaying about rate_hz * seconds frames.

    The camera loops over the first CAMERA_DISTINCT_FRAMES LM-O photos; it publishes
    '/camera/image', '/camera/camera_info' and '/lmo_camera/ground_truth/driller' (one per frame)
    and waits for subscribers on the image and the ground truth before it starts.
    torch_threads: the node's `torch_threads` (None: the node's default); device: its `device`
    parameter (auto, cpu, cuda, cuda:N); node_parameters: more of the node's parameters,
    ((name, value), ...).
    """
    total = max(1, round(rate_hz * seconds))
    frames = min(CAMERA_DISTINCT_FRAMES, total)
    pose_spec, _, camera_spec = demo_graph(rate_hz=rate_hz, frames=frames,
                                           pipeline_config=pipeline_config, device=device)
    camera_spec = camera_spec.__class__(**{**camera_spec.__dict__, 'parameters': (
        camera_spec.parameters + (('loops', math.ceil(total / frames)),))})
    if torch_threads is not None:
        node_parameters = (('torch_threads', int(torch_threads)),) + tuple(node_parameters)
    if node_parameters:
        pose_spec = pose_spec.__class__(**{**pose_spec.__dict__, 'parameters': (
            pose_spec.parameters + tuple(node_parameters))})
    return pose_spec, camera_spec


def start_process(spec, output=subprocess.DEVNULL):
    """Start the installed executable of a NodeSpec; stdout and stderr go to `output`."""
    return subprocess.Popen([executable_path(spec.executable)] + spec.ros_arguments(),
                            stdout=output, stderr=subprocess.STDOUT)


def stop_processes(processes, timeout=30):
    """SIGINT each running process and wait (SIGKILL after `timeout` s); return exit codes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


def latency_percentiles(latencies_ms, percents=(50, 95, 99)):
    """Return {'p50': ms, ...} of a sequence of latencies (NaN when empty)."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    return {f'p{p}': float(np.percentile(values, p)) if values.size else float('nan')
            for p in percents}


def run_held_to(cores, command, cwd=None, env=None) -> str:
    """Run `command` held to `cores` (as taskset -c does); return its stdout.

    cwd, env: its working directory and environment (None: this process's). Raises
    RuntimeError with the end of its stderr when it fails.
    """
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    if done.returncode != 0:
        raise RuntimeError(f'{cwd or "."}: {" ".join(map(str, command))} failed: '
                           f'{done.stderr[-2000:]}')
    return done.stdout
