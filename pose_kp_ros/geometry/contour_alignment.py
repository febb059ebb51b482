"""Pose from the silhouette: refine a keypoint pose so its mesh outline meets the image edges.

Keypoints fix the pose only through a handful of points, each a few pixels off (and shrunk
towards the object's centre by our network on real photos), which turns into centimetres of
depth and degrees of rotation. The object's outline in the image measures the pose over
hundreds of pixels. Given a fitted pose:

1. the silhouette is extracted once, at the fitted pose (`contour_model`): points sampled on
   the mesh surface are projected and rasterised on a small canvas, and the outer contour's
   pixels, lifted to the depth of the surface behind them, become object-frame points with
   object-frame directions that project onto the outline's outward normals. Like the sparse
   viewpoint models of region-based trackers (Stoiber et al., SRT3D, IJCV 2022), these points
   then move rigidly with the pose: a few degrees of refinement barely change which surface
   points form the outline, and rasterising again at every step cost about half the time
   without changing the accuracy on held-out renders;
2. Gauss-Newton steps, one per search range, each project the contour points and search along
   each normal for the strongest image edge (gradient component along the normal): a signed
   offset, weighted by edge strength and Huber (`compiled_contour.HUBER_PX`);
3. and solve for the 6-DoF pose update that moves each contour point's projection along its
   normal by its offset (point-to-line residuals), jointly with the keypoints' reprojection
   residuals so the keypoints keep the pose where the outline is ambiguous or occluded.

The steps run from the fitted pose and from it moved along its viewing ray (`depth_starts`, the
same contour points); the result whose outline lies on the strongest edges (`contour_support`)
is kept.

Pixels are pinhole pixels (undistorted); with lens distortion the edges are sampled at the
distorted positions of the contour points.
"""

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple, Protocol

import cv2
import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.compiled_contour import (
    edge_normal_equations,
    normal_gradients,
    outline_geometry,
)
from pose_kp_ros.geometry.distortion import distort_pixels, has_distortion
from pose_kp_ros.geometry.rotations import rotation_angle, so3_exp

CANVAS_PX = 160
"""Longest side of the canvas the silhouette is rasterised on (the driller's 10,000 surface
points, `surface_points`, fall about 1-2 canvas pixels apart; a 5x5 closing fills the gaps)."""

MIN_CONTOUR_POINTS = 20
"""Fewer contour points than this (a tiny or degenerate silhouette): no alignment."""

CONTOUR_STEP = 2
"""contour_model keeps every this-many-th outline pixel (2-3 image pixels apart, about an image
edge's width after `image_gradients`' smoothing). Held-out renders (v2 / v3, ground-truth boxes /
detector): every pixel 71.0 / 68.5 / 66.5 / 63.8%, every 2nd 71.0 / 68.0 / 66.0 / 64.8%, every
3rd 71.3 / 68.3 / 66.5 / 64.0%; the stage 7.2 -> 5.3 / 4.9 ms per pose."""

_SEARCH_STEP_PX = 0.5
_CLOSING = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
"""The closing that fills the gaps between rasterised surface points."""


class StageTiming(Protocol):
    """What refine_pose times its steps with (pose_kp_ros.pipeline.stage_timer.StageTimer)."""

    def stage(self, name: str) -> AbstractContextManager[None]:
        """Time the block as stage `name`."""


