"""The node's parameters: one table with types, defaults, ranges and descriptions.

The node declares exactly these (with ParameterDescriptors built from the table), the config
reference in docs/node.md is checked against it by a test, and parameters marked `dynamic` can be
changed at run time (`ros2 param set`), validated first. Parameters marked `from_pipeline` (the
acceptance thresholds) start at the pipeline config's value unless set, so `ros2 param get` shows
the value in force; their `default` is what a pipeline config without that threshold uses.
"""

from dataclasses import dataclass
import math
import re

from pose_kp_ros.pipeline.config import DEVICE_PATTERN, Thresholds
from pose_kp_ros.pipeline.tracking import TrackingConfig


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter."""

    name: str
    default: object
    description: str
    dynamic: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    from_pipeline: bool = False

    def check(self, value: object) -> str | None:
        """Return None if `value` is acceptable, else a one-line reason."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # an integer beyond the float range
                value = math.inf if value > 0 else -math.inf
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return f'{self.name}: expected {expected.__name__}, got {value!r}'
        if expected is float and value != value:
            return f'{self.name}: expected a number, got nan'
        if self.low is not None and value < self.low:
            return f'{self.name}: {value!r} is below the minimum {self.low}'
        if self.high is not None and value > self.high:
            return f'{self.name}: {value!r} is above the maximum {self.high}'
        if self.choices is not None and value not in self.choices:
            return f'{self.name}: {value!r} is not one of {", ".join(self.choices)}'
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return f'{self.name}: {value!r} does not match {self.pattern}'
        return None


_PIPELINE = Thresholds()  # a pipeline config's thresholds where it sets none

