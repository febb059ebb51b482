"""Write a synthetic dataset folder (format: docs/dataset_format.md) with parallel, resumable work.

Layout written under `out_dir` (dataset format version 2):
    dataset.yaml          format_version, objects (name, keypoint_names, file), image_size,
                          count, seed, generator, notes
    objects/NAME.yaml     copy of each object model the renders were made with
    render_config.yaml    objects, camera, image size, seed, scene settings, distractor meshes
(mesh files are named relative to the folder of the YAML file naming them)
    annotations.jsonl     one line per image, in sample-index order (videos, RenderSettings
                          sequence_length > 1: with the image's "sequence" and "frame" numbers)
    images/000000.jpg     RGB JPEG (random quality 70-95)
    masks/000000.png      instance ids, uint8: 0 where no labelled object is seen, k where the
                          image's instance with mask_id k (its k-th) is

Sample i depends only on (seed, i), so any number of worker processes (each with its own OSMesa
renderer) writes the same files. Resuming: indices already in annotations.jsonl are skipped; a
half-written last line (interrupted run) is dropped and that sample is rendered again. A folder
of format 1 (one object, rendered before format 2) continues in format 2: its lines are kept
(each instance with a mask of its own, which format 2 reads too).
"""

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
import dataclasses
import json
import multiprocessing
import os
from os import PathLike
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm
import yaml

from pose_kp_ros import __version__
from pose_kp_ros.data.package_data import PKGDATA_SCHEME
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.paths import portable_path
from pose_kp_ros.rendering.scene import SampleRenderer
from pose_kp_ros.rendering.sequence import render_dataset_sample
from pose_kp_ros.rendering.settings import RenderSettings

GENERATOR = f'pose-kp render {__version__}'
FORMAT_VERSION = 2
"""The dataset format version this writer writes (docs/dataset_format.md)."""
META_UPDATE_EVERY = 100
"""dataset.yaml's count is refreshed after this many new samples (readers may start early)."""


class DatasetWriteError(ValueError):
    """The output folder holds a dataset rendered with other settings, or inputs are invalid."""


def sample_name(index: int) -> str:
    """Return the file stem of sample `index` ('000042')."""
    return f'{index:06d}'


def _write_yaml_atomic(path, data):
    """Write YAML to path via a temporary file, so readers never see half a file."""
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    os.replace(temporary, path)


def _read_done(annotations_path):
    """Return {index: line} of complete lines; drop a truncated last line from the file."""
    if not annotations_path.exists():
        return {}
    done, good_bytes = {}, 0
    with open(annotations_path, 'rb') as file:
        for raw in file:
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b'\n'):
                break
            done[int(Path(entry['image']).stem)] = raw.decode()
            good_bytes += len(raw)
    if good_bytes != annotations_path.stat().st_size:
        with open(annotations_path, 'r+b') as file:
            file.truncate(good_bytes)
    return done


_WORKER = {}


def _init_worker(models, K, size, distractor_meshes, settings, seed, out_dir):
    """Create this process's renderer (an OpenGL context cannot cross processes)."""
    _WORKER['renderer'] = SampleRenderer(models, K, size, distractor_meshes, settings)
    _WORKER['seed'] = seed
    _WORKER['out_dir'] = Path(out_dir)
    _WORKER['K'] = np.asarray(K, dtype=np.float64).tolist()


