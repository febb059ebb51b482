"""`pose-kp demo`: the live demo on real photos, as separate ROS 2 processes over DDS.

Starts the graph of `pose_kp_ros.launch_graph.demo_graph` (the same one
`ros2 launch pose_kp_ros demo.launch.py` starts): an LM-O camera replaying the 200 real frames
with camera_info, the pose node with the default config and model (or --pipeline-config), and
an evaluator comparing poses with the ground truth. Output of every process is shown live with
its name; the evaluator stops the run, prints the summary and writes results/demo/. `--object
all` evaluates every LM-O object the pipeline config has a model for (one summary each, and the
per-object table with its mean, `demo_all_*`) and names the ones skipped. DDS stays on this
machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in a domain of its own unless ROS_DOMAIN_ID is
set.
"""

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import threading
import time

from pose_kp_ros.data.package_data import LMO_OBJECT_IDS, lmo_objects_frames
from pose_kp_ros.launch_graph import demo_graph, demo_objects
from pose_kp_ros.paths import executable_path


def relay(process: subprocess.Popen[str], prefix: str) -> None:
    """Print a process's output lines with a prefix (runs in a thread)."""
    for line in process.stdout:
        print(f'[{prefix}] {line.rstrip()}' if not line.startswith('[evaluator]') else
              line.rstrip(), flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the parsed command-line options."""
    parser = argparse.ArgumentParser(prog='pose-kp demo', description=__doc__.split('\n')[0])
    parser.add_argument('--rate', type=float, default=10.0, help='camera rate, Hz (default 10)')
    parser.add_argument('--object', default='driller', choices=sorted(LMO_OBJECT_IDS) + ['all'],
                        help='LM-O object (default driller; its LM-O id follows from the name), '
                             'or all: every LM-O object the pipeline config has a model for')
    parser.add_argument('--device', default='auto', help='auto | cpu | cuda')
    parser.add_argument('--frames', type=int, default=0, help='frames to replay (0: all)')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop after this many seconds (0: when the frames are done)')
    parser.add_argument('--pipeline-config', default='',
                        help='pipeline YAML: its objects and models (default: the shipped '
                             'driller model, models/driller/pipeline.yaml)')
    parser.add_argument('--output-dir', default='results/demo', help='where results go')
    parser.add_argument('--debug-image-scale', type=float, default=0.5,
                        help="size of the node's overlay the evaluator takes for its mosaic "
                             '(default 0.5; 0: no overlay, no mosaic)')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return 0 when every process ended cleanly."""
    args = parse_args(argv)
    try:
        objects = demo_objects(args.object, args.pipeline_config)
    except (OSError, ValueError) as error:  # config or object file errors, no LM-O object
        print(f'pose-kp demo: {str(error).splitlines()[0]}', file=sys.stderr)
        return 2
    if objects.skipped:
        print(f"[demo] no model in the pipeline config for {', '.join(objects.skipped)}: "
              'skipped', flush=True)
    frames = args.frames or len(lmo_objects_frames(objects.evaluated))
    if args.duration > 0:
        frames = min(frames, max(1, int(args.duration * args.rate)))
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    env.setdefault('ROS_LOG_DIR', str(Path(args.output_dir) / 'ros_log'))
    env['PYTHONUNBUFFERED'] = '1'
    specs = demo_graph(args.rate, objects, args.device, frames,
                       args.output_dir, args.pipeline_config,
                       debug_image_scale=args.debug_image_scale)
    print(f"[demo] {frames} real LM-O frames of the {', '.join(objects.evaluated)} at "
          f'{args.rate:g} Hz; '
          f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, discovery LOCALHOST", flush=True)
    processes = {}
    threads = []
    for spec in specs:
        command = [executable_path(spec.executable)] + spec.ros_arguments()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        processes[spec.name] = process
        thread = threading.Thread(target=relay, args=(process, spec.name), daemon=True)
        thread.start()
        threads.append(thread)
    evaluator = processes['pose_evaluator']
    deadline = time.monotonic() + frames / args.rate + 180.0
    code = 0
    try:
        while evaluator.poll() is None and time.monotonic() < deadline:
            if processes['pose_kp'].poll() not in (None, 0):
                print('[demo] the pose node stopped: see its message above', flush=True)
                code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        code = 130
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for name, process in processes.items():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -signal.SIGINT) and code == 0:
            print(f'[demo] {name} exited with {process.returncode}', flush=True)
            code = 1
    for thread in threads:
        thread.join(timeout=2)
    print(f'[demo] results in {args.output_dir}/', flush=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
