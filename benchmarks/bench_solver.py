"""Benchmark of solve_pose against OpenCV solvePnP and an Adam-on-axis-angle baseline.

Random problems like LM-O: 10 keypoints in a 25 cm object, 0.6-1.4 m from LM-O's camera, 1 px
Gaussian noise; variant 'outliers' moves 2 keypoints by 20-80 px and gives them confidence 0.05
(the others 1.0). Everything runs side by side in one process; timings are wall-clock medians on
this machine (shared: the load average is recorded). Writes results/bench_solver.json and a plot
of the rotation-error distributions, and prints a table.

    python benchmarks/bench_solver.py [--problems 1024] [--adam-problems 5]
"""

import argparse
import os
from pathlib import Path
import platform
import time

import cv2
import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from pose_kp_ros import strict_json
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.metrics import accuracy_under, add, rotation_error_deg, translation_error
from pose_kp_ros.geometry.rotations import hat, so3_exp
from pose_kp_ros.geometry.solver import PoseResult, solve_pose
from pose_kp_ros.geometry.synthetic import (
    LMO_K,
    random_keypoint_model,
    random_poses,
)

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BATCH = 256


def make_problems(rng, model, count, outliers):
    """Return (R, t, uv, conf) of count random problems."""
    R, t = random_poses(rng, count)
    uv = project_object_points(model.keypoints, R, t, LMO_K) + rng.normal(0.0, 1.0, (count, 10, 2))
    conf = np.ones((count, 10))
    if outliers:
        for b in range(count):
            index = rng.choice(10, 2, replace=False)
            direction = rng.normal(size=(2, 2))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            uv[b, index] += direction * rng.uniform(20.0, 80.0, (2, 1))
            conf[b, index] = 0.05
    return R, t, uv, conf


def previous_frame(rng, R, t, angle_deg=2.0, shift_m=0.01):
    """Return a PoseResult near the truth: what a tracker had one frame earlier."""
    w = rng.normal(size=(len(R), 3))
    w *= np.radians(angle_deg) / np.linalg.norm(w, axis=1, keepdims=True)
    shift = rng.normal(size=t.shape)
    shift *= shift_m / np.linalg.norm(shift, axis=1, keepdims=True)
    count = len(R)
    return PoseResult(R=so3_exp(w) @ R, t=t + shift,
                      coeffs=np.zeros((count, 0)), cost=np.zeros(count),
                      rms_px=np.zeros(count), iterations=np.zeros(count, int),
                      valid=np.ones(count, bool), covariance=np.zeros((count, 6, 6)))


def select(result, index):
    """Return rows `index` of a numpy PoseResult."""
    return PoseResult(*(np.asarray(getattr(result, f))[index] for f in
                        ('R', 't', 'coeffs', 'cost', 'rms_px', 'iterations', 'valid',
                         'covariance')))


def run_ours_single(uv, conf, model, init=None):
    """Solve one problem per call; return (R, t, valid, seconds per call)."""
    R, t, valid, seconds = [], [], [], []
    for b in range(len(uv)):
        start = time.perf_counter()
        result = solve_pose(uv[b], conf[b], LMO_K, model,
                            init=None if init is None else select(init, b))
        seconds.append(time.perf_counter() - start)
        R.append(result.R)
        t.append(result.t)
        valid.append(result.valid)
    return np.array(R), np.array(t), np.array(valid), np.array(seconds)


def run_ours_batched(uv, conf, model, init=None):
    """Solve batches of BATCH problems; return (R, t, valid, seconds per batch)."""
    R, t, valid, seconds = [], [], [], []
    for start_row in range(0, len(uv) - BATCH + 1, BATCH):
        rows = slice(start_row, start_row + BATCH)
        start = time.perf_counter()
        result = solve_pose(uv[rows], conf[rows], LMO_K, model,
                            init=None if init is None else select(init, rows))
        seconds.append(time.perf_counter() - start)
        R.append(result.R)
        t.append(result.t)
        valid.append(result.valid)
    return np.concatenate(R), np.concatenate(t), np.concatenate(valid), np.array(seconds)


