"""This checkout against another commit, side by side in one run: eval-lmo and the node, A B A B.

    git worktree add ../base 7c80cd4
    python benchmarks/compare_commits.py --base ../base [--rounds 2] [--cores 0]
                                         [--frames 200] [--node-seconds 45]

Each round runs, for the other tree and then for this one, with this checkout's Python
environment (the other tree's code and models first on PYTHONPATH, its own working directory):
`pose-kp eval-lmo --object driller` (one thread: per-frame median ms, ADD < 0.1 d) and
`benchmarks/bench_node.py --rate 30` (poses/s, latency median). Alternating lets both see the
same machine load; `--cores` holds every process to those cores (as `taskset -c` does). Writes
results/compare_<commit>.json (each run, the medians, this / other ratios) and prints a table.
Figures only, no assertions.
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile

from node_harness import run_held_to

from pose_kp_ros import strict_json
from pose_kp_ros.pipeline.stage_timer import cpu_model

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ('eval_lmo_median_ms', 'eval_lmo_add_0.1d', 'node_poses_per_s', 'node_latency_median_ms')


def commit_of(tree: Path) -> str:
    """Return the commit a working tree is at (short hash, '+dirty' when it has changes)."""
    head = subprocess.run(['git', '-C', str(tree), 'rev-parse', '--short', 'HEAD'],
                          capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(['git', '-C', str(tree), 'status', '--porcelain',
                            '--untracked-files=no'],
                           capture_output=True, text=True, check=True).stdout.strip()
    return head + ('+dirty' if dirty else '')


def run_in(tree: Path, cores, command) -> None:
    """Run `command` in `tree` with its code first on PYTHONPATH, held to `cores`."""
    run_held_to(cores, command, cwd=tree, env={**os.environ, 'PYTHONPATH': str(tree)})


def measure(tree: Path, cores, frames: int, node_seconds: float) -> dict:
    """Return one run's FIGURES for the code and models of `tree`."""
    with tempfile.TemporaryDirectory() as folder:
        run_in(tree, cores, [sys.executable, '-m', 'pose_kp_ros.tools.cli', 'eval-lmo',
                             '--object', 'driller', '--frames', str(frames),
                             '--output-dir', folder])
        summary = json.loads(Path(folder, 'driller_detector_summary.json').read_text())
        row = {'eval_lmo_median_ms': summary['runtime_median_ms'],
               'eval_lmo_add_0.1d': summary['add_0.1d_accuracy']}
        if node_seconds > 0:
            output = Path(folder, 'node.json')
            run_in(tree, cores, [sys.executable, 'benchmarks/bench_node.py', '--rate', '30',
                                 '--seconds', str(node_seconds), '--output', str(output)])
            node = json.loads(output.read_text())
            row.update(node_poses_per_s=node['output_rate_hz'],
                       node_latency_median_ms=node['latency_median_ms'])
    row['load_average_1min'] = os.getloadavg()[0]
    return row


def medians(runs: list[dict]) -> dict:
    """Return the median of each figure over runs (figures a run lacks are left out)."""
    return {key: statistics.median(run[key] for run in runs) for key in FIGURES
            if all(key in run for run in runs)}


def main():
    """Alternate the two trees, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--base', required=True, help='working tree of the other commit')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--cores', default=','.join(map(str, sorted(os.sched_getaffinity(0)))),
                        help='comma-separated core numbers (default: all of this process)')
    parser.add_argument('--frames', type=int, default=200, help='eval-lmo: first N photos')
    parser.add_argument('--node-seconds', type=float, default=45.0, help='0: no node runs')
    parser.add_argument('--output', default='')
    args = parser.parse_args()
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    cores = {int(core) for core in args.cores.split(',')}
    trees = {'other': Path(args.base).resolve(), 'this': ROOT}
    runs = {name: [] for name in trees}
    for round_index in range(args.rounds):
        for name, tree in trees.items():
            print(f'round {round_index + 1}/{args.rounds}: {name} ({tree}) ...', flush=True)
            runs[name].append(measure(tree, cores, args.frames, args.node_seconds))
    summary = {name: medians(name_runs) for name, name_runs in runs.items()}
    ratios = {key: summary['this'][key] / summary['other'][key] for key in summary['this']
              if summary['other'].get(key)}
    commits = {name: commit_of(tree) for name, tree in trees.items()}
    report = {'commits': commits, 'cores': sorted(cores), 'cpu_model': cpu_model(),
              'frames': args.frames, 'node_seconds': args.node_seconds, 'runs': runs,
              'medians': summary, 'this_over_other': ratios}
    output = Path(args.output or ROOT / 'results' / f"compare_{commits['other']}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(output, report)
    print(f"{'median':<26}{commits['other']:>14}{commits['this']:>14}{'ratio':>10}")
    for key, ratio in ratios.items():
        print(f"{key:<26}{summary['other'][key]:>14.3f}{summary['this'][key]:>14.3f}"
              f'{ratio:>10.2f}')
    print(f'wrote {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
