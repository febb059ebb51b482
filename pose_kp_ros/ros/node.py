"""The pose_kp ROS 2 node: camera in; poses, detections, TF, overlay, markers, diagnostics out.

Thin: it translates messages and calls the layer-3 pipeline (`KeypointPoseEstimator`,
`PoseTracker`). Callbacks only store the newest image (older unprocessed ones are dropped and
counted); one worker thread processes it, so latency and memory stay bounded when the network is
slower than the camera. Until the first usable camera_info the newest image is held (at most
HELD_FRAME_MAX_AGE_S) and processed when one arrives. Bad input is logged (throttled), counted in
/diagnostics, and skipped.
"""

import collections
import sys
import threading
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from pose_kp_ros.paths import data_path
from pose_kp_ros.pipeline.config import PipelineConfigError
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.pipeline.overlay import draw_pose
from pose_kp_ros.pipeline.tracking import PoseTracker, TrackedPose, TrackingConfig
from pose_kp_ros.ros import messages
from pose_kp_ros.ros.camera_info import CameraInfoError, intrinsics_from_camera_info
from pose_kp_ros.ros.image_conversions import (
    ImageConversionError,
    image_to_rgb,
    numpy_to_image,
)
from pose_kp_ros.ros.markers import MarkerBook, instance_markers, mesh_resource_uri
from pose_kp_ros.ros.parameters import NODE_PARAMETERS, SPECS, THRESHOLD_PARAMETERS

WARN_PERIOD_S = 5.0
HELD_FRAME_MAX_AGE_S = 1.0  # an image waiting for the first camera_info expires after this


class StartupError(RuntimeError):
    """The node cannot start (bad config, missing model, ...): one line naming file and field."""


