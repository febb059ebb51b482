"""`pose-kp export CHECKPOINT --out FILE`: export a checkpoint to TorchScript for deployment.

The exported file maps normalised crops (B, 3, S, S) to the last stack's heatmaps (B, N, H, H)
and carries the checkpoint's metadata as the extra file 'pose_kp_meta.json' (also written as a
sidecar FILE.json for people and tools without torch). `load_model` and `KeypointPredictor` read
it like a checkpoint. Traced on the CPU in eval mode; load it with map_location to move it.
"""

import argparse
import json
from pathlib import Path
import sys

import torch

from pose_kp_ros.network.checkpoint import EXPORT_META_FILE, CheckpointError, load_checkpoint
from pose_kp_ros.network.hourglass import FinalHeatmaps


def export_torchscript(checkpoint_path, out_path):
    """Trace the checkpoint's network into a TorchScript file with its metadata; return meta."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = FinalHeatmaps(checkpoint.model).eval()
    size = checkpoint.meta['input_size']
    example = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    meta = {**checkpoint.meta, 'exported_from': str(checkpoint_path), 'export': 'torchscript'}
    text = json.dumps(meta, indent=1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(out_path), _extra_files={EXPORT_META_FILE: text})
    Path(f'{out_path}.json').write_text(text)
    return meta


def main(argv=None):
    """Run `pose-kp export`; return the exit code."""
    parser = argparse.ArgumentParser(prog='pose-kp export', description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by pose-kp train (best.pt)')
    parser.add_argument('--out', required=True, help='TorchScript file to write (e.g. model.ts)')
    args = parser.parse_args(argv)
    try:
        meta = export_torchscript(args.checkpoint, args.out)
    except CheckpointError as error:
        print(f'pose-kp export: error: {error}', file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} ({meta['object_name']}, {len(meta['keypoint_names'])} "
          f"keypoints, input {meta['input_size']}) to {args.out} (+ {args.out}.json)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
