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


def write_onnx(model: torch.nn.Module, example: torch.Tensor | list[torch.Tensor],
               output_names: list[str], meta_text: str, out_path: Path | str,
               input_names: list[str] | None = None) -> None:
    """Export `model` with torch.onnx (dynamic batch) to out_path, metadata in metadata_props.

    example: an input batch (B, 3, H, W) (input 'images'), or with input_names a list of
    batches, one per name, that model takes as one list argument (each its own dynamic batch,
    B >= 2 in the example); meta_text: the metadata as JSON.
    """
    if input_names is None:
        args, names = (example,), ['images']
        shapes = ({0: torch.export.Dim('batch', min=1, max=MAX_BATCH)},)
    else:
        args, names = (list(example),), list(input_names)
        shapes = ([{0: torch.export.Dim(f'batch_{k}', min=1, max=MAX_BATCH)}
                   for k in range(len(names))],)
    program = torch.onnx.export(model, args, input_names=names, output_names=output_names,
                                dynamic_shapes=shapes, dynamo=True, verbose=False)
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
