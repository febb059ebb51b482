"""Random synthetic pose problems (for tests and benchmarks): poses, keypoint layouts, pixels.

The default camera is LM-O's (BOP'19 Linemod-Occluded test set: fx 572.41, fy 573.57,
cx 325.26, cy 242.05, 640x480).
"""

import numpy as np

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import random_rotations

LMO_K = np.array([[572.41, 0.0, 325.26], [0.0, 573.57, 242.05], [0.0, 0.0, 1.0]])


def random_poses(rng: np.random.Generator, count: int,
                 depth_m: tuple[float, float] = (0.6, 1.4), K: np.ndarray = LMO_K,
                 margin_px: tuple[float, float] = (120, 100)) -> tuple[np.ndarray, np.ndarray]:
    """Return (R (count, 3, 3), t (count, 3) metres): origin at depth_m, inside the image.

    The origin projects uniformly into the image of K (3, 3) shrunk by margin_px (u, v) pixels
    on each side;
    R is uniform on SO(3) (geometry.rotations.random_rotations, drawn after t).
    """
    z = rng.uniform(*depth_m, count)
    low = np.array(margin_px, float)
    high = 2.0 * K[:2, 2] - low
    uv = rng.uniform(low, high, (count, 2))
    xy = (uv - K[:2, 2]) / np.diag(K)[:2] * z[:, None]
    return random_rotations(rng, count), np.column_stack([xy, z])


def random_keypoint_model(rng: np.random.Generator, num_keypoints: int = 10, size_m: float = 0.25,
                          name: str = 'random_object') -> ObjectModel:
    """Return a rigid ObjectModel with keypoints uniform in a cube of edge size_m at the origin."""
    points = rng.uniform(-size_m / 2, size_m / 2, (num_keypoints, 3))
    diameter = np.linalg.norm(points[:, None] - points[None], axis=-1).max()
    return ObjectModel(name, [f'kp{i:02d}' for i in range(num_keypoints)], points,
                       diameter=float(max(diameter, 1e-6)))
