"""Discrete symmetries of rigid objects: rotations that map an object's surface onto itself.

A symmetry is a rigid transform X -> R X + t of the object frame (a rotation by `angle_deg`
about an axis through `point`, so t = point - R point) after which the object looks the same;
the poses (R_pose, t_pose) and (R_pose R, R_pose t + t_pose) of such an object are then equally
right (BOP's `symmetries_discrete`; its ADD-S metric). `find_symmetries` derives the 180-degree
ones of a mesh: for each candidate axis (the coordinate axes and the principal axes of the
surface) through the surface centroid, the mean distance from the rotated surface points to the
nearest surface point (a KD-tree) must stay under `tolerance` x the diameter.

    >>> import numpy as np
    >>> grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 9)] * 3), -1).reshape(-1, 3)
    >>> box = grid * [3, 2, 1]                       # a box: 180 degrees about x, y and z
    >>> [s.axis.round(3).tolist() for s in find_symmetries(box, diameter=7.5)]
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from pose_kp_ros.geometry.rotations import hat


@dataclass(frozen=True)
class Symmetry:
    """A rotation by angle_deg about `axis` (unit, object frame) through `point` (metres)."""

    axis: np.ndarray
    angle_deg: float
    point: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        """Return R (3, 3) of the transform X -> R X + t."""
        return Rotation.from_rotvec(np.deg2rad(self.angle_deg) * self.axis).as_matrix()

    @property
    def translation(self) -> np.ndarray:
        """Return t (3,) of the transform X -> R X + t (point - R point)."""
        return self.point - self.rotation @ self.point

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points (..., 3) of the object frame by the symmetry."""
        return points @ self.rotation.T + self.translation

    def to_dict(self, decimals: int = 6) -> dict:
        """Return the YAML form {axis, angle_deg, point_m} (docs/object_config.md)."""
        return {'axis': np.round(self.axis, decimals).tolist(),
                'angle_deg': float(self.angle_deg),
                'point_m': np.round(self.point, decimals).tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> 'Symmetry':
        """Build from the YAML form; ValueError naming what is wrong."""
        if not isinstance(values, dict) or set(values) != {'axis', 'angle_deg', 'point_m'}:
            raise ValueError(f'expected a mapping with axis, angle_deg and point_m, got '
                             f'{values!r}')
        axis = np.asarray(values['axis'], dtype=np.float64)
        point = np.asarray(values['point_m'], dtype=np.float64)
        angle = values['angle_deg']
        if axis.shape != (3,) or not np.isfinite(axis).all() or np.linalg.norm(axis) < 1e-9:
            raise ValueError(f'axis: expected a non-zero [x, y, z], got {values["axis"]!r}')
        if point.shape != (3,) or not np.isfinite(point).all():
            raise ValueError(f'point_m: expected [x, y, z] metres, got {values["point_m"]!r}')
        if not isinstance(angle, (int, float)) or isinstance(angle, bool) \
                or not 0 < angle < 360:
            raise ValueError(f'angle_deg: expected a number in (0, 360), got {angle!r}')
        return cls(axis / np.linalg.norm(axis), float(angle), point)


def symmetry_residual(points: np.ndarray, symmetry: Symmetry,
                      tree: cKDTree | None = None) -> float:
    """Return the mean distance from the mapped surface points (M, 3) to the nearest point."""
    tree = tree or cKDTree(points)
    return float(tree.query(symmetry.apply(points))[0].mean())


def find_symmetries(points: np.ndarray, diameter: float, tolerance: float = 0.015,
                    angle_deg: float = 180.0) -> list[Symmetry]:
    """Return the distinct `angle_deg` symmetries of a surface sampled by points (M, 3).

    Candidate axes: x, y, z and the principal axes of the points, through their centroid. An
    axis is kept when symmetry_residual < tolerance x diameter; of candidates within 10 degrees
    of each other the one with the smaller residual stays. Sorted by axis.
    """
    points = np.asarray(points, dtype=np.float64)
    centre = points.mean(0)
    _, principal = np.linalg.eigh(np.cov((points - centre).T))
    tree = cKDTree(points)
    found = []
    for axis in np.concatenate([np.eye(3), principal.T]):
        axis = axis * np.sign(axis[np.argmax(np.abs(axis))])
        candidate = Symmetry(axis, angle_deg, centre)
        residual = symmetry_residual(points, candidate, tree)
        if residual >= tolerance * diameter:
            continue
        close = [i for i, (other, _) in enumerate(found) if abs(other.axis @ axis) > 0.985]
        if not close:
            found.append((candidate, residual))
        elif residual < found[close[0]][1]:
            found[close[0]] = (candidate, residual)
    return sorted((s for s, _ in found), key=lambda s: tuple(-np.abs(s.axis)))


def symmetry_group(symmetries: Sequence[Symmetry],
                   limit: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Return every transform the symmetries generate: rotations (K, 3, 3), translations (K, 3).

    The first entry is the identity; products are added until none is new (K <= limit).
    """
    rotations, translations = [np.eye(3)], [np.zeros(3)]
    generators = [(s.rotation, s.translation) for s in symmetries]
    index = 0
    while index < len(rotations) and len(rotations) < limit:
        for R_g, t_g in generators:
            R = R_g @ rotations[index]
            t = R_g @ translations[index] + t_g
            known = any(np.allclose(R, R_k, atol=1e-6) and np.allclose(t, t_k, atol=1e-6)
                        for R_k, t_k in zip(rotations, translations))
            if not known and len(rotations) < limit:
                rotations.append(R)
                translations.append(t)
        index += 1
    return np.stack(rotations), np.stack(translations)


def equivalent_poses(R: ArrayLike, t: ArrayLike,
                     group: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return the poses (..., K, 3, 3), (..., K, 3) that look the same as (R, t) under the group.

    R (..., 3, 3), t (..., 3) metres: one pose or a batch. A pose maps object points X to
    R X + t; with a symmetry X -> S X + s the object looks the same, so (R S, R s + t) is an
    equally right pose.
    """
    R, t = np.asarray(R, np.float64), np.asarray(t, np.float64)
    rotations, translations = group
    return (R[..., None, :, :] @ rotations,
            np.einsum('...ij,kj->...ki', R, translations) + t[..., None, :])


def canonical_pose(R: ArrayLike, t: ArrayLike, group: tuple[np.ndarray, np.ndarray],
                   reference: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the one of (R, t)'s equivalent poses a symmetric object is published with.

    With `reference` (3, 3) or (..., 3, 3), e.g. the rotation published for the previous frame,
    the equivalent rotation nearest to it (so a tracked pose does not flip between equivalent
    answers); without one, the equivalent rotation nearest to the camera's axes (largest
    trace), the same choice for every equivalent input. R (..., 3, 3), t (..., 3) metres;
    returns (R (..., 3, 3), t (..., 3)).
    """
    rotations, translations = equivalent_poses(R, t, group)
    target = np.eye(3) if reference is None else np.asarray(reference, np.float64)
    closeness = np.einsum('...kij,...ij->...k', rotations, target)   # trace(target^T R_k)
    best = np.argmax(closeness, -1)[..., None]
    return (np.take_along_axis(rotations, best[..., None, None], -3)[..., 0, :, :],
            np.take_along_axis(translations, best[..., None], -2)[..., 0, :])


def view_canonical_pose(R: ArrayLike, t: ArrayLike, group: tuple[np.ndarray, np.ndarray],
                        roll: ArrayLike = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return the equivalent pose chosen by what a view of the object shows (training targets).

    R (B, 3, 3), t (B, 3) metres: object-to-camera poses (or one pose without B); group:
    symmetry_group's (K, 3, 3), (K, 3); roll (B,) radians: the in-plane rotation of the view,
    an image->crop rotation as network.crops.crop_affines takes it (0: the image itself).
    The view is that of a camera turned, the smallest rotation A, to look along the ray through
    the mean translation of the equivalent poses (the same for every one of them), then rolled
    about that ray by `roll`: a pose R_k looks there like V R_k, V = Rz(roll) A^T. The chosen
    pose has the largest trace(V R_k) (canonical_pose's rule in the view's axes), so every
    equivalent input, and every crop that shows the object the same way, gives the same
    answer. Returns (R (B, 3, 3), t (B, 3)).
    """
    ray = equivalent_poses(R, t, group)[1].mean(-2)
    ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    axis = np.cross([0.0, 0.0, 1.0], ray)                # sin(angle) x the rotation axis
    turn = hat(axis)
    look = np.eye(3) + turn + turn @ turn / (1.0 + ray[..., 2, None, None])   # A e_z = ray
    roll = np.asarray(roll, np.float64)
    cos, sin, zero, one = np.cos(roll), np.sin(roll), np.zeros_like(roll), np.ones_like(roll)
    unroll = np.stack([np.stack([cos, sin, zero], -1), np.stack([-sin, cos, zero], -1),
                       np.stack([zero, zero, one], -1)], -2)               # Rz(roll)^T
    return canonical_pose(R, t, group, look @ unroll)                       # V^T = A Rz^T


def canonical_pose_covariance(R: np.ndarray, t: np.ndarray, covariance: ArrayLike,
                              group: tuple[np.ndarray, np.ndarray],
                              reference: ArrayLike | None = None,
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return canonical_pose's (R, t) and the pose covariance (6, 6) carried to it.

    The covariance's order is (tx, ty, tz, rx, ry, rz) with the rotation applied on the left
    (R <- exp(r) R, camera axes): the same r moves the equivalent pose, whose translation
    R s + t then also moves by r x (R s), so cov' = J cov J^T with J = [[I, -[R s]x], [0, I]].
    """
    R_new, t_new = canonical_pose(R, t, group, reference)
    offset = t_new - t                              # R s of the chosen symmetry
    jacobian = np.eye(6)
    jacobian[:3, 3:] = -np.array([[0, -offset[2], offset[1]], [offset[2], 0, -offset[0]],
                                  [-offset[1], offset[0], 0]])
    return R_new, t_new, jacobian @ np.asarray(covariance, np.float64) @ jacobian.T
