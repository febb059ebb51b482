"""The pose node's outputs: poses, detections, TF, markers and overlay of a frame; diagnostics.

Every output of a frame carries the image's header (same stamp, same frame_id: the camera optical
frame). Markers and the overlay image are built only while someone subscribes to them. Topics,
types and QoS are documented in docs/node.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from pose_kp_ros.pipeline.overlay import draw_pose
from pose_kp_ros.ros import messages
from pose_kp_ros.ros.image_conversions import numpy_to_image
from pose_kp_ros.ros.markers import MarkerBook, instance_markers, mesh_resource_uri
from pose_kp_ros.runtime.frame_scheduler import COUNTERS, Snapshot

if TYPE_CHECKING:
    from pose_kp_ros.pipeline.estimator import ObjectRuntime
    from pose_kp_ros.pipeline.stage_timer import StageTimer
    from pose_kp_ros.pipeline.tracking import TrackedPose


class Publishers:
    """The publishers of a pose node and the messages it sends (called from one thread).

    `objects`: the pipeline's {name: ObjectRuntime} (outline points for boxes, model for markers);
    `with_covariance`: also publish '~/pose_cov/<object>'.
    """

    def __init__(self, node: Node, objects: Mapping[str, ObjectRuntime],
                 with_covariance: bool) -> None:
        self.node = node
        self.objects = objects
        self.object_boxes = {name: messages.object_box(runtime.outline)
                             for name, runtime in objects.items()}
        self.marker_book = MarkerBook()
        self.pose = {name: node.create_publisher(PoseStamped, f'~/pose/{name}', 10)
                     for name in objects}
        self.pose_cov = {}
        if with_covariance:
            self.pose_cov = {
                name: node.create_publisher(PoseWithCovarianceStamped, f'~/pose_cov/{name}', 10)
                for name in objects}
        self.detections = node.create_publisher(Detection3DArray, '~/detections', 10)
        self.tf = node.create_publisher(
            TFMessage, '/tf', QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.debug_image = node.create_publisher(Image, '~/debug_image', 1)
        self.markers = node.create_publisher(MarkerArray, '~/markers', 10)
        self.diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)

    def publish(self, header: Header, tracked: list[TrackedPose], image: np.ndarray,
                K: np.ndarray, params: Mapping[str, Any], timer: StageTimer | None = None,
                ) -> None:
        """Publish the outputs of one frame: its TrackedPoses, RGB image and intrinsics (3, 3).

        `params`: the node's parameters in force (publish_tf, tf_prefix, marker_mesh,
        debug_image_scale); `timer`: optional StageTimer (stages 'markers' and 'overlay').
        """
        stage = timer.stage if timer is not None else nullcontext
        best = {}
        for item in tracked:
            name = item.pose.object_name
            if name not in best or item.pose.score > best[name].pose.score:
                best[name] = item
        for name, item in best.items():
            pose = item.pose
            self.pose[name].publish(messages.pose_stamped(header, pose.R, pose.t))
            if name in self.pose_cov:
                self.pose_cov[name].publish(messages.pose_with_covariance_stamped(
                    header, pose.R, pose.t, pose.covariance))
        detections = []
        for item in tracked:
            pose = item.pose
            centre, size = self.object_boxes[pose.object_name]
            detections.append(messages.detection3d(header, pose.object_name, item.track_id,
                                                   pose.score, pose.R, pose.t,
                                                   pose.covariance, centre, size))
        self.detections.publish(messages.detection3d_array(header, detections))
        if params['publish_tf'] and tracked:
            self.tf.publish(TFMessage(transforms=[
                messages.transform_stamped(
                    header, messages.frame_name(params['tf_prefix'], i.pose.object_name,
                                                i.track_id), i.pose.R, i.pose.t)
                for i in tracked]))
        if self.markers.get_subscription_count() > 0:
            with stage('markers'):
                self._publish_markers(header, tracked, params['marker_mesh'])
        if self.debug_image.get_subscription_count() > 0:
            with stage('overlay'):
                self._publish_overlay(header, tracked, image, K, params['debug_image_scale'])

    def _publish_markers(self, header, tracked, with_mesh):
        lists = []
        for item in tracked:
            runtime = self.objects[item.pose.object_name]
            centre, size = self.object_boxes[item.pose.object_name]
            mesh_uri = None
            if with_mesh and runtime.model.mesh_path:
                try:
                    mesh_uri = mesh_resource_uri(runtime.model.resolve_mesh_path())
                except Exception:  # no mesh file: a box instead
                    mesh_uri = None
            lists.append(instance_markers(
                header, messages.frame_name('', item.pose.object_name, item.track_id),
                item.pose.R, item.pose.t, runtime.model.shape(item.pose.result.coeffs),
                item.pose.score, centre, size, mesh_uri, runtime.model.mesh_scale))
        self.markers.publish(self.marker_book.frame(header, lists))

    def _publish_overlay(self, header, tracked, image, K, scale):
        """Publish the image with each pose drawn on it, resized by `scale` (<= 1)."""
        overlay = image.copy()
        for item in tracked:
            runtime = self.objects[item.pose.object_name]
            draw_pose(overlay, K, item.pose.R, item.pose.t, runtime.outline,
                      item.pose.keypoints, item.pose.confidences,
                      label=f'{item.pose.object_name}_{item.track_id} {item.pose.score:.2f}')
        if scale < 1.0:
            overlay = cv2.resize(overlay, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self.debug_image.publish(numpy_to_image(overlay, 'rgb8', header))

    def publish_diagnostics(self, snapshot: Snapshot, device: str,
                            stages: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """Publish one /diagnostics status: rates, latency, counters, camera_info state, errors.

        `stages`: optional StageHistory.summary() of the last frames: each stage's median
        milliseconds as 'stage_ms/<stage>' (nested stages 'stage_ms/<parent>/<stage>').
        """
        status = DiagnosticStatus(name=f'{self.node.get_name()}: pose estimation',
                                  hardware_id=self.node.get_fully_qualified_name())
        status.level, status.message = DiagnosticStatus.OK, 'ok'
        if snapshot.camera_age_s is None and snapshot.counters['images_received']:
            status.level, status.message = DiagnosticStatus.WARN, 'no usable camera_info'
        elif snapshot.last_error:
            status.level, status.message = DiagnosticStatus.WARN, snapshot.last_error[:200]
        latencies = np.array(snapshot.latencies_ms)
        camera_age = snapshot.camera_age_s
        values = {
            'input_rate_hz': f'{snapshot.input_rate_hz:.2f}',
            'output_rate_hz': f'{snapshot.output_rate_hz:.2f}',
            'latency_median_ms': f'{np.median(latencies):.1f}' if latencies.size else 'nan',
            'latency_p95_ms': f'{np.percentile(latencies, 95):.1f}' if latencies.size else 'nan',
            'last_error': snapshot.last_error, 'device': device,
            'camera_info_age_s': 'never' if camera_age is None else f'{camera_age:.1f}',
        }
        values.update((name, str(snapshot.counters[name])) for name in COUNTERS)
        values.update((f'stage_ms/{name}', f"{row['median_ms']:.2f}")
                      for name, row in (stages or {}).items())
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.node.get_clock().now().to_msg()
        self.diagnostics.publish(array)
