"""Depth from the silhouette: align a pose's projected object outline with the image's edges.

Keypoints fix rotation and the sideways position well, but depth only through the spread of the
keypoints, which a few pixels of error (or a network that shrinks its keypoints towards the
object's centre, as ours does on real photos) turns into centimetres. The object's outline in the
image measures that spread over hundreds of pixels. Given a fitted pose:

1. project points sampled on the mesh surface, rasterise them on a small canvas and take the
   outer contour: points (M, 2) on the silhouette and their outward normals;
2. for each contour point, search along its normal for the strongest image edge (gradient
   component along the normal), then fit by weighted least squares (Huber, `HUBER_PX`) a
   scale s about the projected object origin and a shift d that move the contour onto the
   edges; repeat with shrinking search ranges;
3. move the object along the viewing ray through the shifted origin to depth z / s (an object
   s times larger in the image is s times nearer; the rotation is kept).

Pixels are pinhole pixels (undistorted); with lens distortion the edges are sampled at the
distorted positions of the contour points.
"""

import cv2
import numpy as np

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.distortion import distort_pixels, has_distortion

HUBER_PX = 1.0
"""Residuals beyond this many pixels are down-weighted (chosen on held-out renders)."""

CANVAS_PX = 160
"""Longest side of the canvas the silhouette is rasterised on (surface points ~2-3 px apart)."""

MIN_CONTOUR_POINTS = 20
"""Fewer contour points than this (a tiny or degenerate silhouette): no alignment."""

_SEARCH_STEP_PX = 0.5


def image_gradients(image_rgb, sigma_px=1.0):
    """Return the (gx, gy) float32 (H, W) Sobel gradients of the Gaussian-smoothed grey image."""
    grey = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), sigma_px)
    return cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)


