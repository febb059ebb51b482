"""Meshes: loading, diameter, farthest-point keypoints, the primitive shapes of distractors.

Why surface farthest-point sampling (FPS) for keypoints: points sampled uniformly by area over the
surface (not mesh vertices, whose density follows modelling detail) and then chosen greedily to be
as far as possible from each other spread the keypoints over the whole object. Spread keypoints
make the perspective pose fit well conditioned, and, unlike box corners, every keypoint lies ON
the surface, so it has image evidence and its visibility can be read from the depth buffer
(PVNet, Peng et al. CVPR 2019, found surface FPS keypoints better than box corners). The chosen
points are NOT snapped to vertices: they lie exactly on triangles (snapping would only move them
by up to one triangle size on coarse meshes and gains nothing).
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import ConvexHull
import trimesh

PRIMITIVE_COPIES = 2
"""How many instances of each primitive shape a scene may hold."""


def mesh_diameter(vertices: ArrayLike) -> float:
    """Return the largest distance between two of `vertices` (V, 3), same unit as the input.

    Exact: the farthest pair lies on the convex hull, so only hull vertices are compared.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    hull = vertices
    if len(vertices) > 4:  # 'QJ' (joggle) also handles flat point sets
        hull = vertices[ConvexHull(vertices, qhull_options='QJ').vertices]
    diffs = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((diffs ** 2).sum(-1).max()))


def farthest_point_keypoints(mesh: trimesh.Trimesh, count: int, seed: int = 0,
                             surface_samples: int = 20000) -> np.ndarray:
    """Choose `count` keypoints on the surface of `mesh` by farthest-point sampling.

    Samples `surface_samples` points uniformly by area (seeded), starts from the sample farthest
    from the mesh's bounding-box centre, then repeatedly adds the sample farthest from all chosen.
    Returns (count, 3) float64 in the mesh's unit.
    """
    if count < 1:
        raise ValueError(f'number of keypoints must be at least 1, got {count}')
    points, _ = trimesh.sample.sample_surface(mesh, surface_samples, seed=seed)
    points = np.asarray(points, dtype=np.float64)
    centre = mesh.bounds.mean(axis=0)
    chosen = [int(np.argmax(np.linalg.norm(points - centre, axis=1)))]
    nearest = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return points[chosen]


def primitive_meshes() -> dict[str, trimesh.Trimesh]:
    """Return {key: unit-size trimesh primitive}: box, sphere, cylinder, capsule, cone, torus."""
    shapes = {
        'box': trimesh.creation.box(extents=(1.0, 1.0, 1.0)),
        'sphere': trimesh.creation.icosphere(subdivisions=2, radius=0.5),
        'cylinder': trimesh.creation.cylinder(radius=0.5, height=1.0, sections=24),
        'capsule': trimesh.creation.capsule(height=0.5, radius=0.25, count=(16, 16)),
        'cone': trimesh.creation.cone(radius=0.5, height=1.0, sections=24),
        'torus': trimesh.creation.torus(major_radius=0.35, minor_radius=0.15),
    }
    return {f'{name}{copy}': mesh.copy() for name, mesh in shapes.items()
            for copy in range(PRIMITIVE_COPIES)}
