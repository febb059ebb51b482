"""Choose a run's epoch, then the pose thresholds, by pose accuracy on held-out renders.

    python benchmarks/select_epoch.py --run runs/driller_mobilenet_gpu [--last 6]
        [--renders data/driller_val_v2] [--frames N] [--jobs N] [--device cpu|cuda]
        [--max-reprojection 12 20 30] [--confidence-power 2 4 8] [--lmo auto|yes|no]

Validation PCK does not rank networks by their poses (models/driller/README.md, session 10:
better PCK, worse poses), so this scores what the robot gets. Each epoch checkpoint the run kept
(`keep_epoch_checkpoints`; the last --last of them) replaces the keypoint network of
models/driller/pipeline.yaml and goes through `pose-kp eval-lmo` on the held-out renders, with
ground-truth boxes and with the detector (the code path of encoder_ablation.py, --jobs runs at
a time). The best mean of the two ADD < 0.1 d wins (ties: the later epoch). For that epoch a
grid of `max_reprojection_error_px` x solver `confidence_power` is scored the same way (ties:
the earlier pair; the default pipeline's pair comes first). Only renders choose. The chosen
checkpoint is exported to ONNX (`pose-kp export`) and its pipeline config written, which is
then scored on the renders and, where the LM-O photos are installed, on LM-O (reported, never
used to choose).

Writes into --out (default <run>/selection): selection.json (per-epoch table, grid, choice and
final rows), keypoints.pt (the chosen epoch's checkpoint), keypoints.onnx (+ .json),
pipeline.yaml (paths relative to it) and evals/ (every eval-lmo run with its log; a rerun
reuses those of the epochs and grid, so a selection stopped by a deadline continues).
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

from encoder_ablation import ROOT, evaluate, pipeline_yaml
import yaml

from pose_kp_ros import strict_json
from pose_kp_ros.data.package_data import PackageDataError, lmo_scene_dir
from pose_kp_ros.paths import portable_path
from pose_kp_ros.training.epoch_loop import epoch_checkpoints

RENDER_SETTINGS = (('renders', 'ground-truth'), ('renders', 'detector'))
LMO_SETTINGS = (('lmo', 'ground-truth'), ('lmo', 'detector'))
DEFAULT_PIPELINE = ROOT / 'models' / 'driller' / 'pipeline.yaml'


def parse_args(argv):
    """Return the parsed command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--run', required=True, help="a training run's output_dir")
    parser.add_argument('--last', type=int, default=0,
                        help='score the last N epoch checkpoints (0: all kept)')
    parser.add_argument('--renders', default='data/driller_val_v2')
    parser.add_argument('--frames', type=int, default=0, help='first N frames (0: all)')
    parser.add_argument('--detector', default=str(ROOT / 'models' / 'driller' / 'detector.onnx'))
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1,
                        help='eval-lmo processes at a time (one thread each)')
    parser.add_argument('--device', default='cpu', help="eval-lmo's --device of the grid runs")
    parser.add_argument('--max-reprojection', type=float, nargs='+', default=[12.0, 20.0, 30.0])
    parser.add_argument('--confidence-power', type=float, nargs='+', default=[2.0, 4.0, 8.0])
    parser.add_argument('--lmo', choices=('auto', 'yes', 'no'), default='auto',
                        help='score the chosen pipeline on LM-O too (auto: if the photos are '
                             'installed); a report, never a choice')
    parser.add_argument('--out', default='', help='output folder (default: <run>/selection)')
    return parser.parse_args(argv)


def default_thresholds():
    """Return (max_reprojection_error_px, confidence_power) of the default pipeline."""
    config = yaml.safe_load(DEFAULT_PIPELINE.read_text())
    return (float(config['thresholds']['max_reprojection_error_px']),
            float(config['solver']['confidence_power']))


def changes(max_reprojection, power):
    """Return pipeline_yaml's changes for one pair of thresholds."""
    return {'thresholds': {'max_reprojection_error_px': max_reprojection},
            'solver': {'confidence_power': power}}


def lmo_photos_installed():
    """Return whether the LM-O photos are here (the GPU bundle carries the meshes only)."""
    try:
        return any((lmo_scene_dir() / 'rgb').glob('*.png'))
    except PackageDataError:
        return False


