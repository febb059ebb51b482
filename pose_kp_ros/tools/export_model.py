"""`pose-kp export CHECKPOINT --out FILE`: export a trained network for deployment.

The format follows FILE's suffix:

- `.onnx` (keypoint or detector checkpoint): an ONNX model that ONNX Runtime runs
  (network/onnx_runtime.py). A keypoint network maps normalised crops (B, 3, S, S) to the last
  stack's heatmaps 'heatmaps' (B, N, H, H); a detector maps a normalised letterboxed image
  (B, 3, H, W) to its raw output maps 'heatmap' (logits), 'size' and 'offset' (decoding stays in
  box_codec.py). A network of per-object heads (keypoint_net.ObjectHeadsNet) has an input
  'images_<object>' and an output 'heatmaps_<object>' (B_k, n_k, H, H) per object, in channel
  order, each with its own batch: the encoder runs once over all crops, each object's stacks
  over its own. Any batch size, batch norm frozen (eval mode). The checkpoint's metadata is
  JSON in the model's metadata_props (key onnx_runtime.META_KEY); the exporter's debugging
  annotations (source stack traces) are removed.
- `.pt2` (keypoint checkpoint only): a `torch.export` program archive with the metadata as the
  extra file 'pose_kp_meta.json'; the graph's stack traces name files relative to their import
  root.

`--int8 DATASET [DATASET ...]` (keypoint checkpoint, `.onnx`): the float export quantized to
int8 (network/quantization.py: ONNX Runtime's static QDQ quantization, the heatmaps'
convolution kept float), calibrated on `--calibration-crops` crops of those training datasets'
instances of the network's objects (per-object heads: equally many of each object's, that many
in all); the metadata records it under 'quantization'.

Either way the metadata is also written as a sidecar FILE.json for people and tools without the
runtime, `exported_from` is a relative path, and the file names no folder of the machine that
exported it. `load_model`, `KeypointPredictor` and `ObjectDetector.from_file` read the exports
like checkpoints. (TorchScript is deprecated in torch 2.13, hence ONNX and torch.export.)
"""

import argparse
from collections.abc import Mapping, Sequence
import os
from pathlib import Path
import re
import sys
import tempfile
from typing import Any

import torch

from pose_kp_ros import strict_json
from pose_kp_ros.network.checkpoint import EXPORT_META_FILE, load_checkpoint, network_objects
from pose_kp_ros.network.checkpoint_format import CheckpointError, read_checkpoint_file
from pose_kp_ros.network.detector_checkpoint import FORMAT as DETECTOR_FORMAT
from pose_kp_ros.network.detector_checkpoint import load_detector_checkpoint
from pose_kp_ros.network.hourglass import FinalHeatmaps
from pose_kp_ros.network.keypoint_net import ObjectHeadsNet, ObjectHeatmaps
from pose_kp_ros.network.onnx_export import MAX_BATCH, write_onnx
from pose_kp_ros.network.quantization import (
    CALIBRATION_BOX_JITTER,
    CALIBRATION_PERCENTILE,
    calibration_crops,
    quantize_keypoint_model,
)
from pose_kp_ros.paths import SOURCE_ROOT, portable_path
from pose_kp_ros.training.records import DatasetError, read_dataset


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


def checkpoint_network(path: Path | str) -> tuple[torch.nn.Module, dict, Any, list[str],
                                                 list[str] | None]:
    """Return the network of a keypoint or detector checkpoint, ready to export.

    Returns:
        (module in eval mode, checkpoint meta, example input (2, 3, H, W), output names, input
        names): input names None for the one input 'images'; a network of per-object heads
        has one example batch and input per object.
    """
    data = read_checkpoint_file(str(path))
    meta = data.get('meta') if isinstance(data, dict) else None
    if isinstance(meta, dict) and meta.get('format') == DETECTOR_FORMAT:
        model, meta, _ = load_detector_checkpoint(path)
        width, height = meta['input_size']
        return model, meta, torch.zeros(2, 3, height, width), list(model.heads), None
    checkpoint = load_checkpoint(path)  # anything else: the keypoint checkpoint's errors
    size = checkpoint.meta['input_size']
    if isinstance(checkpoint.model, ObjectHeadsNet):
        names = [name for name, _ in network_objects(checkpoint.meta)]
        return (ObjectHeatmaps(checkpoint.model).eval(), checkpoint.meta,
                [torch.zeros(2, 3, size, size) for _ in names],
                [f'heatmaps_{name}' for name in names], [f'images_{name}' for name in names])
    return (FinalHeatmaps(checkpoint.model).eval(), checkpoint.meta,
            torch.zeros(2, 3, size, size), ['heatmaps'], None)


def write_program(model: torch.nn.Module, example: torch.Tensor, meta_text: str,
                  out_path: Path | str) -> None:
    """Export `model` with torch.export (dynamic batch) to a .pt2 archive carrying meta_text."""
    batch = torch.export.Dim('batch', min=1, max=MAX_BATCH)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    portable_stack_traces(program)
    torch.export.save(program, str(out_path), extra_files={EXPORT_META_FILE: meta_text})


