"""RViz markers of estimated objects: mesh (or box), keypoint spheres and a text label.

Each instance owns marker ids in its own namespace '<object>_<track id>'; instances that
disappear get DELETE markers once, so RViz never shows stale objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from geometry_msgs.msg import Point
import numpy as np
from numpy.typing import ArrayLike
from visualization_msgs.msg import Marker, MarkerArray

from pose_kp_ros.ros.messages import pose_msg

if TYPE_CHECKING:
    from std_msgs.msg import Header

MESH_ID, KEYPOINTS_ID, LABEL_ID = 0, 1, 2


def mesh_resource_uri(mesh_path: Path | str) -> str:
    """Return a URI RViz can load for a local mesh file path ('file://' + absolute path)."""
    return f'file://{mesh_path}'


def instance_markers(header: Header, namespace: str, R: ArrayLike, t: ArrayLike,
                     keypoints_3d: ArrayLike, score: float, box_centre: ArrayLike,
                     box_size: ArrayLike, mesh_uri: str | None = None, mesh_scale: float = 1.0,
                     lifetime_s: float = 0.0) -> list[Marker]:
    """Return the markers of one instance at pose R (3, 3), t (3,) metres in header.frame_id.

    keypoints_3d: (N, 3) object-frame keypoints (metres) drawn as spheres; box_centre/box_size
    (3,) metres the object box used when no mesh URI is given; mesh_scale: mesh units to
    metres; lifetime_s: seconds RViz keeps the markers (0: forever).
    """
    common = {'header': header, 'ns': namespace, 'action': Marker.ADD}
    body = Marker(id=MESH_ID, **common)
    if mesh_uri:
        body.type = Marker.MESH_RESOURCE
        body.mesh_resource = mesh_uri
        body.pose = pose_msg(R, t)
        body.scale.x = body.scale.y = body.scale.z = float(mesh_scale)
        body.mesh_use_embedded_materials = True
    else:
        body.type = Marker.CUBE
        body.pose = pose_msg(R, np.asarray(R) @ np.asarray(box_centre) + np.asarray(t))
        body.scale.x, body.scale.y, body.scale.z = (float(max(v, 1e-3)) for v in box_size)
    body.color.r, body.color.g, body.color.b, body.color.a = 0.1, 0.7, 1.0, 0.6
    spheres = Marker(id=KEYPOINTS_ID, type=Marker.SPHERE_LIST, pose=pose_msg(R, t), **common)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.01
    spheres.color.r, spheres.color.g, spheres.color.a = 1.0, 0.8, 1.0
    spheres.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in keypoints_3d]
    label = Marker(id=LABEL_ID, type=Marker.TEXT_VIEW_FACING, **common)
    centre = np.asarray(R) @ np.asarray(box_centre) + np.asarray(t)
    label.pose.position.x = float(centre[0])
    label.pose.position.y = float(centre[1] - 0.6 * np.max(box_size))  # above: optical y is down
    label.pose.position.z = float(centre[2])
    label.scale.z = 0.03
    label.color.r = label.color.g = label.color.b = label.color.a = 1.0
    label.text = f'{namespace} {score:.2f}'
    markers = [body, spheres, label]
    for marker in markers:
        marker.lifetime.sec = int(lifetime_s)
        marker.lifetime.nanosec = int((lifetime_s % 1.0) * 1e9)
    return markers


def deletion_markers(header: Header, namespaces: Iterable[str]) -> list[Marker]:
    """Return DELETE markers for every marker id of the given instance namespaces."""
    return [Marker(header=header, ns=ns, id=marker_id, action=Marker.DELETE)
            for ns in sorted(namespaces) for marker_id in (MESH_ID, KEYPOINTS_ID, LABEL_ID)]


class MarkerBook:
    """Remembers which instance namespaces are shown, to delete those that disappear."""

    def __init__(self) -> None:
        self.shown = set()

    def frame(self, header: Header,
              instance_marker_lists: Sequence[Sequence[Marker]]) -> MarkerArray:
        """Return the MarkerArray of one frame: new/updated instances plus deletions."""
        current = {markers[0].ns for markers in instance_marker_lists}
        array = MarkerArray()
        array.markers = [m for markers in instance_marker_lists for m in markers]
        array.markers += deletion_markers(header, self.shown - current)
        self.shown = current
        return array
