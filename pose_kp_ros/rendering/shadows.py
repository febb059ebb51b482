"""Cast shadows: each light's shadow map, tested per camera pixel, its light taken away there.

`SceneRenderer.render` casts the shadows of the lights marked `casts_shadow` (scene.py marks a
scene's lights with `shadow_probability`).

pyrender's own shadow maps (RenderFlags.SHADOWS_*) cover the surfaces they shade with moire
(shadow acne) under OSMesa, so shadows are made here from depth renders instead:

1. `light_camera`: a pinhole camera at the light (a directional light: LIGHT_DISTANCE_M back
   along its direction, nearly parallel rays) looking at the scene, its focal length fitting
   every surface the camera sees;
2. the scene's depth from that camera (`SceneRenderer.render(..., depth_only=True)` of the
   placements moved into the light's frame);
3. `shadowed_pixels`: a camera pixel is in the light's shadow when its surface point lies
   farther from the light than the nearest surface the light sees in that direction (by more
   than SHADOW_BIAS_M, against the 3x3 neighbourhood's farthest, which keeps lit surfaces free
   of acne);
4. `cast_shadows`: the scene rendered once more without that light, and the shadowed pixels
   take that colour (a 3x3 box filter softens the edge): in its shadow a light adds nothing.

Background photos are no geometry: shadows fall on the table top, the objects and the
distractors.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # renderer.py imports this module
    from pose_kp_ros.rendering.renderer import Light, Placement, SceneRenderer

LIGHT_DISTANCE_M = 5.0
"""How far back along its direction a directional light's shadow camera stands."""
SHADOW_BIAS_M = 0.005
"""A surface point is shadowed only when at least this much farther than the light's nearest."""
MIN_LIGHT_DEPTH_M = 0.05
"""Points nearer the light than this (or behind it) are never shadowed."""


def light_camera(light: 'Light', points: np.ndarray, size: tuple[int, int],
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (R (3, 3), t (3,), K (3, 3)) of a shadow camera for `light`.

    points: (P, 3) the surface points the camera sees, camera frame (metres); size: the shadow
    map's (width, height) in pixels. X_light = R @ X_camera + t; the camera looks from the light
    at the points' centroid and its focal length fits all of them in view.
    """
    centre = points.mean(axis=0)
    if light.kind == 'directional':
        direction = np.asarray(light.direction, dtype=np.float64)
        position = centre - LIGHT_DISTANCE_M * direction / np.linalg.norm(direction)
    else:
        position = np.asarray(light.position, dtype=np.float64)
    z_axis = centre - position
    z_axis /= np.linalg.norm(z_axis)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z_axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x_axis = np.cross(helper, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    R = np.stack([x_axis, np.cross(z_axis, x_axis), z_axis])
    t = -R @ position
    local = points @ R.T + t
    ahead = local[:, 2] > MIN_LIGHT_DEPTH_M
    extent = np.abs(local[ahead, :2] / local[ahead, 2:]).max() if ahead.any() else 1.0
    width, height = size
    focal = (min(width, height) / 2 - 2) / max(extent * 1.02, 1e-6)
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2],
                  [0.0, 0.0, 1.0]])
    return R, t, K


def surface_points(depth: np.ndarray, K: np.ndarray, step: int = 1) -> np.ndarray:
    """Return the points (P, 3) camera frame (metres) of every `step`-th pixel with depth > 0."""
    sampled = depth[::step, ::step]
    rows, columns = np.nonzero(sampled > 0)
    z = sampled[rows, columns].astype(np.float64)
    x = (columns * step - K[0, 2]) / K[0, 0] * z
    y = (rows * step - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=1)


def shadowed_pixels(depth: np.ndarray, K: np.ndarray, light_depth: np.ndarray,
                    R: np.ndarray, t: np.ndarray, K_light: np.ndarray) -> np.ndarray:
    """Return (H, W) bool: camera pixels whose surface the light does not reach.

    depth: (H, W) the camera's depth (metres, 0: no surface); light_depth: (h, w) the shadow
    camera's depth of the same scene; R, t, K_light: that camera (`light_camera`).
    """
    height, width = depth.shape
    z = depth.astype(np.float32)
    x = ((np.arange(width, dtype=np.float32) - K[0, 2]) / K[0, 0])[None, :] * z
    y = ((np.arange(height, dtype=np.float32) - K[1, 2]) / K[1, 1])[:, None] * z
    R, t = R.astype(np.float32), t.astype(np.float32)
    local = [R[i, 0] * x + R[i, 1] * y + R[i, 2] * z + t[i] for i in range(3)]
    ahead = (z > 0) & (local[2] > MIN_LIGHT_DEPTH_M)
    inverse = np.where(ahead, 1.0 / np.where(ahead, local[2], 1.0), 0.0)
    u = np.rint(K_light[0, 0] * local[0] * inverse + K_light[0, 2]).astype(np.int64)
    v = np.rint(K_light[1, 1] * local[1] * inverse + K_light[1, 2]).astype(np.int64)
    map_height, map_width = light_depth.shape
    inside = ahead & (u >= 0) & (u < map_width) & (v >= 0) & (v < map_height)
    farthest = cv2.dilate(light_depth.astype(np.float32), np.ones((3, 3), np.uint8))
    nearest = np.where(inside, farthest.ravel()[np.where(inside, v * map_width + u, 0)], 0.0)
    return inside & (nearest > 0) & (local[2] > nearest + SHADOW_BIAS_M)


def in_light_frame(placements: Sequence['Placement'], R: np.ndarray,
                   t: np.ndarray) -> list['Placement']:
    """Return the placements moved from the camera's frame into the frame X' = R X + t."""
    return [replace(item, R=R @ np.asarray(item.R), t=R @ np.asarray(item.t, float) + t)
            for item in placements]


def cast_shadows(renderer: 'SceneRenderer', K: np.ndarray, placements: Sequence['Placement'],
                 lights: Sequence['Light'], ambient: Sequence[float], rgb: np.ndarray,
                 depth: np.ndarray) -> np.ndarray:
    """Return the scene's render rgb (H, W, 3) uint8 with the shadows of its lights that cast.

    rgb, depth: the scene rendered through K (3, 3) with all `lights` and no shadows. Costs two
    renders a light that casts shadows (its shadow map, the scene without it).
    """
    points = surface_points(depth, K, step=4)  # enough to frame the light's view
    if not len(points):
        return rgb
    plain = [replace(light, casts_shadow=False) for light in lights]
    result = rgb.astype(np.float32)
    for index, light in enumerate(lights):
        if not light.casts_shadow:
            continue
        R, t, K_light = light_camera(light, points, (renderer.width, renderer.height))
        _, light_depth = renderer.render(K_light, in_light_frame(placements, R, t),
                                         depth_only=True)
        shadow = shadowed_pixels(depth, K, light_depth, R, t, K_light).astype(np.float32)
        if not shadow.any():
            continue
        unlit, _ = renderer.render(K, placements, plain[:index] + plain[index + 1:], ambient)
        share = cv2.blur(shadow, (3, 3))[..., None]
        result -= share * np.clip(rgb.astype(np.float32) - unlit, 0, None)
    return np.clip(np.rint(result), 0, 255).astype(np.uint8)
