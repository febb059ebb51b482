"""RViz markers: mesh or box body, keypoints, label; stale instances are deleted once."""

import numpy as np
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from pose_kp_ros.ros.markers import MarkerBook, instance_markers


def markers(ns, mesh_uri=None):
    return instance_markers(Header(frame_id='cam'), ns, np.eye(3), np.array([0, 0, 1.0]),
                            np.zeros((4, 3)), 0.8, np.zeros(3), np.array([0.1, 0.2, 0.3]),
                            mesh_uri=mesh_uri, mesh_scale=0.001)


def test_mesh_or_box_body_keypoints_and_label():
    body, spheres, label = markers('driller_0', mesh_uri='file:///m.ply')
    assert body.type == Marker.MESH_RESOURCE and body.mesh_resource == 'file:///m.ply'
    assert body.scale.x == 0.001
    assert spheres.type == Marker.SPHERE_LIST and len(spheres.points) == 4
    assert label.text == 'driller_0 0.80' and label.header.frame_id == 'cam'
    box = markers('driller_0')[0]
    assert box.type == Marker.CUBE and (box.scale.x, box.scale.z) == (0.1, 0.3)


def test_stale_instances_are_deleted_once():
    book = MarkerBook()
    first = book.frame(Header(), [markers('driller_0'), markers('driller_1')])
    assert len(first.markers) == 6
    second = book.frame(Header(), [markers('driller_1')])
    deleted = [m for m in second.markers if m.action == Marker.DELETE]
    assert {m.ns for m in deleted} == {'driller_0'} and len(deleted) == 3
    third = book.frame(Header(), [markers('driller_1')])
    assert all(m.action == Marker.ADD for m in third.markers)
