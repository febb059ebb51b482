"""`pose-kp export CHECKPOINT --out FILE`: export a checkpoint with torch.export for deployment.

The exported program (a .pt2 archive, `torch.export.save`) maps normalised crops (B, 3, S, S),
any batch size, to the last stack's heatmaps (B, N, H, H), with batch norm frozen (eval mode).
It carries the checkpoint's metadata as the extra file 'pose_kp_meta.json', also written as a
sidecar FILE.json for people and tools without torch. Paths in it (exported_from, the graph's
stack traces) are relative: the archive names no folder of the machine that exported it.
`load_model` and `KeypointPredictor` read it like a checkpoint. (TorchScript is deprecated in
torch 2.13, hence torch.export.)
"""

import argparse
import os
from pathlib import Path
import re
import sys

import torch

from pose_kp_ros import strict_json
from pose_kp_ros.network.checkpoint import EXPORT_META_FILE, load_checkpoint
from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.hourglass import FinalHeatmaps
from pose_kp_ros.paths import SOURCE_ROOT, portable_path


def import_relative(file_name: str) -> str:
    """Return a source file's path from its import root (a sys.path folder or the repository).

    E.g. torch/nn/modules/conv.py or pose_kp_ros/network/hourglass.py; elsewhere its name.
    """
    path = os.path.abspath(file_name)
    roots = [os.path.abspath(root) for root in sys.path if root] + [str(SOURCE_ROOT)]
    inside = [root for root in roots if os.path.commonpath([path, root]) == root]
    return os.path.relpath(path, max(inside, key=len)) if inside else os.path.basename(path)


def portable_stack_traces(program: torch.export.ExportedProgram) -> None:
    """Rewrite the file names of the program's stack traces (saved with it): import_relative."""
    for node in program.graph.nodes:
        trace = node.meta.get('stack_trace')
        if trace:
            node.meta['stack_trace'] = re.sub(
                r'File "([^"]+)"', lambda found: f'File "{import_relative(found.group(1))}"',
                trace)


def export_program(checkpoint_path, out_path):
    """Export the checkpoint's network with torch.export to `out_path`; return its metadata."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = FinalHeatmaps(checkpoint.model).eval()
    size = checkpoint.meta['input_size']
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim('batch', min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes={'images': {0: batch}})
    portable_stack_traces(program)
    meta = {**checkpoint.meta, 'exported_from': portable_path(checkpoint_path),
            'export': 'torch.export'}
    text = strict_json.dumps(meta, indent=1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out_path), extra_files={EXPORT_META_FILE: text})
    Path(f'{out_path}.json').write_text(text)
    return meta


def main(argv=None):
    """Run `pose-kp export`; return the exit code."""
    parser = argparse.ArgumentParser(prog='pose-kp export', description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by pose-kp train (best.pt)')
    parser.add_argument('--out', required=True, help='program archive to write (e.g. model.pt2)')
    args = parser.parse_args(argv)
    try:
        meta = export_program(args.checkpoint, args.out)
    except CheckpointError as error:
        print(f'pose-kp export: error: {error}', file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} ({meta['object_name']}, {len(meta['keypoint_names'])} "
          f"keypoints, input {meta['input_size']}) to {args.out} (+ {args.out}.json)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
