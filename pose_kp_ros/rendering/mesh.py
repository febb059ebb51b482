"""Meshes: loading, diameter, farthest-point keypoints, the primitive shapes of distractors.

Why surface farthest-point sampling (FPS) for keypoints: points sampled uniformly by area over the
surface (not mesh vertices, whose density follows modelling detail) and then chosen greedily to be
as far as possible from each other spread the keypoints over the whole object. Spread keypoints
make the perspective pose fit well conditioned, and, unlike box corners, every keypoint lies ON
the surface, so it has image evidence and its visibility can be read from the depth buffer
(PVNet, Peng et al. CVPR 2019, found surface FPS keypoints better than box corners). The chosen
points are NOT snapped to vertices: they lie exactly on triangles (snapping would only move them
by up to one triangle size on coarse meshes and gains nothing).

An object that stands (on a table, a shelf) never shows its base: keypoints there are hidden in
every view and waste the network's heatmaps and the fit's points. Given the object-frame axis
that points up when it stands, FPS chooses only among surface points seen from above
(`seen_from_above`: from at least SEEN_MIN_FRACTION of views at 10-80 degrees elevation).
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


SEEN_MIN_FRACTION = 0.25
"""A standing object's keypoint candidates: surface points seen from at least this share of the
views above it (its side walls are seen from about half of them, its base from none)."""
SAMPLES_PER_CELL = 8.0
"""Surface samples a z-buffer cell of `seen_fraction` holds on average in a view (a convex
body's projected area is a quarter of its surface area): fewer leave cells of the near side
empty, and points behind them count as seen."""
VIEW_ELEVATIONS_DEG = (10.0, 80.0)
"""Elevation range of the views above a standing object, degrees above its support plane."""


def perpendicular(axis: np.ndarray) -> np.ndarray:
    """Return a unit vector (3,) perpendicular to the unit vector `axis` (3,)."""
    side = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    return side / np.linalg.norm(side)


def views_from_above(upright_axis: ArrayLike, count: int = 64) -> np.ndarray:
    """Return (count, 3) unit directions from an object towards cameras above it.

    upright_axis: (3,) object-frame axis that points up when the object stands. Elevations
    evenly spaced over VIEW_ELEVATIONS_DEG, azimuths turning by the golden angle.
    """
    up = np.asarray(upright_axis, dtype=np.float64)
    if up.shape != (3,) or not np.isfinite(up).all() or not np.linalg.norm(up) > 0:
        raise ValueError(f'upright axis must be a non-zero 3-vector, got {upright_axis}')
    up = up / np.linalg.norm(up)
    side = perpendicular(up)
    other = np.cross(up, side)
    elevation = np.radians(np.linspace(*VIEW_ELEVATIONS_DEG, count))
    azimuth = np.arange(count) * np.pi * (3.0 - np.sqrt(5.0))
    flat = np.cos(azimuth)[:, None] * side + np.sin(azimuth)[:, None] * other
    return np.cos(elevation)[:, None] * flat + np.sin(elevation)[:, None] * up


def seen_fraction(points: np.ndarray, normals: np.ndarray | None, directions: np.ndarray,
                  cell: float) -> np.ndarray:
    """Return (P,) the share of `directions` from which each surface point is seen.

    points: (P, 3) dense samples of one surface (they hide each other); normals: (P, 3) their
    outward unit normals, or None where the mesh's winding does not give them; directions:
    (V, 3) unit view directions (object to camera; orthographic views); cell: z-buffer cell
    size, the points' unit (several samples per cell). A point is seen where it faces the view
    (with normals) and lies within a slope-scaled bias of the nearest sample in its cell.
    """
    seen = np.zeros(len(points))
    for view in directions:
        side = perpendicular(view)
        pixels = np.floor(points @ np.stack([side, np.cross(view, side)], 1) / cell).astype(int)
        pixels -= pixels.min(0)
        index = pixels[:, 0] * (pixels[:, 1].max() + 1) + pixels[:, 1]
        depth = points @ view  # larger: nearer the camera
        nearest = np.full(index.max() + 1, -np.inf)
        np.maximum.at(nearest, index, depth)
        facing = np.ones(len(points)) if normals is None else normals @ view
        # a surface at angle theta to the view spans up to cell * sqrt(2) * tan(theta) of depth
        # across a cell (below cell * sqrt(2) / cos(theta)); back faces are never seen
        bias = np.sqrt(2.0) * cell / np.maximum(np.abs(facing), 0.1)
        seen += (facing > 0) & (depth >= nearest[index] - bias)
    return seen / len(directions)


def farthest_point_keypoints(mesh: trimesh.Trimesh, count: int, seed: int = 0,
                             surface_samples: int = 20000,
                             upright_axis: ArrayLike | None = None) -> np.ndarray:
    """Choose `count` keypoints on the surface of `mesh` by farthest-point sampling.

    Samples `surface_samples` points uniformly by area (seeded), starts from the sample farthest
    from the mesh's bounding-box centre, then repeatedly adds the sample farthest from all chosen.
    upright_axis: (3,) for an object that stands on it: only samples seen from above
    (SEEN_MIN_FRACTION of views_from_above) are candidates. Returns (count, 3) float64 in the
    mesh's unit.

    Raises:
        ValueError: count < 1, or fewer candidates than count.
    """
    if count < 1:
        raise ValueError(f'number of keypoints must be at least 1, got {count}')
    points, faces = trimesh.sample.sample_surface(mesh, surface_samples, seed=seed)
    points = np.asarray(points, dtype=np.float64)
    if upright_axis is not None:
        cell = np.sqrt(SAMPLES_PER_CELL * 4.0 * mesh.area / surface_samples)
        oriented = mesh
        if not mesh.is_winding_consistent:  # scans often are not: mend a copy (seconds)
            oriented = mesh.copy()
            oriented.fix_normals()
        normals = oriented.face_normals[faces] if oriented.is_winding_consistent else None
        points = points[seen_fraction(points, normals, views_from_above(upright_axis), cell)
                        >= SEEN_MIN_FRACTION]
        if len(points) < count:
            raise ValueError(f'only {len(points)} surface samples are seen from above along '
                             f'{list(upright_axis)}: too few for {count} keypoints')
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
