"""Pipeline results <-> ROS messages (geometry_msgs, vision_msgs, tf2_msgs). No node state here.

Poses are of the object in the camera optical frame: the header is the image's header (same stamp,
same frame_id), so TF parent = image frame, child = `<prefix><object>_<track id>`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
import math
from typing import TYPE_CHECKING

from geometry_msgs.msg import (
    Pose,
    PoseStamped,
    PoseWithCovariance,
    PoseWithCovarianceStamped,
    TransformStamped,
)
import numpy as np
from numpy.typing import ArrayLike
from vision_msgs.msg import (
    BoundingBox3D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
)

from pose_kp_ros.geometry.rotations import matrix_to_quaternion_xyzw

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header


def stamp_seconds(stamp: Time) -> float:
    """Return a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def pose_msg(R: ArrayLike, t: ArrayLike) -> Pose:
    """Return geometry_msgs/Pose for rotation R (3, 3) and translation t (3,) metres."""
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in t)
    x, y, z, w = matrix_to_quaternion_xyzw(R)
    msg.orientation.x, msg.orientation.y = float(x), float(y)
    msg.orientation.z, msg.orientation.w = float(z), float(w)
    return msg


def covariance_list(covariance: ArrayLike) -> list[float]:
    """Return the 36 row-major floats of a (6, 6) covariance; zeros where it is not finite."""
    cov = np.asarray(covariance, dtype=np.float64).reshape(6, 6)
    if not np.all(np.isfinite(cov)):
        cov = np.zeros((6, 6))
    return [float(v) for v in cov.reshape(-1)]


def pose_stamped(header: Header, R: ArrayLike, t: ArrayLike) -> PoseStamped:
    """Return PoseStamped of the object (R (3, 3), t (3,) metres) in header.frame_id."""
    return PoseStamped(header=header, pose=pose_msg(R, t))


def pose_with_covariance_stamped(header: Header, R: ArrayLike, t: ArrayLike,
                                 covariance: ArrayLike) -> PoseWithCovarianceStamped:
    """Return PoseWithCovarianceStamped ((6, 6) covariance in x, y, z, rx, ry, rz order).

    R (3, 3), t (3,) metres; the covariance in metres and radians squared.
    """
    msg = PoseWithCovarianceStamped(header=header)
    msg.pose.pose = pose_msg(R, t)
    msg.pose.covariance = covariance_list(covariance)
    return msg


def frame_name(prefix: str, object_name: str, track_id: int) -> str:
    """Return the TF child frame of one instance, e.g. 'driller_0'."""
    return f'{prefix}{object_name}_{track_id}'


def transform_stamped(header: Header, child_frame_id: str, R: ArrayLike,
                      t: ArrayLike) -> TransformStamped:
    """Return the TransformStamped parent = header.frame_id -> child (the object's frame).

    R (3, 3), t (3,) metres: the child frame in the parent's.
    """
    msg = TransformStamped(header=header, child_frame_id=child_frame_id)
    pose = pose_msg(R, t)
    msg.transform.translation.x = pose.position.x
    msg.transform.translation.y = pose.position.y
    msg.transform.translation.z = pose.position.z
    msg.transform.rotation = pose.orientation
    return msg


def object_box(points: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (centre (3,), size (3,)) metres of the object-frame axis-aligned box of points.

    points: (P, 3) metres.
    """
    points = np.asarray(points, dtype=np.float64)
    low, high = points.min(0), points.max(0)
    return (low + high) / 2.0, high - low


def detection3d(header: Header, object_name: str, track_id: int, score: float, R: ArrayLike,
                t: ArrayLike, covariance: ArrayLike, box_centre: ArrayLike,
                box_size: ArrayLike) -> Detection3D:
    """Return one vision_msgs/Detection3D: class, score, pose (with covariance) and 3D box.

    The pose is the object frame's (R (3, 3), t (3,) metres, covariance (6, 6)); the box is the
    object's axis-aligned box (box_centre, box_size (3,) metres, object frame), centred at
    R @ box_centre + t, oriented like the object.
    """
    hypothesis = ObjectHypothesisWithPose(
        hypothesis=ObjectHypothesis(class_id=object_name, score=float(score)),
        pose=PoseWithCovariance(pose=pose_msg(R, t), covariance=covariance_list(covariance)))
    centre = np.asarray(R) @ np.asarray(box_centre) + np.asarray(t)
    bbox = BoundingBox3D(center=pose_msg(R, centre))
    bbox.size.x, bbox.size.y, bbox.size.z = (float(v) for v in box_size)
    return Detection3D(header=header, results=[hypothesis], bbox=bbox,
                       id=f'{object_name}_{track_id}')


def detection3d_array(header: Header, detections: Iterable[Detection3D]) -> Detection3DArray:
    """Return Detection3DArray holding `detections` (a list of Detection3D)."""
    return Detection3DArray(header=header, detections=list(detections))


def boxes_from_detection2d_array(msg: Detection2DArray, object_names: Collection[str],
                                 default_object: str | None = None,
                                 ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Return ({object_name: (M, 4) xyxy pixels}, [reasons for skipped detections]).

    A Detection2D's class is its best hypothesis' class_id; detections without results get
    `default_object` (useful with a class-agnostic detector) or are skipped. Boxes with
    non-finite or non-positive sizes are skipped with a reason; rotated boxes use their
    axis-aligned bounds.
    """
    boxes, skipped = {}, []
    for index, detection in enumerate(msg.detections):
        name = default_object
        if detection.results:
            best = max(detection.results, key=lambda r: r.hypothesis.score)
            name = best.hypothesis.class_id
        if name not in object_names:
            skipped.append(f'detection {index}: class {name!r} is not one of {object_names}')
            continue
        box = detection.bbox
        cx, cy, theta = box.center.position.x, box.center.position.y, box.center.theta
        w, h = box.size_x, box.size_y
        xyxy = [math.nan] * 4
        if all(math.isfinite(v) for v in (cx, cy, theta, w, h)) and w > 0 and h > 0:
            c, s = abs(math.cos(theta)), abs(math.sin(theta))
            half_w, half_h = w * c / 2.0 + h * s / 2.0, w * s / 2.0 + h * c / 2.0
            xyxy = [cx - half_w, cy - half_h, cx + half_w, cy + half_h]
        if not all(math.isfinite(v) for v in xyxy):  # also sizes overflowing the corners
            skipped.append(f'detection {index}: unusable box centre ({cx}, {cy}) size {w}x{h}')
            continue
        boxes.setdefault(name, []).append(xyxy)
    return {name: np.array(b) for name, b in boxes.items()}, skipped
