"""The pose_kp ROS 2 node: camera in; poses, detections, TF, overlay, markers, diagnostics out.

ROS wiring only: it declares the parameters, subscribes, and runs one worker thread that calls
the layer-3 pipeline (`KeypointPoseEstimator`, `PoseTracker`) and publishes through
`publishers.Publishers`. Callbacks hand everything to a `FrameScheduler` (pose_kp_ros.runtime):
it keeps only the newest image (older unprocessed ones are dropped and counted), so latency and
memory stay bounded when the network is slower than the camera; until the first usable
camera_info it holds the newest image (at most HELD_FRAME_MAX_AGE_S). New intrinsics and
parameter changes reach the worker through the scheduler's queue and apply between frames. Bad
input is logged (throttled), counted in /diagnostics, and skipped.
"""

from collections.abc import Sequence
from dataclasses import replace
import sys
import threading
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from pose_kp_ros.paths import data_path
from pose_kp_ros.pipeline.config import PipelineConfigError
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.pipeline.stage_timer import TOTAL, StageHistory, StageTimer
from pose_kp_ros.pipeline.tracking import PoseTracker, TrackedPose, TrackingConfig
from pose_kp_ros.ros import messages
from pose_kp_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info
from pose_kp_ros.ros.image_conversions import ImageConversionError, decode_image
from pose_kp_ros.ros.parameters import NODE_PARAMETERS, SPECS, THRESHOLD_PARAMETERS
from pose_kp_ros.ros.publishers import Publishers
from pose_kp_ros.ros.spin import spin_node
from pose_kp_ros.runtime.frame_scheduler import CameraChange, FrameScheduler, ParameterChange
from pose_kp_ros.runtime.throttle import Throttle

WARN_PERIOD_S = 5.0
HELD_FRAME_MAX_AGE_S = 1.0  # an image waiting for the first camera_info expires after this
STAGE_HISTORY_FRAMES = 100  # /diagnostics reports stage medians over the last this many frames


class StartupError(RuntimeError):
    """The node cannot start (bad config, missing model, ...): one line naming file and field."""