def silhouette_contour(surface_points, R, t, K):
    """Return the silhouette's outer contour (M, 2) pixels and outward unit normals (M, 2).

    surface_points: (P, 3) metres, dense on the object's surface (object frame); R (3, 3),
    t (3,) metres: the pose; K (3, 3). Returns two (0, 2) arrays when the object is behind the
    camera or too small.
    """
    empty = np.zeros((0, 2))
    uv = project_object_points(surface_points, R, t, K)
    if uv is None:
        return empty, empty
    low, high = uv.min(0), uv.max(0)
    zoom = CANVAS_PX / max(float((high - low).max()), 1e-6)
    origin = low - 4.0 / zoom  # 4 canvas pixels of border
    size = np.ceil((high - origin) * zoom).astype(int) + 5
    canvas = np.zeros((size[1], size[0]), np.uint8)
    cells = np.rint((uv - origin) * zoom).astype(int)
    canvas[cells[:, 1], cells[:, 0]] = 255
    canvas = cv2.morphologyEx(canvas, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return empty, empty
    outline = max(contours, key=cv2.contourArea)[:, 0, :]
    if len(outline) < MIN_CONTOUR_POINTS:
        return empty, empty
    filled = np.zeros(canvas.shape, np.float32)
    cv2.drawContours(filled, [outline[:, None, :]], -1, 1.0, -1)
    filled = cv2.GaussianBlur(filled, (0, 0), 1.5)
    gx = cv2.Sobel(filled, cv2.CV_32F, 1, 0)[outline[:, 1], outline[:, 0]]
    gy = cv2.Sobel(filled, cv2.CV_32F, 0, 1)[outline[:, 1], outline[:, 0]]
    normals = -np.stack([gx, gy], 1).astype(np.float64)
    length = np.linalg.norm(normals, axis=1)
    keep = length > 1e-6
    return outline[keep] / zoom + origin, normals[keep] / length[keep, None]


def sample_bilinear(image, points):
    """Return image (H, W) float32 values at points (M, 2) (x, y) pixels; 0 outside."""
    count, columns = len(points), 4096  # cv2.remap maps must stay below 32767 per side
    rows = max(1, -(-count // columns))
    grid = np.zeros((rows * columns, 2), np.float32)
    grid[:count] = points
    values = cv2.remap(image, grid[:, 0].reshape(rows, columns), grid[:, 1].reshape(rows, columns),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return values.reshape(-1)[:count]


def align_contour(gradients, contour, normals, centre, search_px, K=None, D=None,
                  distortion_model='plumb_bob'):
    """Fit scale s about `centre` and shift d (2,) pixels moving the contour onto image edges.

    gradients: (gx, gy) of `image_gradients`; contour, normals: (M, 2) of `silhouette_contour`;
    centre: (2,) pixels (the projected object origin); search_px: search half-ranges, pixels,
    one least-squares step each. With lens distortion (K, D, model), edges are sampled at the
    distorted contour positions. Returns (s, d); (1, 0) when the contour is too short.
    """
    scale, shift = 1.0, np.zeros(2)
    if len(contour) < MIN_CONTOUR_POINTS:
        return scale, shift
    gx, gy = gradients
    relative = contour - centre
    design = np.stack([np.sum(normals * relative, 1), normals[:, 0], normals[:, 1]], 1)
    distorted = D is not None and has_distortion(D)
    for reach in search_px:
        offsets = np.arange(-reach, reach + 1e-9, _SEARCH_STEP_PX)
        moved = centre + shift + scale * relative
        samples = (moved[:, None, :] + offsets[None, :, None] * normals[:, None, :]).reshape(-1, 2)
        if distorted:
            samples = distort_pixels(samples, K, D, distortion_model)
        along = np.abs(sample_bilinear(gx, samples) * np.repeat(normals[:, 0], len(offsets))
                       + sample_bilinear(gy, samples) * np.repeat(normals[:, 1], len(offsets)))
        along = along.reshape(len(contour), len(offsets))
        best = along.argmax(1)
        residual = offsets[best]
        strength = along[np.arange(len(contour)), best]
        weights = strength / max(float(strength.mean()), 1e-6)
        weights *= np.minimum(1.0, HUBER_PX / np.maximum(np.abs(residual), 1e-9))
        root = np.sqrt(weights)[:, None]
        step, *_ = np.linalg.lstsq(design * root, residual * root[:, 0], rcond=None)
        if not np.all(np.isfinite(step)):
            break
        scale, shift = scale + float(step[0]), shift + step[1:]
    return scale, shift


def projected_origin(t, K):
    """Return the pixel (2,) of the object origin at translation t (3,) metres (in front)."""
    return project_object_points(np.zeros((1, 3)), np.eye(3), t, K)[0]


def translation_from_alignment(t, K, scale, shift):
    """Return t (3,) metres moved to depth z / scale on the ray through the shifted origin."""
    t = np.asarray(t, dtype=np.float64)
    centre = projected_origin(t, K) + shift
    ray = np.linalg.solve(K, np.array([centre[0], centre[1], 1.0]))
    return ray * (t[2] / scale)


def refine_translation(gradients, surface_points, R, t, K, search_px, D=None,
                       distortion_model='plumb_bob', max_scale_change=0.15):
    """Return the pose's translation (3,) refined by contour alignment (t itself if it fails).

    A fit that changes the scale by more than `max_scale_change` (or is not finite) is rejected.
    """
    contour, normals = silhouette_contour(surface_points, R, t, K)
    if len(contour) == 0:  # behind the camera or too small
        return np.asarray(t, dtype=np.float64).copy()
    scale, shift = align_contour(gradients, contour, normals, projected_origin(t, K), search_px,
                                 K, D, distortion_model)
    if not (np.isfinite(scale) and abs(scale - 1.0) <= max_scale_change
            and np.all(np.isfinite(shift))):
        return np.asarray(t, dtype=np.float64).copy()
    return translation_from_alignment(t, K, scale, shift)