def export_model(checkpoint_path: Path | str, out_path: Path | str,
                 int8_datasets: Sequence[Path | str] = (), calibration_count: int = 300,
                 ) -> dict:
    """Export a checkpoint to `out_path` (.onnx, or .pt2 for a keypoint network); return meta.

    int8_datasets: training dataset folders to calibrate an int8 keypoint network on (none:
    float); calibration_count: how many of their instances' crops (per-object heads: as many
    of each object's, calibration_count in all: the calibrator keeps every activation of every
    crop in memory).

    Raises:
        CheckpointError: unreadable checkpoint, a suffix this checkpoint cannot export to, or
            int8 asked of a detector, a .pt2 or without usable calibration records.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in ('.onnx', '.pt2'):
        raise CheckpointError(f'{out_path}: --out must end in .onnx or .pt2')
    model, meta, example, output_names, input_names = checkpoint_network(checkpoint_path)
    if meta['format'] == DETECTOR_FORMAT and suffix == '.pt2':
        raise CheckpointError(f'{checkpoint_path}: a detector exports to .onnx only')
    if input_names is not None and suffix == '.pt2':
        raise CheckpointError(f'{checkpoint_path}: a network of per-object heads exports to '
                              '.onnx only')
    if int8_datasets and (meta['format'] == DETECTOR_FORMAT or suffix != '.onnx'):
        raise CheckpointError(f'{checkpoint_path}: --int8 exports keypoint networks to .onnx '
                              'only')
    export = 'onnx' if suffix == '.onnx' else 'torch.export'
    meta = {**meta, 'exported_from': portable_path(checkpoint_path), 'export': export}
    text = strict_json.dumps(meta, indent=1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if int8_datasets:
        records = training_records(int8_datasets, meta)
        if input_names is None:
            crops = calibration_crops(records, meta, calibration_count)
        else:  # every object's stacks calibrated on crops of that object
            objects = network_objects(meta)
            each = max(calibration_count // len(objects), 1)
            crops = {input_name: calibration_crops(
                [record for record in records if record.object_name == name], meta, each)
                for input_name, (name, _) in zip(input_names, objects)}
        meta['quantization'] = {
            'format': 'ONNX QDQ: int8 weights per output channel, uint8 activations',
            'calibration': f'percentile {CALIBRATION_PERCENTILE}',
            'float_layers': 'the heatmaps convolution',
            'datasets': [portable_path(path) for path in int8_datasets],
            'crops': sum(map(len, crops.values())) if isinstance(crops, dict) else len(crops),
            'box_jitter': CALIBRATION_BOX_JITTER}
        text = strict_json.dumps(meta, indent=1)
        with tempfile.TemporaryDirectory() as folder:
            float_path = Path(folder) / 'float.onnx'
            write_onnx(model, example, output_names, text, float_path, input_names)
            quantize_keypoint_model(float_path, out_path, crops)
    elif export == 'onnx':
        write_onnx(model, example, output_names, text, out_path, input_names)
    else:
        write_program(model, example, text, out_path)
    Path(f'{out_path}.json').write_text(text)
    return meta


def training_records(datasets: Sequence[Path | str], meta: Mapping[str, Any]) -> list:
    """Return the instance records of the network's objects in the dataset folders."""
    try:
        _, records = read_dataset([Path(path) for path in datasets])
    except DatasetError as error:
        raise CheckpointError(f'--int8: {error}') from None
    names = {name for name, _ in network_objects(dict(meta))}
    mine = [record for record in records if record.object_name in names]
    if not mine:
        raise CheckpointError(f'--int8: no instances of {sorted(names)} in '
                              f'{[str(path) for path in datasets]}')
    return mine


def describe(meta: Mapping[str, Any]) -> str:
    """Return a short description of an exported network's metadata."""
    if meta['format'] == DETECTOR_FORMAT:
        width, height = meta['input_size']
        return f"detector of {meta['class_names']}, input {width}x{height}"
    return (f"{meta['object_name']}, {len(meta['keypoint_names'])} keypoints, "
            f"input {meta['input_size']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pose-kp export`; return the exit code."""
    parser = argparse.ArgumentParser(prog='pose-kp export', description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by pose-kp train or '
                        'train-detector (best.pt)')
    parser.add_argument('--out', required=True,
                        help='file to write: model.onnx (ONNX Runtime) or model.pt2 '
                        '(torch.export, keypoint networks only)')
    parser.add_argument('--int8', nargs='+', metavar='DATASET', default=[],
                        help='keypoint networks: write an int8 model calibrated on crops of '
                        'these training dataset folders (never evaluation data)')
    parser.add_argument('--calibration-crops', type=int, default=300,
                        help='how many crops calibrate --int8 (default 300)')
    args = parser.parse_args(argv)
    if args.calibration_crops < 1:
        parser.error('--calibration-crops: expected an integer >= 1')
    try:
        meta = export_model(args.checkpoint, args.out, args.int8, args.calibration_crops)
    except CheckpointError as error:
        print(f'pose-kp export: error: {error}', file=sys.stderr)
        return 2
    print(f'exported {args.checkpoint} ({describe(meta)}) to {args.out} (+ {args.out}.json)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
