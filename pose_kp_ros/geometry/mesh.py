"""Object meshes: loading, the model's mesh checked, the point sets sampled from it.

Meshes are PLY/OBJ read with trimesh, imported only when a mesh is used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pose_kp_ros.data.package_data import PKGDATA_SCHEME, PackageDataError, resolve_pkgdata
from pose_kp_ros.geometry.object_model import ObjectModel, ObjectModelError

if TYPE_CHECKING:
    import trimesh

LOGGER = logging.getLogger(__name__)


def object_mesh(model: ObjectModel) -> trimesh.Trimesh | None:
    """Return the model's mesh (trimesh, metres), or None when it has none or it is unreadable.

    Raises ObjectModelError when the scaled mesh's size disagrees with diameter_m (a wrong
    mesh_scale, e.g. a millimetre mesh without mesh_scale 0.001), or when the model names a mesh
    but the trimesh package is not installed (a missing dependency, not a missing file).
    """
    if not model.mesh_path:
        return None
    try:
        import trimesh  # noqa: F401  (load_mesh and the surface sampling use it)
    except ImportError:
        raise ObjectModelError(
            f'{model.source or model.name}: mesh: the Python package trimesh is not installed; '
            'the mesh (crop boxes, silhouette refinement) needs it: install python3-trimesh '
            '(rosdep install --from-paths src) or pip install trimesh') from None
    try:
        mesh = load_mesh(model.resolve_mesh_path(), model.mesh_scale)
    except Exception as error:  # a missing mesh degrades crops and depth, not the pipeline
        LOGGER.warning('%s: mesh %s unusable (%s): crop boxes from keypoints, no silhouette '
                       'refinement', model.name, model.mesh_path, error)
        return None
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    # The bounding box diagonal lies between the diameter and sqrt(3) times it.
    diagonal = float(np.linalg.norm(vertices.max(0) - vertices.min(0))) if len(vertices) else 0.0
    if not 0.5 * model.diameter <= diagonal <= 3.0 * model.diameter:
        raise ObjectModelError(
            f'{model.source or model.name}: mesh_scale: the mesh is {diagonal:g} m across with '
            f'mesh_scale {model.mesh_scale:g} but diameter_m is {model.diameter:g} m: set '
            'mesh_scale to convert the mesh units to metres (0.001 for millimetres)')
    return mesh


def outline_points(model: ObjectModel, count: int = 512, seed: int = 0) -> np.ndarray:
    """Return (P, 3) metres of object points whose projection bounds the object's image box.

    Mesh vertices (a fixed random subset) when the model has a readable mesh, else keypoints.
    """
    return mesh_outline_points(model, object_mesh(model), count, seed)


def mesh_outline_points(model: ObjectModel, mesh: trimesh.Trimesh | None, count: int = 512,
                        seed: int = 0) -> np.ndarray:
    """Return outline_points (P, 3) for a mesh already loaded by object_mesh (None: keypoints)."""
    if mesh is None:
        return np.asarray(model.keypoints, dtype=np.float64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) > count:
        vertices = vertices[np.random.default_rng(seed).choice(len(vertices), count,
                                                               replace=False)]
    return vertices


def surface_points(mesh: trimesh.Trimesh, count: int = 10000, seed: int = 0) -> np.ndarray:
    """Return (count, 3) metres sampled uniformly by area on a trimesh surface (seeded)."""
    import trimesh
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float64)


class MeshError(ValueError):
    """A mesh file is missing, unreadable or has no triangles; the message names the file."""


def load_mesh(mesh: Path | str, scale: float = 1.0) -> trimesh.Trimesh:
    """Load a PLY/OBJ mesh (vertex colours or texture kept) and scale its vertices to metres.

    `mesh` is a file path or a `pkgdata:<package>/<path>` reference; `scale` multiplies vertex
    coordinates (0.001 for a mesh in millimetres). Returns a `trimesh.Trimesh`; raises
    `MeshError` naming the file. (Object models resolve their own mesh paths:
    `ObjectModel.resolve_mesh_path`.)
    """
    path = Path(mesh)
    if str(mesh).startswith(PKGDATA_SCHEME):
        try:
            path = resolve_pkgdata(str(mesh))
        except PackageDataError as error:
            raise MeshError(str(error)) from None
    if not path.is_file():
        raise MeshError(f'mesh file not found: {path}')
    if not np.isfinite(scale) or scale <= 0:
        raise MeshError(f'mesh_scale must be a positive number, got {scale} for {path}')
    import trimesh
    try:
        loaded = trimesh.load(str(path), force='mesh', process=False)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise MeshError(f'cannot read mesh {path}: {type(error).__name__}: {error}') from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(f'mesh {path} has no triangles (is it a mesh file?)')
    if not np.all(np.isfinite(loaded.vertices)):
        raise MeshError(f'mesh {path} has non-finite vertex coordinates')
    loaded.apply_scale(scale)
    return loaded