def score(row):
    """Return the choice's figure of a row: mean ADD < 0.1 d on the renders over both boxes."""
    return sum(row[f'{data}_{boxes}'] for data, boxes in RENDER_SETTINGS) / len(RENDER_SETTINGS)


def choose(rows, prefer_last):
    """Return the row of the best score; ties: the last (prefer_last) or the first row."""
    order = list(reversed(rows)) if prefer_last else rows
    return max(order, key=score)


def score_points(points, args, folder):
    """Score (name, checkpoint, (max_reprojection, power)) points on the renders.

    Returns {name: {'renders_ground-truth': ADD, 'renders_detector': ADD, and as '..._wrong'
    the fraction of frames with a pose beyond 0.1 d}}: ADD counts a wrong pose like none, so a
    looser gate rarely loses ADD but lets more wrong poses out. Every eval-lmo run is kept in
    folder and reused by a later call.
    """
    (folder / 'logs').mkdir(parents=True, exist_ok=True)
    tasks = []
    for name, checkpoint, pair in points:
        config = pipeline_yaml(folder / f'{name}.yaml', checkpoint, args.detector,
                               {'device': args.device, **changes(*pair)})
        tasks += [(name, config, data, boxes) for data, boxes in RENDER_SETTINGS]

    def run(task):
        name, config, data, boxes = task
        return evaluate(config, data, boxes, args.renders, args.frames, folder, reuse=True,
                        log=folder / 'logs' / f'{name}_{data}_{boxes}.log')

    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        summaries = list(pool.map(run, tasks))
    scored = {name: {} for name, _, _ in points}
    for (name, _, data, boxes), summary in zip(tasks, summaries):
        scored[name][f'{data}_{boxes}'] = summary['add_0.1d_accuracy']
        scored[name][f'{data}_{boxes}_wrong'] = (summary['detection_rate']
                                                 - summary['add_0.1d_accuracy'])
    return scored


def point_name(epoch, pair):
    """Return the file stem of an epoch at a pair of thresholds, e.g. e012_r12_p4."""
    return f'e{epoch:03d}_r{pair[0]:g}_p{pair[1]:g}'


def epoch_table(run, last, pair, args, folder):
    """Score the run's kept epochs at one pair of thresholds; return the table's rows."""
    kept = epoch_checkpoints(run)
    if not kept:
        raise SystemExit(f'{run}: no epoch_NNN.pt (train with keep_epoch_checkpoints > 0)')
    chosen = list(kept.items())[-last:] if last else list(kept.items())
    metrics_file = Path(run) / 'metrics.json'
    history = json.loads(metrics_file.read_text()) if metrics_file.exists() else []
    history = {entry['epoch']: entry for entry in history}
    scored = score_points([(point_name(epoch, pair), path, pair) for epoch, path in chosen],
                          args, folder)
    rows = []
    for epoch, path in chosen:
        entry = history.get(epoch, {})
        rows.append({'epoch': epoch, 'checkpoint': portable_path(path),
                     **{key: entry.get(key) for key in ('foreground_weight', 'val_pck@0.1',
                                                        'val_mean_error_px')},
                     **scored[point_name(epoch, pair)]})
    return rows


