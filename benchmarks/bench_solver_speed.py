"""Speed of solve_pose against OpenCV and against an earlier solver, in one run.

Times, interleaved problem by problem in one process (so that load on this shared machine hits
every method alike): cv2.solvePnP with SOLVEPNP_EPNP and SOLVEPNP_ITERATIVE, and solve_pose
now ('new') and at a baseline commit ('old', by default the numpy solver before the compiled
one: its modules imported from git history), for one problem per call warm and cold, and for
batches. Problems as in bench_solver.py (10 keypoints in a 25 cm object, 0.6-1.4 m, LM-O
camera, 1 px noise); warm starts are the true pose moved by 2 degrees and 1 cm. Also reports
how far the two solvers' answers differ. Writes results/bench_solver_speed.json and prints a
table.

    python benchmarks/bench_solver_speed.py [--problems 300] [--batches 3 10 50 256]
"""

import argparse
import os
from pathlib import Path
import platform
import subprocess
import sys
import time
import types

from bench_solver import make_problems, previous_frame, select
import cv2
import numpy as np

from pose_kp_ros import strict_json
from pose_kp_ros.geometry.metrics import rotation_error_deg
from pose_kp_ros.geometry.solver import solve_pose
from pose_kp_ros.geometry.synthetic import LMO_K, random_keypoint_model
from pose_kp_ros.pipeline.stage_timer import cpu_model

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'pose_kp_ros.geometry.solver'
COMPILED_SOLVER = 'pose_kp_ros/geometry/solver/compiled_fit.py'
BASELINE_MODULES = ('problem', 'start', 'iteration', 'result', 'api')
"""The numpy solver's modules in an order in which each imports only earlier ones."""


def git(*words, check=True):
    """Run git in the repository; return the completed process (text output)."""
    return subprocess.run(['git', *words], cwd=REPO, capture_output=True, text=True,
                          check=check)


def baseline_commit():
    """Return the last commit with the numpy solver: the parent of the compiled one's, or HEAD."""
    added = git('log', '--diff-filter=A', '--format=%H', '-1', '--', COMPILED_SOLVER).stdout
    return git('rev-parse', f'{added.strip()}^' if added.strip() else 'HEAD').stdout.strip()


def load_baseline(commit):
    """Return the solve_pose of `commit`, its solver modules imported from git history.

    While they load, sys.modules maps the solver's module names to the baseline's, so that
    their imports of each other find each other; the other geometry modules are today's.
    """
    names = [f'{PACKAGE}.{name}' for name in BASELINE_MODULES]
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name, short in zip(names, BASELINE_MODULES):
            path = f'pose_kp_ros/geometry/solver/{short}.py'
            loaded = types.ModuleType(name)
            sys.modules[name] = loaded
            exec(compile(git('show', f'{commit}:{path}').stdout, f'{commit}:{path}', 'exec'),  # noqa: S102
                 loaded.__dict__)
        return sys.modules[f'{PACKAGE}.api'].solve_pose
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def single_methods(model, old_solve):
    """Return {name: function(uv (N, 2), conf (N,), init row) -> (R, t)} for one problem."""
    def opencv(flags):
        def run(uv, conf, init):
            _, rvec, tvec = cv2.solvePnP(model.keypoints, uv, LMO_K, None, flags=flags)
            return cv2.Rodrigues(rvec)[0], tvec[:, 0]
        return run

    def ours(solve, warm):
        def run(uv, conf, init):
            result = solve(uv, conf, LMO_K, model, init=init if warm else None)
            return result.R, result.t
        return run

    methods = {'OpenCV EPNP': opencv(cv2.SOLVEPNP_EPNP),
               'OpenCV ITERATIVE': opencv(cv2.SOLVEPNP_ITERATIVE),
               'new warm B=1': ours(solve_pose, True), 'new cold B=1': ours(solve_pose, False)}
    if old_solve is not None:
        methods.update({'old warm B=1': ours(old_solve, True),
                        'old cold B=1': ours(old_solve, False)})
    return methods


def time_single(methods, uv, conf, init):
    """Return ({name: seconds per call (P,)}, {name: (R (P, 3, 3), t (P, 3))}), interleaved."""
    names = list(methods)
    seconds = {name: [] for name in names}
    poses = {name: ([], []) for name in names}
    for b in range(len(uv)):
        row = select(init, b)
        for k in range(len(names)):
            name = names[(b + k) % len(names)]  # rotate the order: no method always goes first
            start = time.perf_counter()
            R, t = methods[name](uv[b], conf[b], row)
            seconds[name].append(time.perf_counter() - start)
            poses[name][0].append(R)
            poses[name][1].append(t)
    return ({name: np.array(value) for name, value in seconds.items()},
            {name: (np.array(R), np.array(t)) for name, (R, t) in poses.items()})


