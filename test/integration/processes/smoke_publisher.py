"""Publish a fixed Image, CameraInfo and TFMessage until a receiver has them (DDS smoke test).

Usage: smoke_publisher.py SECONDS. Waits for subscribers on all three topics, then publishes at
10 Hz for at most SECONDS, and exits 0 (or 1 if nobody subscribed in time).
"""

import sys
import time

from geometry_msgs.msg import TransformStamped
import numpy as np
import rclpy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from pose_kp_ros.ros.image_conversions import numpy_to_image


def smoke_image():
    """Return the (480, 640, 3) uint8 test pattern both processes agree on."""
    return np.random.default_rng(7).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    rclpy.init()
    node = rclpy.create_node('smoke_publisher')
    image_pub = node.create_publisher(Image, 'camera/image_raw', 10)
    info_pub = node.create_publisher(CameraInfo, 'camera/camera_info', 10)
    tf_pub = node.create_publisher(TFMessage, '/tf', 10)
    publishers = (image_pub, info_pub, tf_pub)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and min(p.get_subscription_count() for p in publishers) == 0:
        time.sleep(0.05)
    if min(p.get_subscription_count() for p in publishers) == 0:
        print('smoke_publisher: no subscriber appeared', file=sys.stderr)
        return 1
    image = smoke_image()
    sent = 0
    while time.monotonic() < deadline and min(p.get_subscription_count() for p in publishers) > 0:
        stamp = node.get_clock().now().to_msg()
        image_msg = numpy_to_image(image, 'rgb8')
        image_msg.header.stamp, image_msg.header.frame_id = stamp, 'camera_optical_frame'
        info = CameraInfo()
        info.header = image_msg.header
        info.width, info.height = 640, 480
        info.k = [572.4114, 0.0, 325.2611, 0.0, 573.57043, 242.04899, 0.0, 0.0, 1.0]
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        transform = TransformStamped()
        transform.header = image_msg.header
        transform.child_frame_id = 'driller_0'
        transform.transform.translation.z = 1.0
        image_pub.publish(image_msg)
        info_pub.publish(info)
        tf_pub.publish(TFMessage(transforms=[transform]))
        sent += 1
        time.sleep(0.1)
    print(f'smoke_publisher: sent {sent} sets')
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