def export_onnx(checkpoint, onnx):
    """Run `pose-kp export`; return None, or the error when it failed (the .pt then serves)."""
    command = [sys.executable, '-m', 'pose_kp_ros.tools.cli', 'export', str(checkpoint),
               '--out', str(onnx)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return (done.stderr or done.stdout).strip()[-2000:] or f'exit {done.returncode}'
    return None


def final_rows(config, args, folder):
    """Score the written pipeline config (renders, and LM-O if asked and installed)."""
    lmo = args.lmo == 'yes' or (args.lmo == 'auto' and lmo_photos_installed())
    settings = RENDER_SETTINGS + (LMO_SETTINGS if lmo else ())
    (folder / 'logs').mkdir(parents=True, exist_ok=True)

    def run(setting):
        data, boxes = setting
        return evaluate(config, data, boxes, args.renders, args.frames, folder,
                        log=folder / 'logs' / f'final_{data}_{boxes}.log')

    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        summaries = list(pool.map(run, settings))
    keys = ('frames', 'add_0.1d_accuracy', 'add_auc_0.1d', 'detection_rate',
            'median_rotation_deg', 'median_translation_mm', 'runtime_median_ms')
    rows = {f'{data}_{boxes}': {key: summary.get(key) for key in keys}
            for (data, boxes), summary in zip(settings, summaries)}
    return rows, lmo


def percent(value):
    """Return an ADD fraction as a table cell."""
    return f'{100 * value:.1f}%'


def main(argv=None):
    """Choose, export, score the choice; write selection.json and print the tables."""
    args = parse_args(argv)
    run = Path(args.run)
    out = Path(args.out) if args.out else run / 'selection'
    out.mkdir(parents=True, exist_ok=True)
    evals = out / 'evals'
    baseline = default_thresholds()
    epochs = epoch_table(run, args.last, baseline, args, evals)
    best = choose(epochs, prefer_last=True)
    grid_pairs = [baseline] + [(r, p) for r in args.max_reprojection
                               for p in args.confidence_power if (r, p) != baseline]
    checkpoint = epoch_checkpoints(run)[best['epoch']]
    scored = score_points([(point_name(best['epoch'], pair), checkpoint, pair)
                           for pair in grid_pairs[1:]], args, evals)
    scored[point_name(best['epoch'], baseline)] = {key: best[key] for key in best
                                                   if key.startswith('renders_')}
    grid = [{'max_reprojection_error_px': r, 'confidence_power': p,
             **scored[point_name(best['epoch'], (r, p))]} for r, p in grid_pairs]
    pick = choose(grid, prefer_last=False)
    shutil.copy(checkpoint, out / 'keypoints.pt')
    export_error = export_onnx(out / 'keypoints.pt', out / 'keypoints.onnx')
    model = out / ('keypoints.pt' if export_error else 'keypoints.onnx')
    pair = (pick['max_reprojection_error_px'], pick['confidence_power'])
    config = pipeline_yaml(out / 'pipeline.yaml', model, args.detector, changes(*pair),
                           relative=True)
    final, lmo = final_rows(config, args, evals)
    result = {
        'run': portable_path(run), 'renders': args.renders, 'frames': args.frames,
        'detector': portable_path(args.detector), 'device': args.device,
        'choice': 'best mean ADD < 0.1 d on the renders with ground-truth boxes and with the '
                  'detector: first the epoch at the default thresholds, then the thresholds',
        'default_thresholds': {'max_reprojection_error_px': baseline[0],
                               'confidence_power': baseline[1]},
        'epochs': epochs, 'chosen_epoch': best['epoch'], 'grid': grid,
        'chosen': {'epoch': best['epoch'], 'max_reprojection_error_px': pair[0],
                   'confidence_power': pair[1]},
        'keypoint_model': model.name, 'export_error': export_error,
        'pipeline_config': 'pipeline.yaml', 'final': final,
        'lmo': 'reported, never used to choose' if lmo else 'not scored (photos not installed '
               'here: pose-kp eval-lmo --pipeline-config <this folder>/pipeline.yaml)'}
    strict_json.write(out / 'selection.json', result)
    print('| epoch | foreground weight | val PCK@0.1 | renders, GT boxes | renders, detector |'
          '\n|---|---|---|---|---|')
    for row in epochs:
        pck = '-' if row['val_pck@0.1'] is None else f"{row['val_pck@0.1']:.3f}"
        print(f"| {row['epoch']}{' (chosen)' if row is best else ''} | "
              f"{row['foreground_weight']} | {pck} | {percent(row['renders_ground-truth'])} | "
              f"{percent(row['renders_detector'])} |")
    print('\n| max_reprojection_error_px | confidence_power | renders, GT boxes (wrong poses) '
          '| renders, detector (wrong poses) |\n|---|---|---|---|')
    for row in grid:
        cells = ' | '.join(f"{percent(row[f'{d}_{b}'])} ({percent(row[f'{d}_{b}_wrong'])})"
                           for d, b in RENDER_SETTINGS)
        print(f"| {row['max_reprojection_error_px']:g}{' (chosen)' if row is pick else ''} | "
              f"{row['confidence_power']:g} | {cells} |")
    print('\nchosen pipeline (' + model.name + '): ' + ', '.join(
        f"{name} {percent(row['add_0.1d_accuracy'])}" for name, row in final.items()))
    if export_error:
        print(f'ONNX export failed, the pipeline uses keypoints.pt: {export_error}')
    print(f'wrote {out}/selection.json and {config}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