def stamp_seconds(stamp):
    """Return a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


class RateMeter:
    """Counts events and reports their rate over a sliding window of `window_s` seconds."""

    def __init__(self, window_s=5.0):
        self.window_s = window_s
        self.times = collections.deque()

    def tick(self, now):
        """Record one event at `now` (seconds)."""
        self.times.append(now)
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()

    def rate(self, now):
        """Return events per second over the window ending at `now`."""
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        return len(self.times) / self.window_s


class PoseKpNode(Node):
    """See the module docstring; topics, parameters and frames are documented in docs/node.md."""

    def __init__(self, node_name='pose_kp', estimator=None, **kwargs):
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
            verify_interval=params['verify_interval']))
        self.object_boxes = {name: messages.object_box(runtime.outline)
                             for name, runtime in self.estimator.objects.items()}
        self.marker_book = MarkerBook()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._lock = threading.Condition()
        self._pending = None          # newest unprocessed (image msg, receive time)
        self._held = None             # the same, received before any usable camera_info
        self._camera = None           # CameraIntrinsics of the newest good camera_info
        self._camera_error = None
        self._last_camera_time = None
        self._last_sequence = {}      # image publisher gid -> last publication sequence number
        self._detections = collections.deque(maxlen=30)
        self._stats = collections.Counter()
        self._latencies_ms = collections.deque(maxlen=300)
        self._input_rate, self._output_rate = RateMeter(), RateMeter()
        self._last_error = ''
        self._last_warn = {}
        self._running = True

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
        self.pose_pubs = {name: self.create_publisher(PoseStamped, f'~/pose/{name}', 10)
                          for name in self.estimator.object_names}
        self.pose_cov_pubs = {}
        if params['publish_pose_with_covariance']:
            self.pose_cov_pubs = {
                name: self.create_publisher(PoseWithCovarianceStamped, f'~/pose_cov/{name}', 10)
                for name in self.estimator.object_names}
        self.detections_pub = self.create_publisher(Detection3DArray, '~/detections', 10)
        self.tf_pub = self.create_publisher(
            TFMessage, '/tf', QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.debug_image_pub = self.create_publisher(Image, '~/debug_image', 1)
        self.markers_pub = self.create_publisher(MarkerArray, '~/markers', 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(params['diagnostics_period_s'], self._publish_diagnostics)

    def _on_set_parameters(self, changes):
        thresholds = {}
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
            if change.name in THRESHOLD_PARAMETERS:
                thresholds[change.name] = change.value
        if thresholds:
            try:
                self.estimator.set_thresholds(**thresholds)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
        for change in changes:
            if change.name in SPECS:
                self.params[change.name] = change.value
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- callbacks
    def _on_image(self, msg, info):
        now = time.monotonic()
        with self._lock:
            self._stats['images_received'] += 1
            self._count_transport_losses(info)
            self._input_rate.tick(now)
            waiting = self._camera is None
            if waiting:
                if self._held is not None:
                    self._stats['frames_without_camera_info'] += 1
                self._held = (msg, now)
                reason = self._camera_error or 'none received yet'
            else:
                if self._pending is not None:
                    self._stats['frames_dropped'] += 1
                self._pending = (msg, now)
                self._lock.notify()
        if waiting:
            self._warn('no_camera_info', f"waiting for a usable camera_info on "
                       f"'{self.resolve_topic_name('camera_info')}' ({reason}); keeping only the "
                       f'newest frame for it (up to {HELD_FRAME_MAX_AGE_S:g} s)')

    def _count_transport_losses(self, info):
        """Count images a publisher sent that never reached this callback (caller holds the lock).

        The subscription queue keeps only the newest images; older ones are overwritten before
        the executor takes them. They show as gaps in the publisher's sequence numbers.
        """
        sequence, gid = info.get('publication_sequence_number'), info.get('publisher_gid')
        if not sequence or gid is None:
            return  # the middleware does not report sequence numbers
        key = bytes(gid['data'])
        last = self._last_sequence.pop(key, None)
        if last is not None and sequence > last + 1:
            self._stats['frames_lost_in_transport'] += sequence - last - 1
        self._last_sequence[key] = sequence
        while len(self._last_sequence) > 16:  # publishers come and go (camera restarts)
            self._last_sequence.pop(next(iter(self._last_sequence)))

    def _on_camera_info(self, msg):
        try:
            camera = intrinsics_from_camera_info(msg, rectified=self.params['rectified'],
                                                 use_projection=self.params['use_projection_matrix'])
        except CameraInfoError as error:
            with self._lock:
                self._camera_error = str(error)
                self._stats['camera_info_rejected'] += 1
            self._warn('camera_info', f'camera_info rejected: {error}')
            return
        with self._lock:
            if self._camera is not None and not np.allclose(self._camera.K, camera.K):
                self.tracker.reset()  # new intrinsics: old poses project wrong (safe mid-update)
            self._camera, self._camera_error = camera, None
            self._last_camera_time = time.monotonic()
            self._expire_held(self._last_camera_time)
            if self._held is not None:  # the first usable camera_info: nothing is pending yet
                self._pending, self._held = self._held, None
                self._lock.notify()

    def _expire_held(self, now):
        """Count the held image as without camera_info once older than HELD_FRAME_MAX_AGE_S.

        The caller holds the lock; `now` is time.monotonic() seconds.
        """
        if self._held is not None and now - self._held[1] > HELD_FRAME_MAX_AGE_S:
            self._held = None
            self._stats['frames_without_camera_info'] += 1

    def _on_detections(self, msg):
        with self._lock:
            self._detections.append(msg)
            self._lock.notify_all()

    # ---------------------------------------------------------------- processing
    def _work(self):
        while True:
            with self._lock:
                while self._running and self._pending is None:
                    self._lock.wait(timeout=0.5)
                if not self._running:
                    return
                msg, received = self._pending
                self._pending = None
                camera = self._camera
            try:
                self._process(msg, received, camera)
            except Exception as error:  # never let one frame stop the node
                self._record_error(f'{type(error).__name__}: {error}')

    def _process(self, msg, received, camera):
        try:
            image = self._decode(msg)
        except ImageConversionError as error:
            self._record_error(f'image rejected: {error}', key='bad_image')
            return
        height, width = image.shape[:2]
        if (camera.width and camera.width != width) or (camera.height and camera.height != height):
            with self._lock:
                self._stats['frames_size_mismatch'] += 1
            self._record_error(f'image is {width}x{height} but camera_info says '
                               f'{camera.width}x{camera.height}: frame skipped', key='size')
            return
        boxes = self._boxes_for(msg.header.stamp) if self.params['use_detections'] else None
        D = camera.D if camera.needs_undistortion else None
        if self.params['tracking']:
            tracked = self.tracker.update(image, camera.K, boxes, D, camera.distortion_model)
        else:
            poses = self.estimator(image, camera.K, boxes or None, D, camera.distortion_model)
            tracked = [TrackedPose(index, pose) for index, pose in enumerate(poses)]
        self._publish(msg.header, tracked, image, camera)
        now = time.monotonic()
        with self._lock:
            self._stats['frames_processed'] += 1
            self._output_rate.tick(now)
            self._latencies_ms.append((now - received) * 1e3)

    def _decode(self, msg):
        """Return the (H, W, 3) uint8 RGB image of an Image or CompressedImage message."""
        if isinstance(msg, CompressedImage):
            data = np.frombuffer(msg.data, np.uint8)
            bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            if bgr is None:
                raise ImageConversionError(f"cannot decode compressed image ('{msg.format}')")
            image = np.ascontiguousarray(bgr[:, :, ::-1])
        else:
            if msg.width * msg.height > self.params['max_image_pixels']:
                raise ImageConversionError(f'{msg.width}x{msg.height} exceeds max_image_pixels')
            image = image_to_rgb(msg)
        if image.shape[0] * image.shape[1] > self.params['max_image_pixels']:
            raise ImageConversionError(f'{image.shape[1]}x{image.shape[0]} exceeds '
                                       'max_image_pixels')
        return image

    def _boxes_for(self, stamp):
        """Return {object: boxes} of the detections matching `stamp`, waiting for them briefly.

        A detector usually publishes after the image it ran on: wait up to detection_wait_s for
        a Detection2DArray stamped within detection_stamp_tolerance_s; None if none comes.
        """
        target = stamp_seconds(stamp)
        tolerance = self.params['detection_stamp_tolerance_s']
        deadline = time.monotonic() + self.params['detection_wait_s']

        def closest():
            return min(self._detections, default=None,
                       key=lambda d: abs(stamp_seconds(d.header.stamp) - target))

        with self._lock:
            best = closest()
            while (best is None or abs(stamp_seconds(best.header.stamp) - target) > tolerance) \
                    and self._running and time.monotonic() < deadline:
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))
                best = closest()
        if best is None or abs(stamp_seconds(best.header.stamp) - target) > tolerance:
            with self._lock:
                self._stats['frames_without_detections'] += 1
            return None
        boxes, skipped = messages.boxes_from_detection2d_array(
            best, self.estimator.object_names, self.params['detection_default_object'] or None)
        for reason in skipped:
            self._record_error(f'detections: {reason}', key='detections')
        return boxes

    # ---------------------------------------------------------------- outputs
    def _publish(self, header, tracked, image, camera):
        best = {}
        for item in tracked:
            name = item.pose.object_name
            if name not in best or item.pose.score > best[name].pose.score:
                best[name] = item
        for name, item in best.items():
            pose = item.pose
            self.pose_pubs[name].publish(messages.pose_stamped(header, pose.R, pose.t))
            if name in self.pose_cov_pubs:
                self.pose_cov_pubs[name].publish(messages.pose_with_covariance_stamped(
                    header, pose.R, pose.t, pose.covariance))
        detections = []
        for item in tracked:
            pose = item.pose
            centre, size = self.object_boxes[pose.object_name]
            detections.append(messages.detection3d(header, pose.object_name, item.track_id,
                                                   pose.score, pose.R, pose.t,
                                                   pose.covariance, centre, size))
        self.detections_pub.publish(messages.detection3d_array(header, detections))
        if self.params['publish_tf'] and tracked:
            self.tf_pub.publish(TFMessage(transforms=[
                messages.transform_stamped(
                    header, messages.frame_name(self.params['tf_prefix'], i.pose.object_name,
                                                i.track_id), i.pose.R, i.pose.t)
                for i in tracked]))
        self._publish_markers(header, tracked)
        if self.debug_image_pub.get_subscription_count() > 0:
            overlay = image.copy()
            for item in tracked:
                runtime = self.estimator.objects[item.pose.object_name]
                draw_pose(overlay, camera.K, item.pose.R, item.pose.t, runtime.outline,
                          item.pose.keypoints, item.pose.confidences,
                          label=f'{item.pose.object_name}_{item.track_id} {item.pose.score:.2f}')
            scale = self.params['debug_image_scale']
            if scale < 1.0:
                overlay = cv2.resize(overlay, None, fx=scale, fy=scale,
                                     interpolation=cv2.INTER_AREA)
            self.debug_image_pub.publish(numpy_to_image(overlay, 'rgb8', header))

    def _publish_markers(self, header, tracked):
        if self.markers_pub.get_subscription_count() == 0:
            return
        lists = []
        for item in tracked:
            runtime = self.estimator.objects[item.pose.object_name]
            centre, size = self.object_boxes[item.pose.object_name]
            mesh_uri = None
            if self.params['marker_mesh'] and runtime.model.mesh_path:
                try:
                    mesh_uri = mesh_resource_uri(runtime.model.resolve_mesh_path())
                except Exception:  # no mesh file: a box instead
                    mesh_uri = None
            lists.append(instance_markers(
                header, messages.frame_name('', item.pose.object_name, item.track_id),
                item.pose.R, item.pose.t, runtime.model.shape(item.pose.result.coeffs),
                item.pose.score, centre, size, mesh_uri, runtime.model.mesh_scale))
        self.markers_pub.publish(self.marker_book.frame(header, lists))

    def _publish_diagnostics(self):
        now = time.monotonic()
        with self._lock:
            self._expire_held(now)  # so that the counters account for every expired image
            stats = dict(self._stats)
            latencies = np.array(self._latencies_ms) if self._latencies_ms else np.zeros(0)
            camera_age = None if self._last_camera_time is None else now - self._last_camera_time
            input_rate, output_rate = self._input_rate.rate(now), self._output_rate.rate(now)
            last_error = self._last_error
        status = DiagnosticStatus(name=f'{self.get_name()}: pose estimation',
                                  hardware_id=self.get_fully_qualified_name())
        status.level, status.message = DiagnosticStatus.OK, 'ok'
        if camera_age is None and stats.get('images_received'):
            status.level, status.message = DiagnosticStatus.WARN, 'no usable camera_info'
        elif last_error:
            status.level, status.message = DiagnosticStatus.WARN, last_error[:200]
        values = {
            'input_rate_hz': f'{input_rate:.2f}', 'output_rate_hz': f'{output_rate:.2f}',
            'latency_median_ms': f'{np.median(latencies):.1f}' if latencies.size else 'nan',
            'latency_p95_ms': f'{np.percentile(latencies, 95):.1f}' if latencies.size else 'nan',
            'last_error': last_error, 'device': str(self.estimator.device),
            'camera_info_age_s': 'never' if camera_age is None else f'{camera_age:.1f}',
        }
        for key in ('images_received', 'frames_lost_in_transport', 'frames_processed',
                    'frames_dropped', 'frames_without_camera_info', 'frames_without_detections',
                    'frames_size_mismatch', 'camera_info_rejected', 'errors'):
            values[key] = str(stats.get(key, 0))
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    # ---------------------------------------------------------------- errors
    def _record_error(self, message, key='errors'):
        with self._lock:
            self._stats['errors'] += 1
            self._last_error = message
        self._warn(key, message)

    def _warn(self, key, message):
        """Log a warning at most once per WARN_PERIOD_S for each kind `key`."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_warn.get(key, -1e9) < WARN_PERIOD_S:
                return
            self._last_warn[key] = now
        self.get_logger().warning(message)

    def stop(self):
        """Stop the worker thread (call before destroying the node)."""
        with self._lock:
            self._running = False
            self._lock.notify_all()
        self._worker.join(timeout=5.0)

    def statistics(self):
        """Return a copy of the counters (frames received, processed, dropped, errors, ...)."""
        with self._lock:
            return dict(self._stats)


def main(args=None):
    """Run the node until SIGINT/SIGTERM; exit 1 with a one-line message if it cannot start."""
    rclpy.init(args=args)
    node = None
    try:
        node = PoseKpNode()
        rclpy.spin(node)
    except StartupError as error:
        print(f'pose_kp_node: {error}', file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT during start-up shut the context down before spin() made its executor: a clean
        # shutdown, not an error.
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