def _render_one(index):
    """Render, write the image and instance mask of sample `index`; return its annotation line."""
    renderer = _WORKER['renderer']
    image, ids, instances, quality = render_dataset_sample(renderer, index, _WORKER['seed'])
    out_dir, name = _WORKER['out_dir'], sample_name(index)
    ok, jpeg = cv2.imencode('.jpg', image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    (out_dir / 'images' / f'{name}.jpg').write_bytes(jpeg.tobytes())
    cv2.imwrite(str(out_dir / 'masks' / f'{name}.png'), ids)
    for mask_id, instance in enumerate(instances, 1):
        instance.update(mask=f'masks/{name}.png', mask_id=mask_id)
    entry = {'image': f'images/{name}.jpg', 'K': _WORKER['K'], 'instances': instances}
    if renderer.settings.sequence_length > 1:
        entry['sequence'], entry['frame'] = divmod(index, renderer.settings.sequence_length)
    return index, json.dumps(entry) + '\n'


def _dataset_meta(models, size, count, seed, written):
    """Return the dataset.yaml mapping."""
    state = 'complete' if written >= count else f'in progress: {written} of {count} rendered'
    names = [model.name for model in models]
    return {'format_version': FORMAT_VERSION,
            'objects': [{'name': model.name, 'keypoint_names': list(model.keypoint_names),
                         'file': f'objects/{model.name}.yaml'} for model in models],
            'image_size': list(size), 'count': written, 'seed': seed, 'generator': GENERATOR,
            'notes': f'synthetic renders of {", ".join(names)} ({state}); settings in '
                     'render_config.yaml'}


def _portable_model(model):
    """Return a copy of the model whose mesh path does not depend on the YAML's folder."""
    mesh = model.mesh_path
    if mesh is not None and not mesh.startswith(PKGDATA_SCHEME):
        mesh = str(model.resolve_mesh_path())
    return dataclasses.replace(model, mesh_path=mesh, source=None)


def _recorded_mesh(mesh, out_dir):
    """Return a mesh reference as the dataset's files record it: a file relative to out_dir."""
    mesh = str(mesh)
    return mesh if mesh.startswith(PKGDATA_SCHEME) else portable_path(mesh, out_dir)


def _load_models(object_yamls):
    """Return the portable ObjectModels of one object file or a list of them (each with a mesh)."""
    paths = ([object_yamls] if isinstance(object_yamls, (str, PathLike))
             else list(object_yamls))
    models = []
    for path in paths:
        model = ObjectModel.from_yaml(path)
        if model.mesh_path is None:
            raise DatasetWriteError(f'{path}: mesh: the object model names no mesh to render')
        models.append(_portable_model(model))
    return models


def _as_current(config):
    """Return a render_config.yaml mapping as this version records it.

    Format 1 (one `object`) becomes a list of one; scene settings added since the folder was
    rendered take their defaults, with which it renders exactly as before (same images, same
    annotations), so such a folder can be continued.
    """
    if not isinstance(config, dict):
        return config
    upgraded = {key: value for key, value in config.items() if key != 'object'}
    if 'object' in config:
        upgraded['objects'] = [config['object']]
    if isinstance(config.get('settings', {}), dict):
        upgraded['settings'] = {**RenderSettings().to_dict(), **config.get('settings', {})}
    return upgraded


def _check_resumable(config_path, config):
    """Raise DatasetWriteError if `config_path` exists and records another render config."""
    if not config_path.exists():
        return
    previous = _as_current(yaml.safe_load(config_path.read_text()))
    if previous != yaml.safe_load(yaml.safe_dump(config)):
        raise DatasetWriteError(
            f'{config_path.parent} holds a dataset rendered with other settings (see '
            f'{config_path}); use the same options to resume or another --out folder')


def render_dataset(object_yamls: str | PathLike | list, out_dir: str | PathLike, count: int,
                   seed: int = 0, workers: int = 1, size: tuple = (640, 480),
                   K: ArrayLike | None = None, settings: RenderSettings | None = None,
                   distractor_meshes: Sequence[tuple[str | PathLike, float]] = (),
                   progress: bool = True) -> int:
    """Render samples 0..count-1 into `out_dir`, skipping those already there.

    object_yamls: an object model file or a list of them (each must name a mesh; their order is
    the dataset's object order); K (3, 3) pixels (required); size (W, H); distractor_meshes:
    (path or pkgdata reference, scale to metres) pairs. Returns the number of samples rendered
    by this call.
    """
    models = _load_models(object_yamls)
    settings = settings or RenderSettings()
    try:
        settings.check_objects([model.name for model in models])
    except ValueError as error:
        raise DatasetWriteError(str(error)) from None
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DatasetWriteError(f'camera matrix K must be (3, 3) with fx, fy > 0, got {K}')
    if count < 0 or workers < 1 or seed < 0:
        raise DatasetWriteError('count >= 0, workers >= 1 and seed >= 0 are required')
    out_dir = Path(out_dir)
    config = {'objects': [{'name': model.name, 'keypoint_names': list(model.keypoint_names),
                           'keypoints_m': model.keypoints.tolist(),
                           'mesh': _recorded_mesh(model.mesh_path, out_dir),
                           'mesh_scale': model.mesh_scale} for model in models],
              'image_size': list(size), 'K': K.tolist(), 'seed': seed,
              'settings': settings.to_dict(),
              'distractor_meshes': [[_recorded_mesh(path, out_dir), float(scale)]
                                    for path, scale in distractor_meshes]}
    config_path = out_dir / 'render_config.yaml'
    _check_resumable(config_path, config)
    for folder in ('images', 'masks', 'objects'):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    _write_yaml_atomic(config_path, config)
    for model in models:
        mesh = _recorded_mesh(model.mesh_path, out_dir / 'objects')
        dataclasses.replace(model, mesh_path=mesh).to_yaml(out_dir / 'objects'
                                                           / f'{model.name}.yaml')
    annotations_path = out_dir / 'annotations.jsonl'
    done = _read_done(annotations_path)
    todo = [index for index in range(count) if index not in done]
    written = len(done)
    _write_yaml_atomic(out_dir / 'dataset.yaml',
                       _dataset_meta(models, size, count, seed, written))
    if not todo:
        return 0
    init_args = (models, K, tuple(size), list(distractor_meshes), settings, seed, out_dir)
    executor = None
    if workers == 1:
        _init_worker(*init_args)
        results = map(_render_one, todo)
    else:  # a worker that dies (e.g. killed) raises BrokenProcessPool instead of hanging
        executor = ProcessPoolExecutor(workers, multiprocessing.get_context('spawn'),
                                       initializer=_init_worker, initargs=init_args)
        results = executor.map(_render_one, todo)
    label = '+'.join(model.name for model in models)
    try:
        with open(annotations_path, 'a') as annotations:
            for done_now, (_, line) in enumerate(
                    tqdm(results, total=len(todo), desc=f'render {label}', unit='img',
                         disable=not progress), 1):
                annotations.write(line)
                annotations.flush()
                if done_now % META_UPDATE_EVERY == 0:
                    _write_yaml_atomic(out_dir / 'dataset.yaml', _dataset_meta(
                        models, size, count, seed, written + done_now))
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        else:
            _WORKER.pop('renderer').close()
    _write_yaml_atomic(out_dir / 'dataset.yaml',
                       _dataset_meta(models, size, count, seed, written + len(todo)))
    return len(todo)