class PoseKpNode(Node):
    """See the module docstring; topics, parameters and frames are documented in docs/node.md.

    `params` holds the parameters in force; the dynamic ones change on the worker thread only,
    between frames. `estimator`: a pipeline already built (else the one of the pipeline_config
    parameter); other keyword arguments go to rclpy's Node.
    """

    def __init__(self, node_name: str = 'pose_kp',
                 estimator: KeypointPoseEstimator | None = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        params = self._declare_parameters(
            [spec for spec in NODE_PARAMETERS if not spec.from_pipeline])
        if params['torch_threads'] > 0:
            import torch
            torch.set_num_threads(params['torch_threads'])
        self.estimator = estimator or self._load_estimator(params)
        default_object = params['detection_default_object']
        if default_object and default_object not in self.estimator.object_names:
            raise StartupError(f'parameter detection_default_object: {default_object!r} is not '
                               f'an object of the pipeline {self.estimator.object_names}')
        # The thresholds start at the pipeline config's values: the parameters show what is used.
        thresholds = self._declare_parameters(
            [spec for spec in NODE_PARAMETERS if spec.from_pipeline], self.estimator.thresholds)
        self._apply_thresholds(thresholds)
        self.params = {**params, **thresholds}
        self.tracker = PoseTracker(self.estimator, TrackingConfig(
            max_misses=params['max_misses'], search_interval=params['search_interval'],
            verify_interval=params['verify_interval'],
            verify_below_score=params['verify_below_score'],
            search_overlap_iou=params['search_overlap_iou']))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.scheduler = FrameScheduler(held_max_age_s=HELD_FRAME_MAX_AGE_S)
        self._throttle = Throttle(WARN_PERIOD_S)
        self._camera = None  # CameraIntrinsics in force (worker thread)
        self._stages = StageTimer()  # the frame in progress (worker thread)
        self.stage_history = StageHistory(STAGE_HISTORY_FRAMES)  # answered frames
        self._create_interfaces(params)
        self._worker = threading.Thread(target=self._work, name='pose_kp_worker', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'ready: objects {self.estimator.object_names} on {self.estimator.device}, '
            f"image '{self.image_topic}', camera_info '{self.resolve_topic_name('camera_info')}'")

    # ---------------------------------------------------------------- set-up
    def _declare_parameters(self, specs, thresholds=None):
        """Declare `specs`; return {name: value} after checking every value (StartupError).

        Threshold parameters (spec.from_pipeline) are declared with their value in `thresholds`.
        """
        for spec in specs:
            descriptor = ParameterDescriptor(description=spec.description,
                                             read_only=not spec.dynamic)
            if spec.low is not None and isinstance(spec.default, float):
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
            elif spec.low is not None and isinstance(spec.default, int) \
                    and not isinstance(spec.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(spec.low),
                                                         to_value=int(spec.high), step=1)]
            default = spec.default
            if spec.from_pipeline:
                default = type(spec.default)(getattr(thresholds, spec.name))
            try:
                self.declare_parameter(spec.name, default, descriptor)
            except (InvalidParameterTypeException, InvalidParameterValueException) as error:
                # rclpy's reason (the descriptor's type or range), without its wrapping
                reason = str(error).removesuffix(f': {spec.name}').split('Reason: ', 1)[-1]
                hint = " (leave it unset for the pipeline config's value)" if spec.from_pipeline \
                    else ''
                raise StartupError(f'parameter {spec.name}: {reason}{hint}') from None
        params = {spec.name: self.get_parameter(spec.name).value for spec in specs}
        for spec in specs:
            reason = spec.check(params[spec.name])
            if reason:
                raise StartupError(f'parameter {reason}')
        return params

    def _load_estimator(self, params):
        config = params['pipeline_config'] or str(data_path('models', 'driller', 'pipeline.yaml'))
        try:
            return KeypointPoseEstimator.from_config(config, device=params['device'])
        except (PipelineConfigError, ValueError, OSError, RuntimeError) as error:
            raise StartupError(str(error).splitlines()[0]) from None

    def _apply_thresholds(self, thresholds):
        try:
            self.estimator.set_thresholds(**thresholds)
        except ValueError as error:
            raise StartupError(f'parameter {error}') from None

    def _create_interfaces(self, params):
        reliability = ReliabilityPolicy.BEST_EFFORT if params['image_qos'] == 'sensor_data' \
            else ReliabilityPolicy.RELIABLE
        image_qos = QoSProfile(depth=2, reliability=reliability)
        if params['image_transport'] == 'compressed':
            self.image_topic = self.resolve_topic_name('image/compressed')
            self.create_subscription(CompressedImage, 'image/compressed', self._on_image,
                                     image_qos)
        else:
            self.image_topic = self.resolve_topic_name('image')
            self.create_subscription(Image, 'image', self._on_image, image_qos)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info,
                                 QoSProfile(depth=10, reliability=reliability))
        if params['use_detections']:
            self.create_subscription(Detection2DArray, 'detections', self._on_detections, 10)
        self.outputs = Publishers(self, self.estimator.objects,
                                  params['publish_pose_with_covariance'])
        self.create_timer(params['diagnostics_period_s'], self._publish_diagnostics)

    def _on_set_parameters(self, changes):
        """Validate run-time changes here; the worker applies them between frames."""
        values = {}
        for change in changes:
            spec = SPECS.get(change.name)
            if spec is None:
                continue
            if not spec.dynamic:
                return SetParametersResult(successful=False,
                                           reason=f'{change.name} is read-only (set at start)')
            reason = spec.check(change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            values[change.name] = change.value
        thresholds = {name: value for name, value in values.items()
                      if name in THRESHOLD_PARAMETERS}
        try:
            replace(self.estimator.thresholds, **thresholds).validated()
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if values:
            self.scheduler.submit(ParameterChange(values))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- callbacks
    def _on_image(self, msg, info):
        gid = info.get('publisher_gid')
        held = self.scheduler.offer_frame(
            msg, messages.stamp_seconds(msg.header.stamp),
            None if gid is None else bytes(gid['data']), info.get('publication_sequence_number'))
        if held is not None:
            self._warn('no_camera_info', f"waiting for a usable camera_info on "
                       f"'{self.resolve_topic_name('camera_info')}' ({held}); keeping only the "
                       f'newest frame for it (up to {HELD_FRAME_MAX_AGE_S:g} s)')

    def _on_camera_info(self, msg):
        try:
            camera = intrinsics_from_camera_info(msg, rectified=self.params['rectified'],
                                                 use_projection=self.params['use_projection_matrix'])
        except CameraInfoError as error:
            self.scheduler.camera_rejected(str(error))
            self._warn('camera_info', f'camera_info rejected: {error}')
            return
        self.scheduler.camera_received(camera)

    def _on_detections(self, msg):
        self.scheduler.add_detections(messages.stamp_seconds(msg.header.stamp), msg)

    def _publish_diagnostics(self):
        self.outputs.publish_diagnostics(self.scheduler.snapshot(), str(self.estimator.device),
                                         self.stage_history.summary())

    # ---------------------------------------------------------------- worker thread
    def _work(self):
        while (work := self.scheduler.next_work()) is not None:
            try:
                for change in work.changes:
                    self._apply(change)
                if work.frame is not None:
                    self._process(work.frame)
            except Exception as error:  # never let one frame stop the node
                self._record_error(f'{type(error).__name__}: {error}')

    def _apply(self, change):
        """Apply a CameraChange or ParameterChange (between frames)."""
        if isinstance(change, CameraChange):
            if self._camera is not None and not np.allclose(self._camera.K, change.camera.K):
                self.tracker.reset()  # new intrinsics: the tracks' poses would project wrong
            self._camera = change.camera
            return
        thresholds = {name: value for name, value in change.values.items()
                      if name in THRESHOLD_PARAMETERS}
        if thresholds:
            self.estimator.set_thresholds(**thresholds)
        self.params.update(change.values)

    def _process(self, frame):
        """Estimate and publish one frame; its stages go to `stage_history` when answered."""
        stages = self._stages
        stages.reset()
        start = time.perf_counter()
        camera, msg = self._camera, frame.message
        try:
            with stages.stage('conversion'):
                image = decode_image(msg, self.params['max_image_pixels'])
        except ImageConversionError as error:
            self._record_error(f'image rejected: {error}', key='bad_image')
            return
        height, width = image.shape[:2]
        if (camera.width and camera.width != width) or (camera.height and camera.height != height):
            self.scheduler.count('frames_size_mismatch')
            self._record_error(f'image is {width}x{height} but camera_info says '
                               f'{camera.width}x{camera.height}: frame skipped', key='size')
            return
        boxes = self._boxes_for(frame) if self.params['use_detections'] else None
        D = camera.D if camera.needs_undistortion else None
        if self.params['tracking']:
            tracked = self.tracker.update(image, camera.K, boxes, D, camera.distortion_model)
        else:
            poses = self.estimator(image, camera.K, boxes or None, D, camera.distortion_model)
            tracked = [TrackedPose(index, pose) for index, pose in enumerate(poses)]
        stages.merge(self.estimator.timer)
        with stages.stage('publishing'):
            self.outputs.publish(msg.header, tracked, image, camera.K, self.params, stages)
        stages.add(TOTAL, time.perf_counter() - start)
        self.stage_history.add(stages)
        self.scheduler.frame_answered(frame)

    def _boxes_for(self, frame):
        """Return {object: boxes} of the detections stamped like the frame; None if none come."""
        detections = self.scheduler.detections_for(
            frame.stamp_s, self.params['detection_stamp_tolerance_s'],
            self.params['detection_wait_s'])
        if detections is None:
            return None
        boxes, skipped = messages.boxes_from_detection2d_array(
            detections, self.estimator.object_names,
            self.params['detection_default_object'] or None)
        for reason in skipped:
            self._record_error(f'detections: {reason}', key='detections')
        return boxes

    # ---------------------------------------------------------------- errors
    def _record_error(self, message, key='errors'):
        self.scheduler.record_error(message)
        self._warn(key, message)

    def _warn(self, key, message):
        """Log a warning at most once per WARN_PERIOD_S for each kind `key`."""
        if self._throttle.ready(key):
            self.get_logger().warning(message)

    def stop(self) -> None:
        """Stop the worker thread (call before destroying the node)."""
        self.scheduler.stop()
        self._worker.join(timeout=5.0)

    def statistics(self) -> dict[str, int]:
        """Return a copy of the counters (frames received, processed, dropped, errors, ...)."""
        return self.scheduler.counters()


def main(args: Sequence[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; exit 1 with a one-line message if it cannot start."""
    try:
        return spin_node(PoseKpNode, args, cleanup=PoseKpNode.stop)
    except StartupError as error:
        print(f'pose_kp_node: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())

