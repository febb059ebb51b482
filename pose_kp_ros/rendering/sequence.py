"""Rendered videos: one random scene per video, filmed by a camera that moves smoothly.

With `sequence_length` L > 1 (RenderSettings), sample i is frame k = i mod L of video s = i // L.
Video s draws its scene from `numpy.random.default_rng([seed, s])` as a still sample draws its
own (redrawn until frame 0 shows `min_visible_fraction` of the first object), then its camera
path from the same stream. Relative to frame 0 the camera orbits the first object's centre by
a sweep drawn from `sequence_sweep_deg` (constant speed, about an axis within AXIS_SPREAD_DEG of
the image's vertical), tilts by up to TILT_DEG, moves up to ZOOM of the distance nearer or
farther and lets the object drift up to DRIFT of the image size across it (each a smooth curve).
The lights move with the camera; the background photo and the table top's painted photo stay
fixed in the image. What a scene looks like (each object's colours, texture, background, colour
jitter and blur) is the same in every frame; sensor noise and JPEG quality are drawn per frame.
Frames after the first label whatever is seen, also when the first object is hidden or leaves
the view. Frames depend only on (seed, i), so workers render them in any order.
"""

from dataclasses import dataclass, replace
import math

import numpy as np

from pose_kp_ros.geometry.rotations import so3_exp
from pose_kp_ros.rendering.scene import SampleRenderer

AXIS_SPREAD_DEG = 20.0
"""The orbit axis lies within this angle of the camera's vertical (image y axis)."""
TILT_DEG = 5.0
"""Amplitude of the camera's tilt about the image's horizontal axis, degrees."""
ZOOM = 0.1
"""Amplitude of the distance change, as a fraction of the first object's distance."""
DRIFT = 0.1
"""Amplitude of the first object's drift across the image, as a fraction of its size."""


@dataclass(frozen=True)
class CameraPath:
    """The smooth camera motion of one video (drawn by `draw_camera_path`).

    axis: (3,) unit orbit axis, camera frame; sweep_deg: orbit over the whole video; tilt_deg,
    zoom, drift: (3,) amplitudes of tilt (degrees), distance (fraction) and image drift
    (fraction of width and height, sign and size per axis); phases: (3,) radians.
    """

    axis: np.ndarray
    sweep_deg: float
    tilt_deg: float
    zoom: float
    drift: np.ndarray
    phases: np.ndarray


def draw_camera_path(rng: np.random.Generator, sweep_deg: tuple[float, float]) -> CameraPath:
    """Draw a camera path: sweep uniform in `sweep_deg` (low, high), either direction."""
    spread = math.radians(rng.uniform(-AXIS_SPREAD_DEG, AXIS_SPREAD_DEG))
    heading = rng.uniform(0.0, 2.0 * math.pi)
    axis = np.array([math.sin(spread) * math.cos(heading), -math.cos(spread),
                     math.sin(spread) * math.sin(heading)])
    return CameraPath(axis=axis, sweep_deg=float(rng.uniform(*sweep_deg) * rng.choice([-1, 1])),
                      tilt_deg=float(rng.uniform(-TILT_DEG, TILT_DEG)),
                      zoom=float(rng.uniform(-ZOOM, ZOOM)),
                      drift=rng.uniform(-DRIFT, DRIFT, size=2),
                      phases=rng.uniform(0.0, 2.0 * math.pi, size=3))


def _path_at(path, u):
    """Return (rotation (3, 3), distance factor, drift (2,)) of the path at time u in [0, 1]."""
    tilt = math.radians(path.tilt_deg * math.sin(2.0 * math.pi * u + path.phases[0]))
    rotation = (so3_exp(path.axis * math.radians(path.sweep_deg * u))
                @ so3_exp(np.array([tilt, 0.0, 0.0])))
    distance = 1.0 + path.zoom * math.sin(math.pi * u + path.phases[1])
    drift = path.drift * math.sin(math.pi * u + path.phases[2])
    return rotation, distance, drift


def scene_motion(path: CameraPath, frame: int, length: int, pivot: np.ndarray,
                 K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the rigid motion (M (3, 3), d (3,) metres) of frame `frame` relative to frame 0.

    A point X of frame 0 (camera frame, metres) is at M @ (X - pivot) + pivot + d in this frame.
    pivot: (3,) the first object's centre in frame 0; K (3, 3) and size (width, height) turn the
    drift into metres at the pivot's depth. Frame 0 gives the identity.
    """
    u = frame / (length - 1)
    rotation_0, distance_0, drift_0 = _path_at(path, 0.0)
    rotation, distance, drift = _path_at(path, u)
    M = rotation @ rotation_0.T
    shift_px = (drift - drift_0) * np.asarray(size, dtype=np.float64)
    sideways = pivot[2] * np.linalg.solve(K, [shift_px[0], shift_px[1], 0.0])
    return M, (distance / distance_0 - 1.0) * pivot + sideways


def render_video_frame(renderer: SampleRenderer, index: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray, list[dict], int]:
    """Render sample `index` as a video frame; returns what SampleRenderer.render_sample does."""
    settings = renderer.settings
    video, frame = divmod(index, settings.sequence_length)
    rng = np.random.default_rng([seed, video])
    scene, rgb, depth, ids, labelled = renderer.render_scene(rng, f'video {video}')
    objects, placements, ambient, lights = scene
    path = draw_camera_path(rng, settings.sequence_sweep_deg)
    if frame > 0:
        first, R_first, t_first = objects[0]
        pivot = R_first @ renderer.centres[first] + t_first
        M, d = scene_motion(path, frame, settings.sequence_length, pivot, renderer.K,
                            (renderer.width, renderer.height))
        objects = [(number, M @ R, M @ (t - pivot) + pivot + d) for number, R, t in objects]
        placements = [replace(item, R=M @ item.R, t=M @ (item.t - pivot) + pivot + d)
                      for item in placements]
        rgb, depth = renderer.renderer.render(renderer.K, placements, lights, ambient)
        ids, labelled = renderer.label_instances(objects, depth, None)
    colours = {number: np.random.default_rng([seed, video, 2, number]) for number, _, _ in objects}
    return renderer.finish_sample(rgb, depth, ids, labelled, placements,
                                  np.random.default_rng([seed, video, 1]),
                                  np.random.default_rng([seed, video, 3, frame]), colours)


def render_dataset_sample(renderer: SampleRenderer, index: int,
                          seed: int) -> tuple[np.ndarray, np.ndarray, list[dict], int]:
    """Render sample `index`: a video frame with `sequence_length` > 1, else a still."""
    if renderer.settings.sequence_length > 1:
        return render_video_frame(renderer, index, seed)
    return renderer.render_sample(index, seed)
