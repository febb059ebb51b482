"""Copy the trained driller models from runs/ into models/driller/ (what the package ships).

    python scripts/package_default_model.py [--keypoints runs/driller_keypoints_s6/best.pt]
                                            [--detector runs/detector_driller_v2/best.pt]

Both networks are exported with `pose-kp export` to ONNX (keypoints.onnx, detector.onnx: what
the pipeline runs, metadata inside); both checkpoints are also copied without their optimizer
state (keypoints.pt, detector.pt: for fine-tuning and their parameter counts). Training curves
and metrics come along so models/driller/ records how the shipped files were made.
"""

import argparse
from pathlib import Path
import shutil
import subprocess
import sys

import torch

REPO = Path(__file__).resolve().parents[1]


def main():
    """Export, copy and report; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--keypoints', default=str(REPO / 'runs/driller_keypoints_s6/best.pt'))
    parser.add_argument('--detector', default=str(REPO / 'runs/detector_driller_v2/best.pt'))
    parser.add_argument('--out', default=str(REPO / 'models/driller'))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for checkpoint_path, name in ((args.keypoints, 'keypoints'), (args.detector, 'detector')):
        subprocess.run([sys.executable, '-m', 'pose_kp_ros.tools.cli', 'export', checkpoint_path,
                        '--out', str(out / f'{name}.onnx')], check=True)
        checkpoint = torch.load(checkpoint_path, map_location='cpu', weights_only=False)
        checkpoint['training'] = None
        torch.save(checkpoint, out / f'{name}.pt')
    for run, name in ((Path(args.keypoints).parent, 'keypoints'),
                      (Path(args.detector).parent, 'detector')):
        shutil.copy(run / 'metrics.json', out / f'{name}_metrics.json')
        shutil.copy(run / 'training_curves.png', out / f'{name}_training_curves.png')
    print(f'packaged into {out}: ' + ', '.join(sorted(p.name for p in out.iterdir())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