def silhouette_contour(surface_points: ArrayLike, R: ArrayLike, t: ArrayLike, K: ArrayLike,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the silhouette's outer contour, its normals and the surface points behind it.

    Returns contour (M, 2) pixels, outward unit normals (M, 2) and, for each contour point, the
    index (M,) of a surface point projecting onto it.

    surface_points: (P, 3) metres, dense on the object's surface (object frame); R (3, 3),
    t (3,) metres: the pose; K (3, 3). Returns empty arrays when the object is behind the
    camera or too small.
    """
    empty = np.zeros((0, 2))
    projected = project_object_points(surface_points, R, t, K, in_front_only=True,
                                      as_columns=True)
    if projected is None:
        return empty, empty, np.zeros(0, int)
    u, v = projected
    low = np.array([u.min(), v.min()])
    high = np.array([u.max(), v.max()])
    zoom = CANVAS_PX / max(float((high - low).max()), 1e-6)
    origin = low - 4.0 / zoom  # 4 canvas pixels of border
    size = np.ceil((high - origin) * zoom).astype(int) + 5
    # The rounded canvas cells ((uv - origin) * zoom + 0.5), in place, per coordinate.
    u -= origin[0]
    v -= origin[1]
    u *= zoom
    v *= zoom
    u += 0.5
    v += 0.5
    flat = v.astype(np.intp)  # all positive
    flat *= size[0]
    flat += u.astype(np.intp)  # flat canvas indices
    canvas = np.zeros(size[1] * size[0], np.uint8)
    canvas[flat] = 255
    owner = np.full(len(canvas), -1, np.int32)
    owner[flat] = np.arange(len(flat), dtype=np.int32)  # the last point of a cell owns it
    canvas = canvas.reshape(size[1], size[0])
    canvas = cv2.morphologyEx(canvas, cv2.MORPH_CLOSE, _CLOSING)
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return empty, empty, np.zeros(0, int)
    outline = max(contours, key=cv2.contourArea)[:, 0, :]
    if len(outline) < MIN_CONTOUR_POINTS:
        return empty, empty, np.zeros(0, int)
    filled = np.zeros(canvas.shape, np.float32)
    cv2.drawContours(filled, [outline[:, None, :]], -1, 1.0, -1)
    filled = cv2.GaussianBlur(filled, (0, 0), 1.5)
    at = outline[:, 1] * size[0] + outline[:, 0]  # flat canvas indices
    gx = cv2.Sobel(filled, cv2.CV_32F, 1, 0).reshape(-1)[at]
    gy = cv2.Sobel(filled, cv2.CV_32F, 0, 1).reshape(-1)[at]
    normals = -np.stack([gx, gy], 1).astype(np.float64)
    length = np.linalg.norm(normals, axis=1)
    index = _nearest_owner(owner, at, size[0])
    keep = (length > 1e-6) & (index >= 0)
    return outline[keep] / zoom + origin, normals[keep] / length[keep, None], index[keep]


_NEIGHBOURS = np.array(sorted(((dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)),
                              key=lambda d: d[0] ** 2 + d[1] ** 2))
"""Cell offsets (49, 2) (dx, dy) within 3 cells, nearest first."""


def _nearest_owner(owner, cells, width):
    """Return owner's value (M,) at the nearest cell (within 3) holding one (>= 0), else -1.

    owner: (H * W,) flat canvas; cells: (M,) flat indices at least 3 cells inside the canvas
    (silhouette_contour's border keeps its outline 4 cells in), width W.
    """
    found = owner[cells]
    missing = np.flatnonzero(found < 0)
    if len(missing):
        near = owner[cells[missing, None] + (_NEIGHBOURS[1:, 1] * width + _NEIGHBOURS[1:, 0])]
        found[missing] = near[np.arange(len(missing)), (near >= 0).argmax(1)]
    return found


def _sample_pixels(uv, normals, grid, K, D, distortion_model):
    """Return the pixels x, y (M, O) where the image is sampled at uv + grid * normals.

    uv, normals: (M, 2) undistorted pixels and unit normals; grid (O,) offsets, pixels. With
    lens distortion (K, D, model) the distorted positions of those points.
    """
    x = uv[:, :1] + grid * normals[:, :1]  # (M, O) pixels
    y = uv[:, 1:] + grid * normals[:, 1:]
    if D is not None and has_distortion(D):
        x, y = distort_pixels(np.stack([x, y], -1).reshape(-1, 2), K, D, distortion_model).T
        x, y = x.reshape(len(uv), len(grid)), y.reshape(len(uv), len(grid))
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


class ContourModel(NamedTuple):
    """The silhouette of an object at one pose, as rigid object-frame geometry (metres).

    points (M, 3): the outline's pixels lifted to the depth of the surface point behind each;
    directions (M, 3): vectors whose projections are the outline's outward normals there.
    """

    points: np.ndarray
    directions: np.ndarray


def contour_model(surface_points: ArrayLike, R: ArrayLike, t: ArrayLike,
                  K: ArrayLike) -> ContourModel | None:
    """Return the silhouette at pose (R (3, 3), t (3,) metres) as a ContourModel, or None.

    At this pose the points project exactly onto `silhouette_contour`'s outline and the
    directions onto its normals; elsewhere they move with the object. surface_points (P, 3)
    metres; K (3, 3). None when the silhouette is unusable (behind the camera, too small).
    """
    R, t, K = (np.asarray(v, dtype=np.float64) for v in (R, t, K))
    surface_points = np.asarray(surface_points, dtype=np.float64)
    contour, normals, index = silhouette_contour(surface_points, R, t, K)
    if len(contour) < MIN_CONTOUR_POINTS:
        return None
    contour, normals, index = (v[::CONTOUR_STEP] for v in (contour, normals, index))
    depth = surface_points[index] @ R[2] + t[2]
    K_inv = np.linalg.inv(K)
    camera_points = (contour @ K_inv[:, :2].T + K_inv[:, 2]) * depth[:, None]
    directions = np.zeros((len(normals), 3))
    directions[:, :2] = normals @ K_inv[:2, :2].T  # K2 d = n: d projects along the normal
    return ContourModel((camera_points - t) @ R, directions @ R)


def contour_support(gradients: tuple[np.ndarray, np.ndarray], model: ContourModel,
                    R: ArrayLike, t: ArrayLike, K: ArrayLike, D: ArrayLike | None = None,
                    distortion_model: str = 'plumb_bob') -> float:
    """Return the mean image gradient across the model's outline at a pose (0 if unusable).

    How well a pose's outline sits on image edges (grey levels per pixel, `image_gradients`
    units): the score that picks among refinements from different depths. R (3, 3), t (3,)
    metres, K (3, 3); D, distortion_model: the image's lens distortion.
    """
    R, t, K = (np.asarray(v, dtype=np.float64) for v in (R, t, K))
    uv, normals, *_, ok = outline_geometry(model.points, model.directions, np.zeros((0, 3)),
                                           R, t, K)
    if not ok:
        return 0.0
    x, y = _sample_pixels(uv, normals, np.zeros(1), K, D, distortion_model)
    return float(normal_gradients(*_float32_images(gradients), x, y, normals).mean())


def _float32_images(gradients):
    """Return the (gx, gy) gradient images as C-contiguous float32 arrays (copies only if not)."""
    return tuple(np.ascontiguousarray(g, dtype=np.float32) for g in gradients)


def refine_pose(gradients: tuple[np.ndarray, np.ndarray], surface_points: np.ndarray,
                R: ArrayLike, t: ArrayLike, K: ArrayLike, search_px: Sequence[float],
                keypoints: ArrayLike | None = None, keypoint_points: ArrayLike | None = None,
                keypoint_weights: ArrayLike | None = None, contour_balance: float = 10.0,
                keypoint_huber_px: float = 4.0, D: ArrayLike | None = None,
                distortion_model: str = 'plumb_bob', max_depth_change: float = 0.15,
                max_rotation_change_deg: float = 20.0,
                depth_starts: Sequence[float] = (1.0,),
                timer: StageTiming | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (R, t) refined jointly on the silhouette's edges and the keypoints (6 DoF).

    Args:
        gradients: (gx, gy) of `image_gradients`.
        surface_points: (P, 3) metres on the object's surface (object frame).
        R, t: (3, 3), (3,) metres: the starting pose; K: (3, 3).
        search_px: edge search half-ranges, pixels, one Gauss-Newton step each.
        keypoints: optional (N, 2) undistorted pixels, with keypoint_points (N, 3) metres
            (the object's fitted keypoint shape) and keypoint_weights (N,) (the fit's weights).
        contour_balance: the contour term's total weight over the keypoints' total weight.
        keypoint_huber_px: Huber scale of the keypoint residuals, pixels.
        D, distortion_model: lens distortion of the image (edges sampled where they are).
        max_depth_change, max_rotation_change_deg: a refinement moving the depth by more than
            this fraction, or the rotation by more than this, from (R, t) is rejected.
        depth_starts: factors on t: the refinement runs from each (the object moved along its
            viewing ray), all with the contour points of (R, t), and of those accepted the one
            whose outline has the most `contour_support` is returned (a keypoint depth several
            percent off is out of reach of the edge search from one start).
        timer: optional stage timer (pose_kp_ros.pipeline.stage_timer.StageTimer): the
            silhouette's extraction is timed as stage 'contour', each start as 'depth start
            <factor>', the choice among them as 'contour support'.

    Rotation updates on the left, in the camera frame (as in solve_pose). Returns the input
    pose when the silhouette is unusable, the fit is not finite or every refinement moves too far.
    """
    R0, t0 = np.asarray(R, dtype=np.float64), np.asarray(t, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    # Coordinates contiguous (Fortran order): the projections' matrix products read P^T directly.
    surface_points = np.asfortranarray(surface_points, dtype=np.float64)
    gradients = _float32_images(gradients)  # once for every start (compiled_contour takes these)
    if keypoints is None or not np.sum(keypoint_weights) > 0:
        keypoints, keypoint_points, keypoint_weights = np.zeros((0, 2)), np.zeros((0, 3)), ()
    keypoint_terms = tuple(np.ascontiguousarray(v, dtype=np.float64).reshape(shape) for v, shape
                           in ((keypoints, (-1, 2)), (keypoint_points, (-1, 3)),
                               (keypoint_weights, (-1,))))
    stage = timer.stage if timer is not None else nullcontext
    with stage('contour'):
        model = contour_model(surface_points, R0, t0, K)
    if model is None:
        return R0, t0
    accepted = []
    for factor in depth_starts:
        with stage(f'depth start {factor:g}'):
            refined = _gauss_newton_steps(gradients, model, R0, t0 * factor, K, search_px,
                                          keypoint_terms, contour_balance, keypoint_huber_px,
                                          D, distortion_model)
        if refined is None:
            continue
        turned = float(rotation_angle(refined[0] @ R0.T))
        if abs(refined[1][2] / t0[2] - 1.0) <= max_depth_change \
                and np.degrees(turned) <= max_rotation_change_deg:
            accepted.append(refined)
    if not accepted:
        return R0, t0
    if len(accepted) == 1:
        return accepted[0]
    with stage('contour support'):
        return max(accepted, key=lambda pose: contour_support(gradients, model, *pose, K, D,
                                                                distortion_model))


def _gauss_newton_steps(gradients, model, R, t, K, search_px, keypoint_terms, contour_balance,
                        keypoint_huber_px, D, distortion_model):
    """Return (R, t) after one step per search range (see refine_pose), or None on failure.

    model: the ContourModel; keypoint_terms: (keypoints (N, 2), keypoint_points (N, 3),
    keypoint_weights (N,)). The outline's geometry, the edge search and the normal equations
    are compiled (compiled_contour); the 6x6 solve and the rotation update are numpy's.
    """
    keypoints, keypoint_points, keypoint_weights = keypoint_terms
    gx, gy = gradients
    for reach in search_px:
        uv, normals, rows, keypoint_uv, keypoint_jac, in_front, ok = outline_geometry(
            model.points, model.directions, keypoint_points, R, t, K)
        if not ok:
            return None
        grid = np.arange(-reach, reach + 1e-9, _SEARCH_STEP_PX)
        along = normal_gradients(gx, gy, *_sample_pixels(uv, normals, grid, K, D,
                                                         distortion_model), normals)
        normal, rhs = edge_normal_equations(along, grid, rows, keypoints, keypoint_uv,
                                            keypoint_jac, in_front, keypoint_weights,
                                            float(keypoint_huber_px), float(contour_balance))
        try:
            step = np.linalg.solve(normal + 1e-9 * np.trace(normal) * np.eye(6), rhs)
        except np.linalg.LinAlgError:  # no edges and no keypoints: nothing to fit
            return None
        if not np.all(np.isfinite(step)):
            return None
        R = so3_exp(step[3:]) @ R
        t = t + step[:3]
    return R, t


def compile_refinement() -> None:
    """Compile the refinement's numba functions, or load them from numba's cache.

    Seconds once per machine and version, then milliseconds (see compile_solver): refines a
    sphere's pose on a blank image, so that no frame waits for the compiler.
    """
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(2000, 3))
    sphere *= 0.1 / np.linalg.norm(sphere, axis=1, keepdims=True)
    camera = np.array([[500.0, 0.0, 64.0], [0.0, 500.0, 64.0], [0.0, 0.0, 1.0]])
    blank = (np.zeros((128, 128), np.float32), np.zeros((128, 128), np.float32))
    model = contour_model(sphere, np.eye(3), np.array([0.0, 0.0, 1.0]), camera)
    contour_support(blank, model, np.eye(3), np.array([0.0, 0.0, 1.0]), camera)
    refine_pose(blank, sphere, np.eye(3), np.array([0.0, 0.0, 1.0]), camera, [2.0],
                np.zeros((1, 2)), np.zeros((1, 3)), np.ones(1))
