"""Receive PoseStamped messages on a topic and print them as JSON.

Usage: pose_receiver.py TOPIC COUNT SECONDS. Also subscribes to /camera/image (so that a camera
waiting for subscribers starts). Exits after COUNT poses (or SECONDS) and prints
[[x, y, z], ...], the positions in arrival order.
"""

import json
import sys
import time

from geometry_msgs.msg import PoseStamped
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main():
    topic, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node('pose_receiver')
    positions = []

    def on_pose(msg):
        p = msg.pose.position
        positions.append([p.x, p.y, p.z])

    node.create_subscription(PoseStamped, topic, on_pose, 10)
    node.create_subscription(Image, '/camera/image', lambda msg: None,
                             QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(positions) < count:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(positions))
    node.destroy_node()
    rclpy.shutdown()
    return 0 if len(positions) >= count else 1


if __name__ == '__main__':
    sys.exit(main())
