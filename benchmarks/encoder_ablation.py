"""The pretrained-encoder ablation: keypoint networks trained alike, scored by the same pipeline.

    python benchmarks/encoder_ablation.py                      # the runs of ABLATION=1
    python benchmarks/encoder_ablation.py --run fine-tuned=runs/driller_mobilenet/best.pt ...

Each keypoint checkpoint replaces the default model's in models/driller/pipeline.yaml (all other
settings kept; `--detector` replaces the detector for every row) and goes through `pose-kp
eval-lmo` four times: held-out renders and the 200 real LM-O photos, each with ground-truth boxes
and with the detector. The default model is scored too, as the reference row. Writes
results/encoder_ablation.json and prints a Markdown table (docs/training.md keeps it).
The runs come from `ABLATION=1 scripts/train_driller_model.sh` (same data and epochs).
"""

import argparse
from contextlib import nullcontext
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile

import yaml

from pose_kp_ros import strict_json
from pose_kp_ros.network.checkpoint_format import read_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = (('hourglass, from scratch', 'runs/ablation_hourglass/best.pt'),
                ('MobileNetV2, from scratch', 'runs/ablation_scratch/best.pt'),
                ('MobileNetV2, frozen', 'runs/ablation_frozen/best.pt'),
                ('MobileNetV2, partly frozen', 'runs/ablation_partly_frozen/best.pt'),
                ('MobileNetV2, fine-tuned', 'runs/driller_mobilenet/best.pt'))
SETTINGS = (('renders', 'ground-truth'), ('renders', 'detector'), ('lmo', 'ground-truth'),
            ('lmo', 'detector'))


def pipeline_yaml(path, keypoints, detector, changes=None, relative=False):
    """Write the default pipeline config with other keypoint / detector files to `path`.

    changes: {key: value} replacing top-level keys; a dict value updates that section (e.g.
    {'thresholds': {'max_reprojection_error_px': 30.0}}). relative: the paths are written
    relative to the file's folder (a config to keep and move with its models), else absolute.
    """
    path = Path(path)
    config = yaml.safe_load((ROOT / 'models' / 'driller' / 'pipeline.yaml').read_text())

    def where(file):
        file = Path(file).resolve()
        return os.path.relpath(file, path.parent.resolve()) if relative else str(file)

    config['objects'][0]['object'] = where(ROOT / 'objects' / 'driller.yaml')
    config['objects'][0]['keypoint_model'] = where(keypoints)
    config['detector'] = where(detector)
    for key, value in (changes or {}).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def evaluate(config, data, boxes, renders, frames, folder, device=None, reuse=False, log=None):
    """Return eval-lmo's summary dict of one setting.

    device: eval-lmo's --device. reuse: an earlier run's summary in the same folder is
    returned instead of running again. log: a file for eval-lmo's output (else the console).
    """
    out = Path(folder) / f'{config.stem}_{data}_{boxes}'
    done = sorted(out.glob('*_summary.json'))
    if reuse and done:
        return json.loads(done[0].read_text())
    argv = ['--object', 'driller', '--pipeline-config', str(config), '--boxes', boxes,
            '--output-dir', str(out), '--mosaic-frames', '0', '--frames', str(frames)]
    if data == 'renders':
        argv += ['--dataset', renders]
    if device:
        argv += ['--device', device]
    command = [sys.executable, '-m', 'pose_kp_ros.tools.cli', 'eval-lmo', *argv]
    with open(log, 'w') if log else nullcontext() as output:
        if subprocess.run(command, stdout=output, stderr=output).returncode:
            raise RuntimeError(f'eval-lmo failed: {argv}' + (f' (log: {log})' if log else ''))
    return json.loads(next(out.glob('*_summary.json')).read_text())


def main(argv=None):
    """Score every run in the four settings; write the JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--run', action='append', default=[], metavar='NAME=CHECKPOINT',
                        help='a keypoint checkpoint to score (default: the ablation runs)')
    parser.add_argument('--detector', default='runs/detector_driller_mobilenet/best.pt')
    parser.add_argument('--renders', default='data/driller_val_v2')
    parser.add_argument('--frames', type=int, default=0, help='first N frames (0: all)')
    parser.add_argument('--out', default='results/encoder_ablation.json')
    args = parser.parse_args(argv)
    runs = [tuple(item.split('=', 1)) for item in args.run] or list(DEFAULT_RUNS)
    rows = [('default model (models/driller)', None)] + runs
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, checkpoint) in enumerate(rows):
            row = {'name': name, 'keypoints': checkpoint, 'epochs': None,
                   'detector': None if checkpoint is None else args.detector}
            if checkpoint is None:
                config = ROOT / 'models' / 'driller' / 'pipeline.yaml'
            else:
                config = pipeline_yaml(Path(folder) / f'pipeline_{index}.yaml', checkpoint,
                                       args.detector)
                row['epochs'] = read_checkpoint_file(checkpoint)['meta']['epoch']
            for data, boxes in SETTINGS:
                summary = evaluate(config, data, boxes, args.renders, args.frames, folder)
                row[f'{data}_{boxes}'] = summary['add_0.1d_accuracy']
            results.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(args.out, {'renders': args.renders, 'frames': args.frames,
                                 'rows': results})
    print('| keypoint network | epochs | renders, GT boxes | renders, detector | LM-O, GT boxes '
          '| LM-O, detector |\n|---|---|---|---|---|---|')
    for row in results:
        cells = ' | '.join(f"{100 * row[f'{d}_{b}']:.1f}%" for d, b in SETTINGS)
        print(f"| {row['name']} | {row['epochs'] or '-'} | {cells} |")
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
