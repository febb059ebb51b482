"""Pipeline results -> ROS messages, and Detection2DArray -> boxes."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from pose_kp_ros.geometry.rotations import quaternion_xyzw_to_matrix
from pose_kp_ros.ros.messages import (
    boxes_from_detection2d_array,
    detection3d,
    detection3d_array,
    frame_name,
    object_box,
    pose_stamped,
    pose_with_covariance_stamped,
    transform_stamped,
)

R = Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix()
T = np.array([0.1, -0.05, 0.8])


def header():
    h = Header(frame_id='camera_optical_frame')
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def quat_matrix(q):
    return quaternion_xyzw_to_matrix([q.x, q.y, q.z, q.w])


def test_pose_and_transform_carry_the_pose_and_the_image_header():
    msg = pose_stamped(header(), R, T)
    assert msg.header.frame_id == 'camera_optical_frame' and msg.header.stamp.nanosec == 345
    assert np.allclose(quat_matrix(msg.pose.orientation), R)
    assert (msg.pose.position.x, msg.pose.position.z) == pytest.approx((0.1, 0.8))
    tf = transform_stamped(header(), frame_name('', 'driller', 2), R, T)
    assert tf.child_frame_id == 'driller_2' and tf.header.frame_id == 'camera_optical_frame'
    assert tf.transform.translation.y == pytest.approx(-0.05)
    assert np.allclose(quat_matrix(tf.transform.rotation), R)


def test_covariance_is_row_major_and_nan_becomes_zero():
    cov = np.arange(36, dtype=float).reshape(6, 6)
    msg = pose_with_covariance_stamped(header(), R, T, cov)
    assert list(msg.pose.covariance)[:7] == [0, 1, 2, 3, 4, 5, 6]
    bad = pose_with_covariance_stamped(header(), R, T, np.full((6, 6), np.nan))
    assert not any(bad.pose.covariance)


def test_detection3d_box_is_centred_on_the_object_box():
    points = np.array([[0.0, 0.0, 0.0], [0.2, 0.1, 0.3]])
    centre, size = object_box(points)
    assert np.allclose(size, [0.2, 0.1, 0.3])
    det = detection3d(header(), 'driller', 0, 0.75, R, T, np.eye(6), centre, size)
    assert det.id == 'driller_0'
    assert det.results[0].hypothesis.class_id == 'driller'
    assert det.results[0].hypothesis.score == pytest.approx(0.75)
    expected_centre = R @ centre + T
    got = det.bbox.center.position
    assert np.allclose([got.x, got.y, got.z], expected_centre)
    assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == pytest.approx((0.2, 0.1, 0.3))
    array = detection3d_array(header(), [det])
    assert len(array.detections) == 1 and array.header.frame_id == 'camera_optical_frame'


def detection(class_id, cx, cy, w, h, score=0.9, theta=0.0):
    det = Detection2D()
    if class_id is not None:
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, score
        det.results = [hyp]
    det.bbox.center.position.x, det.bbox.center.position.y = cx, cy
    det.bbox.center.theta = theta
    det.bbox.size_x, det.bbox.size_y = w, h
    return det


def test_detection2d_array_to_boxes_with_reasons_for_skips():
    msg = Detection2DArray(detections=[
        detection('driller', 100.0, 120.0, 40.0, 60.0),
        detection('cat', 10.0, 10.0, 5.0, 5.0),
        detection('driller', math.nan, 0.0, 10.0, 10.0),
        detection('driller', 50.0, 50.0, -1.0, 10.0),
        detection(None, 300.0, 200.0, 20.0, 20.0),
        detection('driller', 200.0, 200.0, 20.0, 10.0, theta=math.pi / 2),
    ])
    boxes, skipped = boxes_from_detection2d_array(msg, ['driller'], default_object='driller')
    assert np.allclose(boxes['driller'], [[80, 90, 120, 150], [290, 190, 310, 210],
                                          [195, 190, 205, 210]])
    assert len(skipped) == 3
    assert "class 'cat'" in skipped[0] and 'unusable box' in skipped[1]
    none_default, skipped = boxes_from_detection2d_array(msg, ['driller'])
    assert len(none_default['driller']) == 2 and len(skipped) == 4