def run_opencv(uv, model, flags):
    """Run cv2.solvePnP per problem (no confidences); return (R, t, valid, seconds)."""
    R, t, valid, seconds = [], [], [], []
    for b in range(len(uv)):
        start = time.perf_counter()
        found, rvec, tvec = cv2.solvePnP(model.keypoints, uv[b], LMO_K, None, flags=flags)
        seconds.append(time.perf_counter() - start)
        R.append(cv2.Rodrigues(rvec)[0])
        t.append(tvec[:, 0])
        valid.append(bool(found))
    return np.array(R), np.array(t), np.array(valid), np.array(seconds)


def run_adam(uv, conf, model, rng, lr=0.01, rel_tol=1e-7, max_iterations=20000):
    """Tutorial-style baseline: Adam on (axis-angle, t) from a random start, per problem.

    Minimises sum_i conf_i ||pi(K, R(w) X_i + t) - u_i||^2 until the relative change of the
    loss is below rel_tol. Start: random rotation vector, t = (0, 0, 1) m.
    """
    K = torch.as_tensor(LMO_K)
    points = torch.as_tensor(model.keypoints)
    generators = torch.as_tensor(hat(np.eye(3)))  # [w]x = sum_i w_i G_i
    R_all, t_all, seconds, iterations = [], [], [], []
    for b in range(len(uv)):
        target = torch.as_tensor(uv[b])
        weight = torch.as_tensor(conf[b])
        w = torch.tensor(rng.normal(size=3) * np.pi / 2, requires_grad=True)
        t = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.Adam([w, t], lr=lr)
        start = time.perf_counter()
        previous = None
        for iteration in range(max_iterations):  # noqa: B007 (read after the loop)
            optimiser.zero_grad()
            theta = w.norm()  # Rodrigues' formula, differentiable (w is never 0 here)
            axis = torch.einsum('i,ijk->jk', w / theta, generators)
            rotation = torch.eye(3, dtype=w.dtype) + theta.sin() * axis \
                + (1.0 - theta.cos()) * (axis @ axis)
            camera = points @ rotation.T + t
            pixels = camera @ K.T
            pixels = pixels[:, :2] / pixels[:, 2:]
            loss = (weight * ((pixels - target) ** 2).sum(-1)).sum()
            loss.backward()
            optimiser.step()
            value = loss.item()
            if previous is not None and abs(previous - value) <= rel_tol * abs(previous):
                break
            previous = value
        seconds.append(time.perf_counter() - start)
        iterations.append(iteration + 1)
        R_all.append(so3_exp(w.detach().numpy()))
        t_all.append(t.detach().numpy().copy())
    return (np.array(R_all), np.array(t_all), np.ones(len(uv), bool), np.array(seconds),
            np.array(iterations))


def summarise(name, variant, R_gt, t_gt, R, t, valid, seconds, per_call, model, extra=None):
    """Return one table row (dict) of errors and timings."""
    rot = np.where(valid, rotation_error_deg(R, R_gt), np.inf)
    trans = np.where(valid, translation_error(t, t_gt), np.inf)
    add_error = np.where(valid, add(R, t, R_gt, t_gt, model.keypoints), np.inf)
    median = float(np.median(seconds))
    row = {'method': name, 'variant': variant, 'problems': int(len(R_gt)),
           'valid_fraction': float(np.mean(valid)),
           'rotation_error_deg_median': float(np.median(rot)),
           'rotation_error_deg_p90': float(np.percentile(rot, 90)),
           'translation_error_mm_median': float(np.median(trans) * 1000),
           'add_accuracy_0.1d': accuracy_under(add_error, 0.1 * model.diameter),
           'median_ms_per_call': median * 1000,
           'fits_per_second': per_call / median}
    row.update(extra or {})
    return row


