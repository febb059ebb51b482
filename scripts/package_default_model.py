"""Copy the trained driller models from runs/ into models/driller/ (what the package ships).

    python scripts/package_default_model.py [--keypoints runs/driller_keypoints_s6/best.pt]
                                            [--detector runs/detector_driller_v2/best.pt]

The keypoint network is exported with `pose-kp export` (torch.export .pt2, metadata inside);
the detector checkpoint is copied without its optimizer state. Training curves and metrics come
along so models/driller/ records how the shipped files were made.
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
    subprocess.run([sys.executable, '-m', 'pose_kp_ros.tools.cli', 'export', args.keypoints,
                    '--out', str(out / 'keypoints.pt2')], check=True)
    checkpoint = torch.load(args.detector, map_location='cpu', weights_only=False)
    checkpoint['training'] = None
    torch.save(checkpoint, out / 'detector.pt')
    for run, name in ((Path(args.keypoints).parent, 'keypoints'),
                      (Path(args.detector).parent, 'detector')):
        shutil.copy(run / 'metrics.json', out / f'{name}_metrics.json')
        shutil.copy(run / 'training_curves.png', out / f'{name}_training_curves.png')
    print(f'packaged into {out}: ' + ', '.join(sorted(p.name for p in out.iterdir())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
