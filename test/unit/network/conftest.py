"""Synthetic dataset fixture: a flat coloured 'kite' with 5 keypoints on random backgrounds.

Written in the dataset folder format (docs/dataset_format.md) without any renderer: the object's
3-D keypoints are projected with a pinhole K, its outline filled, and a distinct coloured dot drawn
on every keypoint so that a tiny network can learn them in seconds.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

KEYPOINT_NAMES = ['tip', 'left', 'tail', 'right', 'centre']
KEYPOINTS_M = np.array([[0.0, -0.06, 0.0], [-0.04, 0.0, 0.0], [0.0, 0.05, 0.0],
                        [0.04, 0.0, 0.0], [0.0, 0.0, -0.01]])
DOT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


def _rotation(rng):
    """Return a random rotation that keeps the kite facing the camera (tilt < 40 deg)."""
    roll, tilt_x, tilt_y = rng.uniform(-np.pi, np.pi), *rng.uniform(-0.7, 0.7, 2)
    c, s = np.cos(roll), np.sin(roll)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    c, s = np.cos(tilt_x), np.sin(tilt_x)
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    c, s = np.cos(tilt_y), np.sin(tilt_y)
    ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return rz @ rx @ ry


def make_dataset(root, count=8, size=(160, 120), seed=0, image_ext='png', with_masks=True):
    """Write a synthetic dataset of `count` images into `root` and return root as a Path."""
    root = Path(root)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'masks').mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    K = np.array([[200.0, 0, (width - 1) / 2], [0, 200.0, (height - 1) / 2], [0, 0, 1]])
    lines = []
    for i in range(count):
        R = _rotation(rng)
        t = np.array([*rng.uniform(-0.08, 0.08, 2), rng.uniform(0.3, 0.45)])
        cam = KEYPOINTS_M @ R.T + t
        uv = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
        coarse = rng.integers(0, 256, (3, 4, 3)).astype(np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        mask = np.zeros((height, width), np.uint8)
        outline = np.round(uv[:4] * 16).astype(np.int32)
        cv2.fillPoly(mask, [outline], 255, cv2.LINE_AA, shift=4)
        image[mask > 127] = (200, 200, 200)
        for point, colour in zip(uv, DOT_COLOURS):
            cv2.circle(image, tuple(np.round(point * 16).astype(int).tolist()), 3 * 16, colour,
                       -1, cv2.LINE_AA, shift=4)
        inside = (uv >= -0.5).all(1) & (uv[:, 0] < width - 0.5) & (uv[:, 1] < height - 0.5)
        ys, xs = np.nonzero(mask > 127)
        box = [float(xs.min()) - 0.5, float(ys.min()) - 0.5, float(xs.max()) + 0.5,
               float(ys.max()) + 0.5]
        name = f'{i:06d}'
        image_path = f'images/{name}.{image_ext}'
        cv2.imwrite(str(root / image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        instance = {'object': 'kite', 'box_xyxy': box,
                    'keypoints_uvv': [[float(u), float(v), 2 if ok else 0]
                                      for (u, v), ok in zip(uv, inside)],
                    'R': R.tolist(), 't': t.tolist(), 'visible_fraction': 1.0}
        if with_masks:
            cv2.imwrite(str(root / f'masks/{name}_0.png'), mask)
            instance['mask'] = f'masks/{name}_0.png'
        lines.append(json.dumps({'image': image_path, 'K': K.tolist(), 'instances': [instance]}))
    (root / 'annotations.jsonl').write_text('\n'.join(lines) + '\n')
    meta = {'object': 'kite.yaml', 'object_name': 'kite', 'keypoint_names': KEYPOINT_NAMES,
            'image_size': [width, height], 'count': count, 'seed': seed,
            'generator': 'test fixture', 'notes': 'flat kite with coloured keypoint dots'}
    (root / 'dataset.yaml').write_text(yaml.safe_dump(meta, sort_keys=False))
    object_yaml = {'name': 'kite', 'keypoint_names': KEYPOINT_NAMES,
                   'keypoints_m': KEYPOINTS_M.tolist(), 'diameter_m': 0.11, 'symmetric': False}
    (root / 'kite.yaml').write_text(yaml.safe_dump(object_yaml, sort_keys=False))
    return root


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each test on one torch thread: reproducible numbers, and no OpenMP spin-waiting.

    On a shared, busy 2-core machine two spinning threads made the overfit test 20x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def make_kite_dataset():
    """Return the synthetic dataset writer `make_dataset(root, count, ...)`."""
    return make_dataset


@pytest.fixture(scope='session')
def kite_dataset(tmp_path_factory):
    """Return the path of a small synthetic dataset shared by the tests of a session."""
    return make_dataset(tmp_path_factory.mktemp('kite') / 'data', count=12)
