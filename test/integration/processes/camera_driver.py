"""Drive a pose_kp node over DDS: replay LM-O frames (plus optional faults), record its outputs.

Usage: camera_driver.py PLAN_JSON. The plan (all optional):
  {"frames": 10, "rate_hz": 10, "faults": ["bad_encoding", ...], "camera_info": true,
   "camera_info_after": 0, "size_mismatch": [3, 6], "image_pool": 4,
   "boxes": false, "node": "/pose_kp", "object": "driller", "settle_s": 2.0, "timeout_s": 60}
With "boxes", each frame is followed by a vision_msgs/Detection2DArray on 'detections' holding
the ground-truth box of the driller (its keypoints projected with the true pose, padded).
"camera_info_after": N publishes camera_info only from frame N on (a late camera driver);
"camera_info_after_images": S sends no camera_info with the frames: before them a zero-K one until
the node's diagnostics count it as rejected (so the node is subscribed to it, without usable
intrinsics), after them (and the last frame's period) one good camera_info S seconds later;
"size_mismatch": [a, b] sends frames a..b-1 cropped to 320x240 while camera_info says 640x480;
"compressed": true sends JPEG sensor_msgs/CompressedImage on 'camera/image/compressed' instead of
raw images; "rate_hz" <= 0 sends as fast as possible; "image_pool": N cycles over the first N
photos (kept in memory, for bursts); "tail": [n, rate_hz] sends n more frames at rate_hz after
those (after a burst); "debug_image": true also subscribes to the node's debug image (best effort)
and reports [sec, nanosec, width, height, encoding] of each; "settle_until_answered": true
settles on (after settle_s, until timeout_s) until the last frame is answered and two
diagnostics statuses came after that answer. Publishing is reliable: when the
node's queue is full a publish blocks, then fails, and is retried (back-pressure; the retries are
reported as "publish_retries").
After each frame it prints `progress {"sent": n, "detections": m}`; SIGUSR1 ends the stream
early (then it settles and reports as usual). The last line printed is one JSON object: the
stamps sent, the Detection3DArray/pose/TF/diagnostics/debug images received (TF as [parent,
child, sec, nanosec, tx, ty, tz, qx, qy, qz, qw]).
Faults are published between good frames (each once the good frame before it is answered):
bad_encoding, short_data, bad_step, tiny_image,
huge_header, nan_camera_info, zero_camera_info, wrong_size.
"""

import functools
import json
import signal
import sys
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.subscription import RCLError
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import (
    Detection2D,
    Detection2DArray,
    Detection3DArray,
    ObjectHypothesisWithPose,
)

from pose_kp_ros.data.package_data import lmo_camera, lmo_ground_truth
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.paths import data_path
from pose_kp_ros.ros.image_conversions import numpy_to_image
from pose_kp_ros.ros.lmo_camera_node import camera_info_msg


def ground_truth_detections(model, R, t, K, header):
    """Return a Detection2DArray with the padded box of the model's projected keypoints."""
    uv = project_object_points(model.keypoints, R, t, K)
    low, high = uv.min(0), uv.max(0)
    pad = 0.15 * (high - low)
    detection = Detection2D(header=header)
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = model.name, 1.0
    detection.results = [hypothesis]
    detection.bbox.center.position.x, detection.bbox.center.position.y = (low + high) / 2.0
    detection.bbox.size_x, detection.bbox.size_y = high - low + 2 * pad
    return Detection2DArray(header=header, detections=[detection])


@functools.lru_cache(maxsize=8)
def read_rgb(path):
    """Return the (H, W, 3) uint8 RGB photo at `path` (the last few are kept in memory)."""
    return cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def zero_camera_info(K, size, header):
    """Return a CameraInfo of the right size whose K and P are all zero (an unusable one)."""
    bad = camera_info_msg(K, size, header)
    bad.k = [0.0] * 9
    bad.p = [0.0] * 12
    return bad


def stamped_header(node):
    """Return a header stamped now in the camera's optical frame."""
    header = Image().header
    header.stamp, header.frame_id = node.get_clock().now().to_msg(), 'camera_optical_frame'
    return header


def publish_until(node, publisher, make_msg, done, until):
    """Publish make_msg(header) every 0.1 s, spinning `node`, until done() or monotonic `until`."""
    while time.monotonic() < until and not done():
        publisher.publish(make_msg(stamped_header(node)))
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)


