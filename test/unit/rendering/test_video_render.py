"""`pose-kp render` videos (RenderSettings.sequence_length): smooth, rigid, reproducible."""

import json

import numpy as np
import pytest

from pose_kp_ros.geometry.metrics import rotation_error_deg
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.rendering.dataset_writer import render_dataset
from pose_kp_ros.rendering.scene import SampleRenderer
from pose_kp_ros.rendering.sequence import (
    draw_camera_path,
    render_dataset_sample,
    scene_motion,
)
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.training.records import read_dataset

SIZE = (320, 240)
K = np.array([[286.0, 0.0, 159.5], [0.0, 286.0, 119.5], [0.0, 0.0, 1.0]])
LENGTH = 5
SETTINGS = RenderSettings(objects_per_scene=(2, 2), upright_axis=(0, 0, 1),
                          upright_probability=1.0, distance_m=(0.6, 0.8), centre_outside=0.0,
                          distractor_count=(1, 2), min_visible_fraction=0.5,
                          sequence_length=LENGTH, sequence_sweep_deg=(20.0, 20.0))


def test_camera_path_starts_at_frame_zero_and_moves_in_even_small_steps():
    pivot = np.array([0.05, -0.02, 0.7])
    for seed in range(20):
        path = draw_camera_path(np.random.default_rng(seed), (20.0, 20.0))
        motions = [scene_motion(path, frame, 61, pivot, K, SIZE) for frame in range(61)]
        np.testing.assert_allclose(motions[0][0], np.eye(3), atol=1e-12)
        np.testing.assert_allclose(motions[0][1], 0.0, atol=1e-12)
        steps = [rotation_error_deg(after[0][None], before[0][None])[0]
                 for before, after in zip(motions, motions[1:])]
        # 20 degrees of orbit over 60 steps plus a tilt of at most 5 degrees: ~0.33-0.6 per step
        assert 0.25 < min(steps) and max(steps) < 0.7
        moves = [np.linalg.norm(after[1] - before[1])
                 for before, after in zip(motions, motions[1:])]
        assert max(moves) < 0.01  # metres per frame at 0.7 m
        total = rotation_error_deg(motions[-1][0][None], np.eye(3)[None])[0]
        assert 15.0 < total < 25.1


@pytest.fixture(scope='module')
def video(tmp_path_factory, repo_root, renderer_available, driller_uri):
    """Render two short videos of the driller and the ape; return the folder."""
    out = tmp_path_factory.mktemp('video')
    objects = [repo_root / 'objects' / f'{name}.yaml' for name in ('driller', 'ape')]
    assert render_dataset(objects, out, 2 * LENGTH, seed=5, size=SIZE, K=K,
                          settings=SETTINGS, progress=False) == 2 * LENGTH
    return out


def poses(folder):
    """Return {(sequence, frame): {object: (R, t)}} from annotations.jsonl."""
    found = {}
    for line in (folder / 'annotations.jsonl').read_text().splitlines():
        entry = json.loads(line)
        found[entry['sequence'], entry['frame']] = {
            item['object']: (np.array(item['R']), np.array(item['t']))
            for item in entry['instances']}
    return found


def test_frames_of_a_video_move_the_whole_scene_rigidly_and_smoothly(video):
    frames = poses(video)
    assert sorted(frames) == [(s, f) for s in range(2) for f in range(LENGTH)]
    for sequence in range(2):
        shown = [frames[sequence, f] for f in range(LENGTH)]
        both = [item for item in shown if len(item) == 2]
        assert len(both) >= 2, 'the two objects stand side by side in most frames'
        names = sorted(both[0])
        relative = [(a[0].T @ b[0], a[0].T @ (b[1] - a[1]))
                    for a, b in ([item[name] for name in names] for item in both)]
        for R_rel, t_rel in relative[1:]:  # one rigid scene, only the camera moves
            np.testing.assert_allclose(R_rel, relative[0][0], atol=1e-6)
            np.testing.assert_allclose(t_rel, relative[0][1], atol=1e-6)
        first = [item['driller'] if 'driller' in item else item['ape'] for item in shown]
        steps = rotation_error_deg(np.array([b[0] for b in first[1:]]),
                                   np.array([a[0] for a in first[:-1]]))
        assert (steps > 0.5).all() and (steps < 8.0).all()  # 20 deg over 4 steps, and tilt
    assert not np.allclose(frames[0, 0][names[0]][1], frames[1, 0][names[0]][1])


def test_a_frame_renders_the_same_alone_and_records_its_video(video, repo_root):
    models = [ObjectModel.from_yaml(repo_root / 'objects' / f'{name}.yaml')
              for name in ('driller', 'ape')]
    renderer = SampleRenderer(models, K, SIZE, settings=SETTINGS)
    try:
        image, ids, instances, quality = render_dataset_sample(renderer, LENGTH + 3, 5)
        again = render_dataset_sample(renderer, LENGTH + 3, 5)
    finally:
        renderer.close()
    np.testing.assert_array_equal(image, again[0])
    written = [json.loads(line) for line in
               (video / 'annotations.jsonl').read_text().splitlines()][LENGTH + 3]
    np.testing.assert_allclose([item['t'] for item in instances],
                               [item['t'] for item in written['instances']])
    _, records = read_dataset(video)
    assert {record.sequence for record in records} == {0, 1}
    assert all(record.sequence == int(record.image.split('/')[-1][:6]) // LENGTH
               for record in records)


def test_sequence_settings_are_checked():
    with pytest.raises(ValueError, match='sequence_length'):
        RenderSettings(sequence_length=0)
    with pytest.raises(ValueError, match='sequence_sweep_deg'):
        RenderSettings(sequence_sweep_deg=(30.0, 10.0))
