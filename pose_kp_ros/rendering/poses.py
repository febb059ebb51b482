"""Random poses of synthetic scenes: rotations, objects standing side by side on a table.

The table frame has x, y along the table top and z up; `camera_from_table` (3, 3) turns its
vectors into the camera's OpenCV frame (x right, y down, z forward). A `SupportPlane` is the table
top in the camera frame. Points are metres; rotations (3, 3) map object to camera coordinates.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

PLACEMENT_ATTEMPTS = 20
"""Draws of a free spot on the table before an object is left out of the scene."""


@dataclass(frozen=True)
class SupportPlane:
    """The table top: `camera_from_table` (3, 3), and `height` in metres of its surface.

    Height is measured along the up axis `camera_from_table[:, 2]` from the camera centre; the
    camera is above the table when it is negative.
    """

    camera_from_table: np.ndarray
    height: float

    @property
    def up(self) -> np.ndarray:
        """Return the table's up axis (3,) in the camera frame."""
        return self.camera_from_table[:, 2]


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the rotation (3, 3) turning unit vector a (3,) onto unit vector b (3,)."""
    axis = np.cross(a, b)
    sine, cosine = np.linalg.norm(axis), float(np.dot(a, b))
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        perpendicular = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * perpendicular / np.linalg.norm(perpendicular)
                                    ).as_matrix()
    return Rotation.from_rotvec(axis / sine * np.arctan2(sine, cosine)).as_matrix()


def table_rotation(rng: np.random.Generator, upright_axis: ArrayLike,
                   tilt_deg: float) -> np.ndarray:
    """Return the table-from-object rotation (3, 3) of an object standing on its `upright_axis`.

    The object-frame axis `upright_axis` (3,) points up (table +z), tilted by up to `tilt_deg`
    degrees about a random axis, with a uniform yaw.
    """
    axis = np.asarray(upright_axis, dtype=np.float64)
    table_from_object = rotation_between(axis / np.linalg.norm(axis), np.array([0.0, 0.0, 1.0]))
    tilt_axis = rng.normal(size=3)
    tilt = Rotation.from_rotvec(tilt_axis / np.linalg.norm(tilt_axis)
                                * np.radians(rng.uniform(0.0, tilt_deg))).as_matrix()
    yaw = Rotation.from_euler('z', rng.uniform(0.0, 2 * np.pi)).as_matrix()
    return yaw @ table_from_object @ tilt


def camera_from_table(rng: np.random.Generator, elevation_deg: tuple[float, float],
                      roll_deg: float) -> np.ndarray:
    """Return the camera-from-table rotation (3, 3) of a camera looking down at a table.

    The optical axis is `elevation_deg` (low, high) degrees below the horizontal; the camera is
    rolled about it by up to +-`roll_deg` degrees.
    """
    elevation = np.radians(rng.uniform(*elevation_deg))
    forward = np.array([np.cos(elevation), 0.0, -np.sin(elevation)])
    down = np.array([0.0, 0.0, -1.0]) - np.sin(elevation) * forward
    down /= np.linalg.norm(down)
    level = np.stack([np.cross(down, forward), down, forward])
    roll = Rotation.from_euler('z', np.radians(rng.uniform(-roll_deg, roll_deg))).as_matrix()
    return roll @ level


def occluder_position(rng: np.random.Generator, object_centre_cam: np.ndarray, diameter: float,
                      up_cam: ArrayLike | None = None,
                      low_probability: float = 0.0) -> np.ndarray:
    """Return an occluder's centre (3,) metres, camera frame: 55-85% of the way to the object.

    object_centre_cam: (3,) metres; diameter: the object's, metres.
    Offset sideways by up to 0.5 diameter (scaled to its depth); with `low_probability` (and the
    object's up axis `up_cam` (3,) known) lowered by 0.2-0.6 diameter along it, as something on
    the table in front hides the object's lower part. No extra random draw when
    `low_probability` is 0 (datasets rendered before the option stay reproducible).
    """
    fraction = rng.uniform(0.55, 0.85)
    offset = rng.uniform(-0.5, 0.5, size=2) * diameter * fraction
    position = object_centre_cam * fraction + np.array([*offset, 0.0])
    if up_cam is not None and low_probability > 0 and rng.random() < low_probability:
        position = position - np.asarray(up_cam) * rng.uniform(0.2, 0.6) * diameter * fraction
    return position


def plane_under(points_cam: np.ndarray, camera_from_table_rotation: np.ndarray) -> SupportPlane:
    """Return the SupportPlane through the lowest of `points_cam` (M, 3), metres."""
    up = camera_from_table_rotation[:, 2]
    return SupportPlane(camera_from_table_rotation, float((points_cam @ up).min()))


def rest_on(plane: SupportPlane, points_cam: np.ndarray) -> np.ndarray:
    """Return the shift (3,) metres along the plane's up axis that sets `points_cam` on it."""
    return (plane.height - float((points_cam @ plane.up).min())) * plane.up


def outline(plane: SupportPlane, points_cam: np.ndarray) -> np.ndarray:
    """Return the convex outline (P, 2) float32, metres, of points (M, 3) seen from above.

    In table x, y coordinates; the points are relative to the object's centre.
    """
    xy = (points_cam @ plane.camera_from_table[:, :2]).astype(np.float32)
    return cv2.convexHull(xy)[:, 0]


def side_by_side(rng: np.random.Generator, outlines: Sequence[np.ndarray],
                 spacing: tuple[float, float]) -> list[np.ndarray | None]:
    """Place objects close together on a table without overlap; the first stays at (0, 0).

    outlines: list of K convex outlines (P_k, 2) metres around each object's centre (`outline`).
    Each next object goes beside a random placed one, its centre at (sum of the two outline
    radii) x U(`spacing`) in a random direction; a spot where its outline overlaps a placed one
    is drawn again, up to PLACEMENT_ATTEMPTS times, then the object is left out.
    Returns K offsets (2,) in table x, y metres from the first object's centre, or None.
    """
    placed = [(np.zeros(2), outlines[0])]
    offsets = [np.zeros(2)]
    for shape in outlines[1:]:
        radius = float(np.linalg.norm(shape, axis=1).max())
        offsets.append(None)
        for _ in range(PLACEMENT_ATTEMPTS):
            centre, neighbour = placed[rng.integers(len(placed))]
            distance = (radius + np.linalg.norm(neighbour, axis=1).max()) * rng.uniform(*spacing)
            angle = rng.uniform(0.0, 2 * np.pi)
            candidate = centre + distance * np.array([np.cos(angle), np.sin(angle)])
            moved = (shape + candidate).astype(np.float32)
            if all(cv2.intersectConvexConvex(moved, (other + at).astype(np.float32))[0] <= 0
                   for at, other in placed):
                offsets[-1] = candidate
                placed.append((candidate, shape))
                break
    return offsets