def time_batches(solvers, model, uv, conf, init, batch, repeats):
    """Return {name: seconds per fit (repeats,)} of warm and cold solves of `batch` problems."""
    seconds = {}
    for start_row in range(repeats):
        first = (start_row * batch) % (len(uv) - batch + 1)
        rows = slice(first, first + batch)
        for label, solve in solvers.items():
            for warm in (True, False):
                name = f'{label} {"warm" if warm else "cold"} B={batch}'
                begin = time.perf_counter()
                solve(uv[rows], conf[rows], LMO_K, model,
                      init=select(init, rows) if warm else None)
                seconds.setdefault(name, []).append((time.perf_counter() - begin) / batch)
    return {name: np.array(value) for name, value in seconds.items()}


def agreement(old, new):
    """Return the largest differences between two solvers' poses (R, t) of the same problems."""
    return {'rotation_deg_max': float(rotation_error_deg(new[0], old[0]).max()),
            'translation_mm_max': float(np.abs(new[1] - old[1]).max() * 1000)}


def main(argv=None):
    """Run the benchmark; write JSON; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--problems', type=int, default=300, help='problems solved one by one')
    parser.add_argument('--batches', type=int, nargs='*', default=[3, 10, 50, 256])
    parser.add_argument('--batch-repeats', type=int, default=20,
                        help='timed solves per batch size and method')
    parser.add_argument('--baseline', default=None,
                        help='commit of the old solver (default: the last one before '
                             f'{COMPILED_SOLVER}); "none" to skip it')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--output', default=str(REPO / 'results' / 'bench_solver_speed.json'))
    args = parser.parse_args(argv)
    commit, old_solve = None, None
    if args.baseline != 'none':
        try:
            commit = args.baseline or baseline_commit()
            old_solve = load_baseline(commit)
        except (OSError, subprocess.CalledProcessError) as error:  # no git, or no such commit
            print(f'no baseline solver ({error}); timing the current one only')
            commit = None
    rng = np.random.default_rng(args.seed)
    model = random_keypoint_model(rng, 10, 0.25, name='bench_object')
    count = max(args.problems, max(args.batches, default=1) * 2)
    R_gt, t_gt, uv, conf = make_problems(rng, model, count, outliers=False)
    init = previous_frame(rng, R_gt, t_gt)
    load_before = os.getloadavg()
    methods = single_methods(model, old_solve)
    for name in methods:  # warm-up: imports, allocations, caches
        methods[name](uv[0], conf[0], select(init, 0))
    seconds, poses = time_single(methods, uv[:args.problems], conf[:args.problems], init)
    solvers = {'new': solve_pose} | ({'old': old_solve} if old_solve else {})
    for batch in args.batches:
        seconds.update(time_batches(solvers, model, uv, conf, init, batch, args.batch_repeats))
    epnp = float(np.median(seconds['OpenCV EPNP']))
    rows = [{'method': name, 'calls': int(len(value)),
             'median_ms_per_fit': float(np.median(value)) * 1000,
             'p90_ms_per_fit': float(np.percentile(value, 90)) * 1000,
             'ratio_to_epnp': float(np.median(value)) / epnp} for name, value in seconds.items()]
    report = {
        'benchmark': 'bench_solver_speed', 'seed': args.seed, 'baseline_commit': commit,
        'setup': '10 keypoints in a 25 cm cube, 0.6-1.4 m, LM-O camera, 1 px noise; warm '
                 'starts 2 deg and 1 cm off; batch rows: time per fit',
        'machine': {'cpu_model': cpu_model(), 'platform': platform.platform(),
                    'cpus': os.cpu_count(), 'numpy': np.__version__,
                    'opencv': cv2.__version__, 'load_average_before': load_before,
                    'load_average_after': os.getloadavg()},
        'rows': rows}
    if old_solve is not None:
        report['old_vs_new'] = {mode: agreement(poses[f'old {mode} B=1'], poses[f'new {mode} B=1'])
                                for mode in ('warm', 'cold')}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(output, report, indent=2)
    print(f"CPU: {report['machine']['cpu_model']}; baseline: {commit}")
    print('method | calls | median ms/fit | p90 | x EPnP')
    for row in rows:
        print(f"{row['method']} | {row['calls']} | {row['median_ms_per_fit']:.4f} | "
              f"{row['p90_ms_per_fit']:.4f} | {row['ratio_to_epnp']:.1f}")
    if old_solve is not None:
        print('old vs new, largest difference:', report['old_vs_new'])
    print(f'load average before/after: {load_before} / {os.getloadavg()}')
    print(f'wrote {output}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