def main(argv=None):
    """Run the benchmark; write JSON and a plot; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--problems', type=int, default=1024,
                        help='problems per variant (a multiple of 256)')
    parser.add_argument('--single-problems', type=int, default=300,
                        help='problems solved one per call (B=1 rows, OpenCV)')
    parser.add_argument('--adam-problems', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--torch-threads', type=int, default=1,
                        help='torch intra-op threads (tiny tensors gain nothing from more)')
    parser.add_argument('--output', default=str(REPO / 'results' / 'bench_solver.json'))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(args.seed)
    model = random_keypoint_model(rng, 10, 0.25, name='bench_object')
    rows = []
    errors_for_plot = {}
    adam_median_s = {}
    load_before = os.getloadavg()
    jobs = [('ours cold B=1', 'single', False), ('ours warm B=1', 'single', True),
            (f'ours cold B={BATCH}', 'batched', False), (f'ours warm B={BATCH}', 'batched', True),
            ('OpenCV SQPNP', cv2.SOLVEPNP_SQPNP, None), ('OpenCV EPNP', cv2.SOLVEPNP_EPNP, None),
            ('OpenCV ITERATIVE', cv2.SOLVEPNP_ITERATIVE, None), ('Adam axis-angle', 'adam', None)]
    for variant in ('clean', 'outliers'):
        R_gt, t_gt, uv, conf = make_problems(rng, model, args.problems, variant == 'outliers')
        init = previous_frame(rng, R_gt, t_gt)
        single = slice(0, args.single_problems)
        solve_pose(uv[:BATCH], conf[:BATCH], LMO_K, model)  # warm-up (allocations, caches)
        for name, kind, warm in tqdm(jobs, desc=f'{variant} problems', unit='method'):
            extra = {}
            if kind == 'single':
                out = run_ours_single(uv[single], conf[single], model,
                                      select(init, single) if warm else None)
                gt, per_call = single, 1
            elif kind == 'batched':
                out = run_ours_batched(uv, conf, model, init if warm else None)
                gt, per_call = slice(0, len(out[0])), BATCH
            elif kind == 'adam':
                few = slice(0, args.adam_problems)
                *out, iterations = run_adam(uv[few], conf[few], model, rng)
                gt, per_call = few, 1
                extra = {'iterations_median': float(np.median(iterations))}
                adam_median_s[variant] = float(np.median(out[3]))
            else:
                out = run_opencv(uv[single], model, kind)
                gt, per_call = single, 1
            row = summarise(name, variant, R_gt[gt], t_gt[gt], *out, per_call, model, extra)
            rows.append(row)
            errors_for_plot[(variant, name)] = rotation_error_deg(out[0], R_gt[gt])
    for row in rows:
        if row['method'] != 'Adam axis-angle':
            row['speedup_vs_adam'] = adam_median_s[row['variant']] * row['fits_per_second']
    report = {
        'benchmark': 'bench_solver', 'seed': args.seed, 'batch': BATCH,
        'setup': '10 keypoints in a 25 cm cube, 0.6-1.4 m, LM-O camera, 1 px noise; outliers: '
                 '2 keypoints moved 20-80 px with confidence 0.05',
        'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(),
                    'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
                    'opencv': cv2.__version__, 'load_average_before': load_before,
                    'load_average_after': os.getloadavg()},
        'rows': rows}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(output, report, indent=2)
    plot(errors_for_plot, output.with_suffix('.png'))
    print_table(rows)
    print(f'load average before/after: {load_before} / {os.getloadavg()}')
    print(f'wrote {output} and {output.with_suffix(".png")}')
    return 0


def plot(errors, path):
    """Plot the cumulative distribution of rotation errors per method and variant."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for axis, variant in zip(axes, ('clean', 'outliers')):
        for (v, name), values in errors.items():
            if v == variant:
                values = np.sort(values)
                axis.plot(values, np.arange(1, len(values) + 1) / len(values), label=name)
        axis.set_xscale('log')
        axis.set_xlim(1e-2, 180)
        axis.set_xlabel('rotation error (deg)')
        axis.set_title(variant)
        axis.grid(True, which='both', alpha=0.3)
    axes[0].set_ylabel('fraction of problems')
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def print_table(rows):
    """Print the rows as an aligned text table."""
    header = ('variant', 'method', 'n', 'valid', 'rot med (deg)', 'rot p90', 't med (mm)',
              'ADD<0.1d', 'ms/call', 'fits/s', 'x Adam')
    print(' | '.join(header))
    for r in rows:
        print(' | '.join([
            r['variant'], r['method'], str(r['problems']), f"{r['valid_fraction']:.3f}",
            f"{r['rotation_error_deg_median']:.3f}", f"{r['rotation_error_deg_p90']:.2f}",
            f"{r['translation_error_mm_median']:.2f}", f"{r['add_accuracy_0.1d']:.3f}",
            f"{r['median_ms_per_call']:.3f}", f"{r['fits_per_second']:.0f}",
            f"{r.get('speedup_vs_adam', 1.0):.0f}"]))


if __name__ == '__main__':
    raise SystemExit(main())
