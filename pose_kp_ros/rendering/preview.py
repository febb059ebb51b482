"""A picture of a mesh with its numbered keypoints from four viewpoints (to check a new object)."""

from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.rendering.labels import keypoint_visibility
from pose_kp_ros.rendering.renderer import Light, Placement, SceneRenderer

if TYPE_CHECKING:
    import trimesh

VIEWS_DEG = ((0.0, 0.0, 0.0), (90.0, 0.0, 0.0), (0.0, 90.0, 0.0), (-35.0, 45.0, 20.0))
"""Euler angles (xyz, degrees) of the four views: front, top/bottom, side, three-quarter."""


def keypoint_preview(mesh: 'trimesh.Trimesh', keypoints: np.ndarray,
                     tile: int = 400) -> np.ndarray:
    """Return an RGB uint8 image (2 tile, 2 tile, 3): the mesh from four views with keypoints.

    mesh: trimesh in metres; keypoints (N, 3) metres, object frame. Visible keypoints are filled
    discs, keypoints hidden by the object itself are rings; each carries its index. tile: pixels.
    """
    diameter = float(np.linalg.norm(mesh.extents))
    K = np.array([[tile, 0.0, (tile - 1) / 2], [0.0, tile, (tile - 1) / 2], [0.0, 0.0, 1.0]])
    renderer = SceneRenderer(tile, tile)
    renderer.add_mesh('object', mesh)
    centre = mesh.bounds.mean(axis=0)
    tiles = []
    try:
        for angles in VIEWS_DEG:
            R = Rotation.from_euler('xyz', angles, degrees=True).as_matrix()
            t = np.array([0.0, 0.0, 1.1 * diameter]) - R @ centre
            light = Light('directional', (1.0, 1.0, 1.0), 3.0, direction=(0.3, 0.4, 1.0))
            rgb, depth = renderer.render(K, [Placement('object', R, t)], [light], (0.4,) * 3)
            image = np.where((depth > 0)[..., None], rgb, 255).astype(np.uint8)
            uv, z = project_object_points(keypoints, R, t, K, with_depth=True)
            visibility = keypoint_visibility(uv, z, depth, 0.02 * diameter)
            for number, ((u, v), flag) in enumerate(zip(uv, visibility)):
                centre_px = (int(round(u)), int(round(v)))
                cv2.circle(image, centre_px, 6, (220, 30, 30), -1 if flag == 2 else 2,
                           cv2.LINE_AA)
                cv2.putText(image, str(number), (centre_px[0] + 7, centre_px[1] - 7),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 160), 2, cv2.LINE_AA)
            cv2.rectangle(image, (0, 0), (tile - 1, tile - 1), (180, 180, 180), 1)
            tiles.append(image)
    finally:
        renderer.close()
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
