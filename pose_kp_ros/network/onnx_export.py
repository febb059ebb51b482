"""Writing a network as an ONNX model (dynamic batch) that network/onnx_runtime.py runs.

The metadata JSON goes into the model's metadata_props (key onnx_runtime.META_KEY); the
exporter's debugging annotations (source stack traces, absolute paths among them) are removed.
`pose-kp export` (tools/export_model.py) writes checkpoints with it.
"""

from pathlib import Path

import torch

from pose_kp_ros.network.onnx_runtime import META_KEY

MAX_BATCH = 4096
"""The largest batch an exported model accepts."""


def write_onnx(model: torch.nn.Module, example: torch.Tensor, output_names: list[str],
               meta_text: str, out_path: Path | str) -> None:
    """Export `model` with torch.onnx (dynamic batch) to out_path, metadata in metadata_props.

    example: an input batch (B, 3, H, W); meta_text: the metadata as JSON.
    """
    batch = torch.export.Dim('batch', min=1, max=MAX_BATCH)
    program = torch.onnx.export(model, (example,), input_names=['images'],
                                output_names=output_names, dynamic_shapes=({0: batch},),
                                dynamo=True, verbose=False)
    graph = program.model.graph
    graph.metadata_props.clear()  # the exporter's annotations: absolute source paths among them
    for node in graph.all_nodes():
        node.metadata_props.clear()
        for value in node.outputs:
            value.metadata_props.clear()
    for value in [*graph.inputs, *graph.initializers.values()]:
        value.metadata_props.clear()
    program.model.metadata_props[META_KEY] = meta_text
    program.save(str(out_path))
