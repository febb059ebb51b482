"""`pose-kp new-object`: make an object model YAML from a mesh (keypoints by surface FPS or given).

Example:
    pose-kp new-object --mesh my_part.ply --mesh-scale 0.001 --name my_part
writes objects/my_part.yaml and objects/my_part_keypoints.png (the keypoints drawn on the mesh).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import sys
from typing import TYPE_CHECKING

import cv2
import numpy as np
import yaml

from pose_kp_ros.data.package_data import PKGDATA_SCHEME
from pose_kp_ros.geometry.mesh import MeshError, load_mesh
from pose_kp_ros.geometry.object_model import ObjectModel, ObjectModelError
from pose_kp_ros.geometry.symmetry import Symmetry, find_symmetries
from pose_kp_ros.rendering.mesh import farthest_point_keypoints, mesh_diameter

if TYPE_CHECKING:
    import trimesh


def read_keypoints_file(path: Path | str, scale: float) -> tuple[list[str] | None, np.ndarray]:
    """Read keypoints from YAML/JSON: a list of [x, y, z] or a mapping {name: [x, y, z]}.

    Coordinates are in the mesh's units and multiplied by `scale`. Returns (names or None,
    (N, 3) metres). Raises ValueError naming the file.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'{path}: cannot read keypoints: {error}') from None
    names = None
    if isinstance(data, dict):
        names, data = [str(name) for name in data], list(data.values())
    try:
        points = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{path}: expected a list of [x, y, z] numbers') from None
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise ValueError(f'{path}: expected N rows of 3 finite numbers, got shape {points.shape}')
    return names, points * scale


def mesh_reference(mesh: Path | str, out_path: Path | str) -> str:
    """Return how the YAML names the mesh: pkgdata reference as is, else relative to the YAML."""
    if str(mesh).startswith(PKGDATA_SCHEME):
        return str(mesh)
    return os.path.relpath(Path(mesh).resolve(), Path(out_path).resolve().parent)


SYMMETRY_SAMPLES = 20000
"""Surface points on which --find-symmetries checks candidate rotations."""


def mesh_symmetries(loaded: trimesh.Trimesh, seed: int = 0) -> list[Symmetry]:
    """Return the 180-degree symmetries of a trimesh (metres), checked on surface samples."""
    import trimesh
    points, _ = trimesh.sample.sample_surface(loaded, SYMMETRY_SAMPLES, seed=seed)
    return find_symmetries(np.asarray(points), mesh_diameter(loaded.vertices))


def make_object_model(mesh: Path | str, name: str, num_keypoints: int = 10,
                      keypoints_file: Path | str | None = None, mesh_scale: float = 1.0,
                      symmetric: bool = False, out_path: Path | str | None = None, seed: int = 0,
                      symmetries: bool = False, upright_axis: Sequence[float] | None = None
                      ) -> tuple[ObjectModel, trimesh.Trimesh]:
    """Build the ObjectModel of a mesh; return (model, loaded trimesh in metres).

    mesh_scale: mesh units to metres; keypoints_file: keypoints given (read_keypoints_file)
    instead of num_keypoints by farthest-point sampling; out_path: the YAML the mesh reference is
    relative to (default: NAME.yaml here). symmetries=True derives the mesh's 180-degree
    symmetries (mesh_symmetries) and records them. upright_axis: (3,) mesh-frame axis pointing
    up when the object stands: keypoints only where it is seen from above (none on its base).
    """
    loaded = load_mesh(mesh, mesh_scale)
    if keypoints_file is not None:
        names, keypoints = read_keypoints_file(keypoints_file, mesh_scale)
    else:
        names, keypoints = None, farthest_point_keypoints(loaded, num_keypoints, seed=seed,
                                                          upright_axis=upright_axis)
    if names is None:
        names = [f'kp{index:02d}' for index in range(len(keypoints))]
    found = tuple(mesh_symmetries(loaded, seed)) if symmetries else ()
    model = ObjectModel(name=name, keypoint_names=names, keypoints=np.round(keypoints, 6),
                        diameter=round(mesh_diameter(loaded.vertices), 6),
                        symmetric=symmetric or bool(found), symmetries=found,
                        mesh_path=mesh_reference(mesh, out_path or f'{name}.yaml'),
                        mesh_scale=mesh_scale)
    return model, loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pose-kp new-object`; return the exit code."""
    parser = argparse.ArgumentParser(
        prog='pose-kp new-object',
        description='Make an object model YAML from a PLY/OBJ mesh: diameter, N keypoints by '
                    'farthest-point sampling on the surface (or given), mesh reference.')
    parser.add_argument('--mesh', required=True,
                        help="mesh file (PLY/OBJ) or 'pkgdata:<package>/<path>'")
    parser.add_argument('--name', required=True, help='object name, [a-z0-9_]+')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--num-keypoints', type=int, default=10,
                        help='keypoints chosen by surface farthest-point sampling (default 10)')
    source.add_argument('--keypoints', metavar='FILE',
                        help='YAML/JSON list of [x, y, z] (or {name: [x, y, z]}) in mesh units')
    parser.add_argument('--mesh-scale', type=float, default=1.0,
                        help='factor from mesh units to metres (0.001 for millimetres)')
    parser.add_argument('--symmetric', action='store_true', help='evaluate with ADD-S')
    parser.add_argument('--find-symmetries', action='store_true',
                        help='derive the 180-degree rotations that map the mesh onto itself and '
                             'record them (then ADD-S)')
    parser.add_argument('--upright-axis', type=float, nargs=3, metavar=('X', 'Y', 'Z'),
                        help='mesh axis that points up when the object stands (as the render '
                             'setting upright_axis): keypoints only where it is seen from above, '
                             'none on its base (default: anywhere on the surface)')
    parser.add_argument('--seed', type=int, default=0, help='surface sampling seed')
    parser.add_argument('--out', help='output YAML (default objects/NAME.yaml)')
    parser.add_argument('--preview', help='keypoint picture (default: next to the YAML, '
                                          'NAME_keypoints.png); "none" to skip')
    args = parser.parse_args(argv)
    if args.keypoints and args.upright_axis:
        parser.error('--upright-axis chooses where keypoints go: not with --keypoints')
    out = Path(args.out or f'objects/{args.name}.yaml')
    try:
        model, mesh = make_object_model(args.mesh, args.name, args.num_keypoints, args.keypoints,
                                        args.mesh_scale, args.symmetric, out, args.seed,
                                        args.find_symmetries, args.upright_axis)
    except (MeshError, ObjectModelError, ValueError) as error:
        print(f'pose-kp new-object: {error}', file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    model.to_yaml(out)
    print(f'wrote {out}: {model.num_keypoints} keypoints, diameter {model.diameter:.4f} m, '
          f'mesh {model.mesh_path} (scale {model.mesh_scale})')
    if args.find_symmetries:
        print(f'symmetries: {[s.to_dict(4) for s in model.symmetries] or "none found"}')
    preview = args.preview or str(out.with_name(f'{args.name}_keypoints.png'))
    if preview != 'none':
        from pose_kp_ros.rendering.preview import keypoint_preview
        from pose_kp_ros.rendering.renderer import RendererUnavailableError
        try:
            image = keypoint_preview(mesh, model.keypoints)
        except RendererUnavailableError as error:
            print(f'no preview: {error}', file=sys.stderr)
            return 0
        cv2.imwrite(preview, image[:, :, ::-1])
        print(f'wrote {preview}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
