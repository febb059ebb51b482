"""Receive the smoke test's Image, CameraInfo and TFMessage and print what arrived as JSON.

Usage: smoke_receiver.py SECONDS. Exits once one of each arrived (or after SECONDS).
"""

import hashlib
import json
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from pose_kp_ros.ros.image_conversions import image_to_rgb


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    rclpy.init()
    node = rclpy.create_node('smoke_receiver')
    got = {}

    def on_image(msg):
        rgb = image_to_rgb(msg)
        got['image'] = {'shape': list(rgb.shape),
                        'sha256': hashlib.sha256(rgb.tobytes()).hexdigest(),
                        'frame_id': msg.header.frame_id}

    def on_info(msg):
        got['camera_info'] = {'k': list(msg.k), 'width': msg.width, 'height': msg.height}

    def on_tf(msg):
        got['tf'] = [{'child': t.child_frame_id, 'parent': t.header.frame_id,
                      'z': t.transform.translation.z} for t in msg.transforms]

    node.create_subscription(Image, 'camera/image_raw', on_image, qos_profile_sensor_data)
    node.create_subscription(CameraInfo, 'camera/camera_info', on_info, 10)
    node.create_subscription(TFMessage, '/tf', on_tf, 10)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(got) < 3:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(got))
    node.destroy_node()
    rclpy.shutdown()
    return 0 if len(got) == 3 else 1


if __name__ == '__main__':
    sys.exit(main())
