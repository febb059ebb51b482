"""Copy trained driller networks from runs/ into models/driller/ (what the package ships).

    python scripts/package_default_model.py [--keypoints runs/RUN/epoch_NNN.pt
                                             --int8 data/driller_train_v2 data/driller_train_v3
                                             [--no-float-keypoints]]
                                            [--detector runs/RUN/best.pt]

Each network given is exported with `pose-kp export` to ONNX (keypoints.onnx, detector.onnx,
metadata inside) and its checkpoint copied without the optimizer state (keypoints.pt,
detector.pt: for fine-tuning and their parameter counts); its run's training curves and metrics
come along, so models/driller/ records how the shipped files were made. The keypoint network is
also exported in int8, calibrated on the --int8 training datasets (keypoints_int8.onnx: what
the pipeline runs on the CPU; keypoints.onnx serves GPUs; `--no-float-keypoints` leaves it out
and removes a shipped one, for size: `pose-kp export keypoints.pt --out keypoints.onnx` writes
it). A network not given stays as shipped.
pipeline.yaml is not touched: its thresholds are chosen with the network
(`benchmarks/select_epoch.py` writes the ones it chose).
"""

import argparse
from pathlib import Path
import shutil
import subprocess
import sys

import torch

REPO = Path(__file__).resolve().parents[1]


def export(checkpoint_path: Path, out_path: Path, *options: str) -> None:
    """Run `pose-kp export checkpoint_path --out out_path [options]`."""
    subprocess.run([sys.executable, '-m', 'pose_kp_ros.tools.cli', 'export', str(checkpoint_path),
                    '--out', str(out_path), *options], check=True)


def package(checkpoint_path: Path, name: str, out: Path, float_onnx: bool = True) -> None:
    """Export checkpoint_path to out/<name>.onnx; copy it and its run's metrics and curves.

    float_onnx False: no out/<name>.onnx (a shipped one and its metadata sidecar are removed).
    """
    if float_onnx:
        export(checkpoint_path, out / f'{name}.onnx')
    else:
        for stale in (out / f'{name}.onnx', out / f'{name}.onnx.json'):
            stale.unlink(missing_ok=True)
    checkpoint = torch.load(checkpoint_path, map_location='cpu', weights_only=False)
    checkpoint['training'] = None
    torch.save(checkpoint, out / f'{name}.pt')
    run = checkpoint_path.parent
    shutil.copy(run / 'metrics.json', out / f'{name}_metrics.json')
    shutil.copy(run / 'training_curves.png', out / f'{name}_training_curves.png')


def main() -> int:
    """Export, copy and report; return 0 (argparse exits 2 when no network is given)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--keypoints', type=Path, help='keypoint network checkpoint (.pt)')
    parser.add_argument('--int8', nargs='+', type=Path, metavar='DATASET',
                        help='training datasets calibrating keypoints_int8.onnx (with '
                        '--keypoints)')
    parser.add_argument('--no-float-keypoints', action='store_true',
                        help='ship no float keypoints.onnx (size; GPUs run the int8 model or '
                        'export keypoints.pt themselves)')
    parser.add_argument('--detector', type=Path, help='detector checkpoint (.pt)')
    parser.add_argument('--out', type=Path, default=REPO / 'models' / 'driller')
    args = parser.parse_args()
    given = {name: path for name, path in (('keypoints', args.keypoints),
                                            ('detector', args.detector)) if path}
    if not given:
        parser.error('give --keypoints and/or --detector')
    if bool(args.keypoints) != bool(args.int8):
        parser.error('--keypoints needs --int8 DATASET ... (and --int8 needs --keypoints)')
    args.out.mkdir(parents=True, exist_ok=True)
    for name, path in given.items():
        float_onnx = name != 'keypoints' or not args.no_float_keypoints
        package(path, name, args.out, float_onnx)
    if args.keypoints:
        export(args.keypoints, args.out / 'keypoints_int8.onnx', '--int8', *map(str, args.int8))
    print(f'packaged {", ".join(given)} into {args.out}: '
          + ', '.join(sorted(p.name for p in args.out.iterdir())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