NODE_PARAMETERS = (
    ParameterSpec('pipeline_config', '',
                  'Pipeline YAML (objects, keypoint models, detector, thresholds). Empty: the '
                  'installed default model (models/driller/pipeline.yaml).'),
    ParameterSpec('device', 'auto', 'Network device: auto (CUDA when available, else CPU), '
                  'cpu, cuda or cuda:N. A warning is logged when CUDA is asked but missing.',
                  pattern=DEVICE_PATTERN),
    ParameterSpec('rectified', False, 'The image topic carries rectified pixels (image_rect). '
                  'False: keypoints are undistorted with camera_info D before the fit.'),
    ParameterSpec('use_projection_matrix', True, 'With rectified input, use camera_info P '
                  '(left 3x3) as intrinsics; false: use K.'),
    ParameterSpec('image_transport', 'raw', "'raw': subscribe to sensor_msgs/Image on 'image'; "
                  "'compressed': sensor_msgs/CompressedImage on 'image/compressed'.",
                  choices=('raw', 'compressed')),
    ParameterSpec('image_qos', 'sensor_data', "QoS of the image and camera_info subscriptions: "
                  "'sensor_data' (best effort, what camera drivers publish) or 'reliable' "
                  '(no loss on congested links; needs a reliable publisher).',
                  choices=('sensor_data', 'reliable')),
    ParameterSpec('use_detections', False, "Subscribe to 'detections' "
                  '(vision_msgs/Detection2DArray) and crop around their boxes.'),
    ParameterSpec('detection_stamp_tolerance_s', 0.02, 'Largest stamp difference between an '
                  'image and the detections used for it, seconds.', low=0.0, high=10.0),
    ParameterSpec('detection_wait_s', 0.1, 'How long to wait for the detections of an image '
                  '(detectors publish after the image), seconds; then the frame is processed '
                  'with tracks and search only.', low=0.0, high=5.0),
    ParameterSpec('detection_default_object', '', 'Object for detections without a class '
                  '(class-agnostic detectors). Empty: such detections are skipped.'),
    ParameterSpec('tracking', True, 'Crop around the previous poses and warm-start from them; '
                  'false: every frame is estimated on its own.'),
    ParameterSpec('max_misses', TrackingConfig.max_misses, 'Frames a track may go without an '
                  'accepted pose before it is dropped.', low=0, high=10000),
    ParameterSpec('search_interval', TrackingConfig.search_interval, 'At most one full-image '
                  'search per object every this many frames while it has fewer tracks than '
                  'max_instances.', low=1, high=10000),
    ParameterSpec('verify_interval', TrackingConfig.verify_interval, 'While every track is live, '
                  'a full-image search every this many frames whose crops compete with the '
                  'tracks (replaces a drifted track). 0: never.', low=0, high=10000),
    ParameterSpec('verify_below_score', TrackingConfig.verify_below_score, 'Also a full-image '
                  'search on every frame after a tracked pose scored below this (a doubtful '
                  'track). 0: never.', low=0.0, high=1.0),
    ParameterSpec('search_overlap_iou', TrackingConfig.search_overlap_iou, 'A search box '
                  "overlapping a trusted track's crop box by this IoU or more is not cropped "
                  "(the track's crop stands for it). 1: only identical boxes.", low=0.01,
                  high=1.0),
    ParameterSpec('min_keypoint_confidence', _PIPELINE.min_keypoint_confidence,
                  'Keypoints at or below this confidence are ignored by the fit.', dynamic=True,
                  low=0.0, high=0.999, from_pipeline=True),
    ParameterSpec('min_valid_keypoints', _PIPELINE.min_valid_keypoints, 'Fewer usable '
                  'keypoints: no pose.', dynamic=True, low=4, high=1000, from_pipeline=True),
    ParameterSpec('max_reprojection_error_px', _PIPELINE.max_reprojection_error_px,
                  'Larger RMS reprojection error (pixels): no pose.',
                  dynamic=True, low=0.0, high=1e4, from_pipeline=True),
    ParameterSpec('min_score', _PIPELINE.min_score, 'Lower mean keypoint confidence: no '
                  'pose.', dynamic=True, low=0.0, high=1.0, from_pipeline=True),
    ParameterSpec('min_detection_score', _PIPELINE.min_detection_score, 'Full-image search: '
                  'detector boxes scoring lower are not cropped.', dynamic=True, low=0.0,
                  high=1.0, from_pipeline=True),
    ParameterSpec('publish_tf', True, 'Publish each instance on /tf (parent: the image frame, '
                  'child: <tf_prefix><object>_<track id>).', dynamic=True),
    ParameterSpec('tf_prefix', '', 'Prefix of the TF child frames.'),
    ParameterSpec('publish_pose_with_covariance', True, "Also publish "
                  "'~/pose_cov/<object>' (PoseWithCovarianceStamped) from the solver."),
    ParameterSpec('marker_mesh', True, 'Markers show the object mesh (MESH_RESOURCE) when the '
                  'object has one; false: a box.', dynamic=True),
    ParameterSpec('debug_image_scale', 0.5, "Size of '~/debug_image' relative to the input image. "
                  'It is drawn and sent only while subscribed; 0.5 sends a quarter of the bytes '
                  '(a full-size 640x480 overlay made a few poses arrive late in transport, '
                  'docs/node.md).', dynamic=True, low=0.05, high=1.0),
    ParameterSpec('max_image_pixels', 40_000_000, 'Images with more pixels are rejected with a '
                  'warning (protects memory).', low=1, high=10**9),
    ParameterSpec('diagnostics_period_s', 1.0, "Period of the '/diagnostics' status, seconds.",
                  low=0.05, high=3600.0),
    ParameterSpec('torch_threads', 1, 'CPU threads for torch, and for ONNX Runtime when a model '
                  'is .onnx; 0: torch default (one per usable core). 1 measured best on one '
                  'core, and on two cores at 30 Hz input within 4% of 2 threads on an Intel '
                  'Xeon (10.1 against 10.5 poses/s) and ahead of them on an AMD EPYC (3.6 '
                  'against 3.2; the node also needs the second core for receiving and '
                  'publishing), although 2 threads run the network alone 1.5-1.7x faster '
                  '(`benchmarks/bench_threads.py`, docs/performance.md); with the distilled '
                  'network on two cores of an AMD EPYC Zen 4, 1 and 2 threads alternately '
                  '(`bench_node.py --torch-threads T`, A B A B): 14.0 / 15.9 against 15.2 / '
                  '14.8 poses/s, 96 / 89 against 88 / 89 ms, no difference; with all eight '
                  'LM-O objects (models/lmo_all, about 15 crops a frame) on two idle cores of '
                  'an Intel Xeon, 10 Hz: 6.23 / 6.21 frames/s with 2 threads against 5.43 / '
                  '5.83 with 1 (interleaved), about 10% faster. Raise it where idle cores '
                  'exist and crops are many, after measuring there.', low=0, high=256),
)

SPECS = {spec.name: spec for spec in NODE_PARAMETERS}
THRESHOLD_PARAMETERS = tuple(spec.name for spec in NODE_PARAMETERS if spec.from_pipeline)


def parameter_table_markdown() -> str:
    """Return the Markdown reference table of NODE_PARAMETERS (docs/node.md embeds it)."""
    rows = ['| parameter | type | default | range / choices | set at run time | description |',
            '|---|---|---|---|---|---|']
    for spec in NODE_PARAMETERS:
        if spec.choices:
            allowed = ', '.join(spec.choices)
        elif spec.pattern:
            allowed = '`' + spec.pattern.replace('|', '\\|') + '`'
        elif spec.low is not None:
            allowed = f'[{spec.low}, {spec.high}]'
        else:
            allowed = ''
        default = str(spec.default).lower() if isinstance(spec.default, bool) else \
            repr(spec.default)
        default = f'`{default}`'
        if spec.from_pipeline:
            default = f'pipeline config ({default} if it sets none)'
        rows.append(f'| `{spec.name}` | {type(spec.default).__name__} | {default} | '
                    f'{allowed} | {"yes" if spec.dynamic else "no"} | {spec.description} |')
    return '\n'.join(rows) + '\n'
