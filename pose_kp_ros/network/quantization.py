"""Int8 keypoint networks: ONNX Runtime static quantization, calibrated on training renders.

    >>> crops = calibration_crops(records, meta, count=300)  # doctest: +SKIP
    >>> quantize_keypoint_model('keypoints.onnx', 'keypoints_int8.onnx', crops)  # doctest: +SKIP

The float model exported by `pose-kp export` is quantized in ONNX's QDQ format: weights int8 per
output channel, activations uint8 per tensor with ranges at the 0.001th / 99.999th percentile
of the calibration crops' activations (ONNX Runtime's percentile calibration). The last
convolution, which writes the heatmaps, stays float: the peaks' sub-pixel positions and
heights are not rounded to 256 levels. A network of per-object heads (one input and output
per object) is calibrated on crops of each object fed to its own input, and every object's
heatmaps convolution stays float. Calibration crops are cut from training records as the
pipeline cuts crops (crop_boxes, low_pass_crops, normalise_crops) around each instance's box
moved by CALIBRATION_BOX_JITTER of its size, since detector and track boxes are not tight.
ONNX Runtime runs the QDQ model with int8 kernels on the CPU (VNNI where the CPU has it);
TensorRT runs it in int8, the CUDA provider in float between the dequantize nodes.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.network.crops import crop_boxes, low_pass_crops
from pose_kp_ros.network.predictor import normalise_crops

if TYPE_CHECKING:
    import onnx

CALIBRATION_BOX_JITTER = 0.1
"""Standard deviation of each box side's shift, as a fraction of the box's width / height."""
CALIBRATION_PERCENTILE = 99.999


def calibration_crops(records: Sequence, meta: dict, count: int = 300,
                      seed: int = 0) -> np.ndarray:
    """Return `count` normalised crops (count, 3, S, S) float32 cut from training records.

    records: InstanceRecords (training.records.read_dataset) of the network's objects; meta:
    the network's metadata (input_size, padding, low_pass_px, mean, std). Records are drawn
    without replacement (all of them when there are fewer).
    """
    import cv2

    if not records:
        raise CheckpointError("no training records of the network's objects to calibrate on")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(records), min(count, len(records)), replace=False)
    crops = []
    for index in chosen:
        record = records[index]
        image = cv2.imread(str(record.image), cv2.IMREAD_COLOR)
        if image is None:
            raise CheckpointError(f'{record.image}: unreadable image')
        box = np.asarray(record.box_xyxy, dtype=np.float64)
        size = np.tile(box[2:] - box[:2], 2)
        box = box + rng.normal(0.0, CALIBRATION_BOX_JITTER, 4) * size
        crop, affine = crop_boxes(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), box[None],
                                  int(meta['input_size']), float(meta['padding']))
        crop = low_pass_crops(crop, affine, float(meta.get('low_pass_px', 0.0)))
        crops.append(normalise_crops(crop, meta['mean'], meta['std']).numpy())
    return np.concatenate(crops)


def heatmap_convolutions(model: 'onnx.ModelProto') -> list[str]:
    """Return the names of the nodes that write the graph's outputs (the heatmaps)."""
    names = []
    for output in model.graph.output:
        writers = [node.name for node in model.graph.node if output.name in node.output]
        if not writers:
            raise CheckpointError(f'no node writes the output {output.name!r}')
        names += writers
    return names


def quantize_keypoint_model(float_path: Path | str, out_path: Path | str,
                            crops: np.ndarray | Mapping[str, np.ndarray]) -> None:
    """Write the int8 (QDQ) model of an exported float keypoint network to `out_path`.

    crops: calibration inputs (B, 3, S, S) float32 (`calibration_crops`) of input 'images', or
    {input name: its crops} for a model of several inputs (each call feeds the next crop of
    every input, the shorter ones repeated). The float model's
    metadata_props (pose_kp_meta) are copied as they are; the caller records the quantization
    in them (`write_metadata`).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = dict(crops) if isinstance(crops, Mapping) else {'images': crops}
    calls = max(len(batch) for batch in inputs.values())

    class Crops(CalibrationDataReader):  # one crop per call: the calibrator stacks the calls
        def __init__(self):
            self.calls = iter(range(calls))

        def get_next(self):
            call = next(self.calls, None)
            return None if call is None else {
                name: np.ascontiguousarray(batch[call % len(batch)][None])
                for name, batch in inputs.items()}

    source = onnx.load(str(float_path))
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / 'prepared.onnx'
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), Crops(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=heatmap_convolutions(source),
                        extra_options={'CalibPercentile': CALIBRATION_PERCENTILE})
    write_metadata(out_path, {item.key: item.value for item in source.metadata_props})


def write_metadata(path: Path | str, properties: dict[str, str]) -> None:
    """Replace an ONNX model's metadata_props by `properties` {key: text}."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
