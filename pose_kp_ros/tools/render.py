"""`pose-kp render`: synthetic training images of one or more objects (dataset folder format).

Examples (resumable: run the same command again to continue):
    nice -n 10 pose-kp render --object objects/driller.yaml --out data/driller_train
        --count 20000 --workers 2 --seed 0
    pose-kp render --object objects/ape.yaml --object objects/can.yaml ... (the eight LM-O
        objects) --settings config/render_lmo_all.yaml --out data/lmo_all_train --count 20000
"""

import argparse
from collections.abc import Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
import json
from pathlib import Path
import sys

import numpy as np
import yaml

from pose_kp_ros.data.package_data import (
    PackageDataError,
    lmo_camera,
    lmo_mesh_uris,
    resolve_pkgdata,
)
from pose_kp_ros.geometry.mesh import MeshError
from pose_kp_ros.geometry.object_model import ObjectModel, ObjectModelError
from pose_kp_ros.rendering.renderer import RendererUnavailableError
from pose_kp_ros.rendering.scene import SampleRejectedError
from pose_kp_ros.rendering.settings import RenderSettings


def camera_from_args(args: argparse.Namespace) -> tuple[np.ndarray, tuple[int, int]]:
    """Return (K (3, 3), (width, height)) from --camera-json, --fx..--cy or the LM-O camera."""
    explicit = [args.fx, args.fy, args.cx, args.cy]
    if args.camera_json:
        camera = json.loads(Path(args.camera_json).read_text())
        if 'K' in camera:
            K = np.asarray(camera['K'], dtype=np.float64).reshape(3, 3)
        else:
            K = np.array([[camera['fx'], 0.0, camera['cx']], [0.0, camera['fy'], camera['cy']],
                          [0.0, 0.0, 1.0]])
        size = (camera.get('width', args.width), camera.get('height', args.height))
    elif any(value is not None for value in explicit):
        if any(value is None for value in explicit):
            raise ValueError('give all of --fx --fy --cx --cy, or none')
        K = np.array([[args.fx, 0.0, args.cx], [0.0, args.fy, args.cy], [0.0, 0.0, 1.0]])
        size = (args.width, args.height)
    else:
        K, size = lmo_camera()
        if (args.width, args.height) not in ((None, None), size):
            raise ValueError(f'the default (LM-O) camera is {size[0]}x{size[1]}: give '
                             '--fx --fy --cx --cy or --camera-json for another image size')
    size = (int(size[0] or 640), int(size[1] or 480))
    return K, size


def default_distractors(models: Iterable[ObjectModel]) -> list[tuple[str, float]]:
    """Return the LM-O meshes not among the objects' own, as (pkgdata reference, 0.001) pairs."""
    try:
        uris = lmo_mesh_uris()
    except PackageDataError:
        return []
    own = {model.resolve_mesh_path() for model in models}
    return [(uri, 0.001) for uri in uris.values() if resolve_pkgdata(uri).resolve() not in own]


def load_settings(path: Path | str | None, distance: Sequence[float] | None = None,
                  min_visible: float | None = None) -> RenderSettings:
    """Return RenderSettings from a YAML file of its fields (or defaults), with CLI overrides."""
    values = {}
    if path:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f'{path}: expected a mapping of render settings')
        known = set(RenderSettings.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'{path}: unknown render setting(s) {unknown}; known: '
                             f'{sorted(known)}')
        values = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in values.items()}
    if distance is not None:
        values['distance_m'] = tuple(distance)
    if min_visible is not None:
        values['min_visible_fraction'] = min_visible
    try:
        return RenderSettings(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f'{path or "render settings"}: {error}') from None


def parse_distractor(text: str) -> tuple[str, float]:
    """Parse 'FILE' or 'FILE@SCALE' into (file, scale)."""
    path, _, scale = text.partition('@')
    return path, float(scale) if scale else 1.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pose-kp render`; return the exit code."""
    defaults = RenderSettings()
    parser = argparse.ArgumentParser(
        prog='pose-kp render',
        description='Render random annotated scenes of one or more objects (random poses, '
                    'lights, real-photo backgrounds, distractors, camera noise) into a dataset '
                    'folder. Resumable: existing samples are kept.')
    parser.add_argument('--object', required=True, action='append',
                        help='object model YAML (with a mesh); repeat it for scenes of several '
                             'objects (setting objects_per_scene), their order is the '
                             "dataset's object order")
    parser.add_argument('--out', required=True, help='dataset folder to write or continue')
    parser.add_argument('--count', type=int, required=True, help='number of images')
    parser.add_argument('--workers', type=int, default=1, help='render processes (default 1)')
    parser.add_argument('--seed', type=int, default=0, help='sample i uses seed (seed, i)')
    parser.add_argument('--width', type=int, help="image width (default: the camera's)")
    parser.add_argument('--height', type=int, help="image height (default: the camera's)")
    for name in ('fx', 'fy', 'cx', 'cy'):
        parser.add_argument(f'--{name}', type=float, help='intrinsics, pixels (default LM-O)')
    parser.add_argument('--camera-json',
                        help='camera file: BOP camera.json (fx, fy, cx, cy, width, height) or '
                             '{"K": 3x3, "width", "height"}')
    parser.add_argument('--settings', help='YAML of scene settings (RenderSettings fields, '
                                           'e.g. config/render_driller.yaml)')
    parser.add_argument('--distance', type=float, nargs=2, metavar=('MIN', 'MAX'),
                        help='object distance range, metres '
                             f'(default {defaults.distance_m}; overrides --settings)')
    parser.add_argument('--min-visible', type=float,
                        help='redraw scenes where less of the object is visible (default '
                             f'{defaults.min_visible_fraction}; overrides --settings)')
    parser.add_argument('--distractor-mesh', action='append', default=[], metavar='FILE[@SCALE]',
                        help='extra distractor mesh (repeatable); SCALE to metres, default 1')
    parser.add_argument('--no-lmo-distractors', action='store_true',
                        help='do not use the other LM-O meshes as distractors')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)

    from pose_kp_ros.rendering.dataset_writer import DatasetWriteError, render_dataset
    try:
        K, size = camera_from_args(args)
        models = [ObjectModel.from_yaml(path) for path in args.object]
        distractors = [] if args.no_lmo_distractors else default_distractors(models)
        distractors += [parse_distractor(text) for text in args.distractor_mesh]
        settings = load_settings(args.settings, args.distance, args.min_visible)
        rendered = render_dataset(args.object, args.out, args.count, seed=args.seed,
                                  workers=args.workers, size=size, K=K, settings=settings,
                                  distractor_meshes=distractors, progress=not args.quiet)
    except BrokenProcessPool:
        print('pose-kp render: a render worker died (out of memory or killed); run the same '
              'command again to continue', file=sys.stderr)
        return 1
    except (ValueError, OSError, ObjectModelError, MeshError, DatasetWriteError,
            RendererUnavailableError, SampleRejectedError, PackageDataError) as error:
        print(f'pose-kp render: {error}', file=sys.stderr)
        return 1
    print(f'{args.out}: rendered {rendered} new images ({args.count} requested)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