def fault_messages(kind, image, K, size, header):
    """Return [(topic, message)] publishing one fault of `kind`."""
    good = numpy_to_image(image, 'rgb8', header)
    if kind == 'bad_encoding':
        good.encoding = 'yuv422_weird'
        return [('image', good)]
    if kind == 'short_data':
        good.data = bytes(good.data[:1000])
        return [('image', good)]
    if kind == 'bad_step':
        good.step = 10
        return [('image', good)]
    if kind == 'tiny_image':
        return [('image', numpy_to_image(np.zeros((1, 1, 3), np.uint8), 'rgb8', header))]
    if kind == 'huge_header':
        return [('image', Image(header=header, height=8000, width=8000, encoding='rgb8',
                                step=24000, data=bytes(100)))]
    if kind == 'nan_camera_info':
        bad = camera_info_msg(K, size, header)
        bad.k = [float('nan')] * 9
        bad.p = [float('nan')] * 12
        return [('camera_info', bad)]
    if kind == 'zero_camera_info':
        return [('camera_info', zero_camera_info(K, size, header))]
    if kind == 'wrong_size':
        return [('image', numpy_to_image(image[:240, :320].copy(), 'rgb8', header))]
    raise ValueError(f'unknown fault {kind}')


def main():
    plan = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    frames = int(plan.get('frames', 10))
    tail_frames, tail_rate = plan.get('tail', [0, 1.0])
    node_ns = plan.get('node', '/pose_kp')
    object_name = plan.get('object', 'driller')
    rclpy.init()
    node = rclpy.create_node('camera_driver')
    # Reliable, so that no test frame is lost on a loaded machine (the node under test is
    # started with image_qos:=reliable; with sensor_data it would still match, best effort).
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {'image': node.create_publisher(Image, 'camera/image', qos),
            'compressed': node.create_publisher(CompressedImage, 'camera/image/compressed', qos),
            'camera_info': node.create_publisher(CameraInfo, 'camera/camera_info', qos),
            'detections': node.create_publisher(Detection2DArray, 'camera/detections', 10)}
    model = ObjectModel.from_yaml(data_path('objects', f'{object_name}.yaml'))
    got = {'detections': [], 'poses': [], 'tf': [], 'diagnostics': [], 'debug_images': []}
    # Deep queues: while bursting this process takes one message per frame sent, so outputs
    # wait here rather than being overwritten.
    out_depth = 1000
    node.create_subscription(
        Detection3DArray, f'{node_ns}/detections',
        lambda m: got['detections'].append(
            [m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id,
             [[d.id, d.results[0].hypothesis.score, d.results[0].pose.pose.position.x,
               d.results[0].pose.pose.position.y, d.results[0].pose.pose.position.z]
              for d in m.detections]]), out_depth)
    node.create_subscription(
        PoseStamped, f'{node_ns}/pose/{object_name}',
        lambda m: got['poses'].append([m.header.stamp.sec, m.header.stamp.nanosec,
                                       m.pose.position.x, m.pose.position.y,
                                       m.pose.position.z, m.pose.orientation.x,
                                       m.pose.orientation.y, m.pose.orientation.z,
                                       m.pose.orientation.w]), out_depth)
    node.create_subscription(
        TFMessage, '/tf', lambda m: got['tf'].extend(
            [[t.header.frame_id, t.child_frame_id, t.header.stamp.sec, t.header.stamp.nanosec,
              t.transform.translation.x, t.transform.translation.y, t.transform.translation.z,
              t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
              t.transform.rotation.w] for t in m.transforms]), out_depth)
    node.create_subscription(
        DiagnosticArray, '/diagnostics', lambda m: got['diagnostics'].extend(
            [{'level': int.from_bytes(s.level, 'little') if isinstance(s.level, bytes)
              else int(s.level), 'message': s.message,
              **{kv.key: kv.value for kv in s.values}} for s in m.status]), 10)

    if plan.get('debug_image'):
        node.create_subscription(
            Image, f'{node_ns}/debug_image',
            lambda m: got['debug_images'].append([m.header.stamp.sec, m.header.stamp.nanosec,
                                                  m.width, m.height, m.encoding]),
            qos_profile_sensor_data)

    deadline = time.monotonic() + float(plan.get('timeout_s', 60))
    image_pub = pubs['compressed' if plan.get('compressed') else 'image']
    while time.monotonic() < deadline and (
            image_pub.get_subscription_count() == 0 or (
                plan.get('camera_info', True) and
                pubs['camera_info'].get_subscription_count() == 0)):
        rclpy.spin_once(node, timeout_sec=0.05)
    while time.monotonic() < deadline and node.count_publishers(f'{node_ns}/detections') == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    while plan.get('boxes') and time.monotonic() < deadline and \
            pubs['detections'].get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    settle = time.monotonic() + 1.0  # let reliable connections complete: no first frame lost
    while time.monotonic() < settle:
        rclpy.spin_once(node, timeout_sec=0.05)
    K, size = lmo_camera()
    ground_truth = lmo_ground_truth(8)
    pool = min(len(ground_truth), int(plan.get('image_pool', len(ground_truth))))
    mismatch = range(*plan.get('size_mismatch', [0, 0]))
    camera_info_after = int(plan.get('camera_info_after', 0))
    after_images = plan.get('camera_info_after_images')

    def diagnosed(key, value):
        """Return True if the node's newest diagnostics report `key` other than `value`."""
        return bool(got['diagnostics']) and got['diagnostics'][-1].get(key, value) != value

    # On a loaded machine the node may match this camera_info publisher seconds after the image
    # one (both are new): send camera_info alone until the node's diagnostics report one, so the
    # first frames are not skipped for want of intrinsics (for the held-frame case: an unusable
    # one, so that the good one sent after the frames is not lost before the match).
    until = min(deadline, time.monotonic() + 15.0)
    if after_images is not None:
        publish_until(node, pubs['camera_info'], lambda h: zero_camera_info(K, size, h),
                      lambda: diagnosed('camera_info_rejected', '0'), until)
    elif plan.get('camera_info', True) and camera_info_after == 0:
        publish_until(node, pubs['camera_info'], lambda h: camera_info_msg(K, size, h),
                      lambda: diagnosed('camera_info_age_s', 'never'), until)
    sent = []
    faults = list(plan.get('faults', []))
    stop = []
    retries = []

    def publish(topic, msg):
        """Publish; while the reliable queue stays full (publish fails), spin and retry."""
        for _ in range(100):
            try:
                return pubs[topic].publish(msg)
            except RCLError:
                retries.append(topic)
                rclpy.spin_once(node, timeout_sec=0.01)
        raise RuntimeError(f'cannot publish on {topic}: the subscriber never caught up')

    signal.signal(signal.SIGUSR1, lambda *_: stop.append(True))
    for index in range(frames + tail_frames):
        if stop:
            break
        rate = float(plan.get('rate_hz', 10.0)) if index < frames else float(tail_rate)
        path, R, t = ground_truth[index % pool]
        image = read_rgb(str(path))
        header = stamped_header(node)
        now = header.stamp
        if plan.get('camera_info', True) and after_images is None and index >= camera_info_after:
            publish('camera_info', camera_info_msg(K, size, header))
        if plan.get('boxes'):
            pubs['detections'].publish(ground_truth_detections(model, R, t, K, header))
        shown = image[:240, :320].copy() if index in mismatch else image
        if plan.get('compressed'):
            jpeg = cv2.imencode('.jpg', shown[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            publish('compressed', CompressedImage(
                header=header, format='rgb8; jpeg compressed bgr8', data=jpeg.tobytes()))
        else:
            publish('image', numpy_to_image(shown, 'rgb8', header))
        sent.append([now.sec, now.nanosec, str(path.name)])
        if faults and index >= 1:
            kind = faults.pop(0)
            # The node keeps only its newest frame: send the fault once the good frame is
            # answered (the node is idle), so no fault is replaced unseen on a loaded machine.
            answer_by = time.monotonic() + 5.0
            while time.monotonic() < answer_by and [now.sec, now.nanosec] not in [
                    d[:2] for d in got['detections']]:
                rclpy.spin_once(node, timeout_sec=0.02)
            fault_header = stamped_header(node)
            for topic, msg in fault_messages(kind, image, K, size, fault_header):
                pubs[topic].publish(msg)
            if kind.endswith('camera_info'):  # a good camera_info follows, as from a driver
                rclpy.spin_once(node, timeout_sec=0.1)
                pubs['camera_info'].publish(camera_info_msg(K, size, fault_header))
            fault_seen_by = time.monotonic() + 0.5  # time to process it before the next frame
            while time.monotonic() < fault_seen_by:
                rclpy.spin_once(node, timeout_sec=0.02)
        end = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
        rclpy.spin_once(node, timeout_sec=0.0)
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=max(0.0, end - time.monotonic()))
        print('progress', json.dumps({'sent': len(sent), 'detections': len(got['detections'])}),
              flush=True)
    if after_images is not None:
        end = time.monotonic() + float(after_images)
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=max(0.0, end - time.monotonic()))
        publish('camera_info', camera_info_msg(K, size, stamped_header(node)))
    settle = time.monotonic() + float(plan.get('settle_s', 3.0))
    while time.monotonic() < min(settle, deadline):
        rclpy.spin_once(node, timeout_sec=0.05)
    if plan.get('settle_until_answered') and sent:
        # a slow machine may still be working on the last frame: wait for its answer, then for
        # two diagnostics statuses after it (the node counts a frame just after publishing it)
        last = tuple(sent[-1][:2])
        while time.monotonic() < deadline and \
                all((d[0], d[1]) != last for d in got['detections']):
            rclpy.spin_once(node, timeout_sec=0.05)
        seen = len(got['diagnostics'])
        while time.monotonic() < deadline and len(got['diagnostics']) < seen + 2:
            rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({'sent': sent, 'publish_retries': len(retries), **got}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
