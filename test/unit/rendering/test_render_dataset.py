"""`pose-kp render`: dataset format, annotations agree with the pixels, determinism, resume."""

import json
import shutil

import cv2
import numpy as np
import pytest
import yaml

from pose_kp_ros.rendering.dataset_writer import DatasetWriteError, render_dataset
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.tools import render

COUNT = 6


def render_cli(repo_root, out, *extra):
    """Run `pose-kp render` for the shipped driller; return the exit code."""
    return render.main(['--object', str(repo_root / 'objects' / 'driller.yaml'), '--out',
                        str(out), '--count', str(COUNT), '--seed', '7', '--quiet', *extra])


@pytest.fixture(scope='module')
def one_worker(tmp_path_factory, repo_root, renderer_available, driller_uri):
    """Render a small dataset with one process; return its folder."""
    out = tmp_path_factory.mktemp('one_worker')
    assert render_cli(repo_root, out, '--workers', '1') == 0
    return out


def read_lines(root):
    """Return the parsed lines of annotations.jsonl."""
    return [json.loads(line) for line in (root / 'annotations.jsonl').read_text().splitlines()]


def folder_bytes(root):
    """Return {relative path: bytes} of every file under root."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob('*'))
            if path.is_file()}


def test_dataset_files_follow_the_format(one_worker):
    meta = yaml.safe_load((one_worker / 'dataset.yaml').read_text())
    assert meta['format_version'] == 2 and meta['count'] == COUNT
    assert meta['image_size'] == [640, 480] and meta['seed'] == 7
    assert meta['generator'].startswith('pose-kp render')
    (item,) = meta['objects']
    assert item['name'] == 'driller'
    assert item['keypoint_names'] == [f'kp{i:02d}' for i in range(10)]
    assert yaml.safe_load((one_worker / item['file']).read_text())['name'] == 'driller'
    lines = read_lines(one_worker)
    assert [line['image'] for line in lines] == [f'images/{i:06d}.jpg' for i in range(COUNT)]
    for line in lines:
        np.testing.assert_allclose(line['K'], [[572.4114, 0, 325.2611], [0, 573.57043, 242.04899],
                                               [0, 0, 1]])
        image = cv2.imread(str(one_worker / line['image']))
        assert image.shape == (480, 640, 3)
        (instance,) = line['instances']
        assert instance['object'] == 'driller'
        mask = cv2.imread(str(one_worker / instance['mask']), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (480, 640) and mask.dtype == np.uint8
        assert instance['mask_id'] == 1 and set(np.unique(mask)) == {0, 1}
        R, t = np.array(instance['R']), np.array(instance['t'])
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-7)
        assert np.linalg.det(R) == pytest.approx(1.0) and 0.3 < t[2] < 1.7
        assert 0.3 <= instance['visible_fraction'] <= 1.0
        assert len(instance['keypoints_uvv']) == 10


def test_the_training_reader_accepts_the_dataset(one_worker):
    from pose_kp_ros.training.records import load_records
    name, keypoint_names, records = load_records(one_worker)
    assert name == 'driller' and len(keypoint_names) == 10 and len(records) == COUNT


def test_box_mask_and_keypoints_agree(one_worker):
    for line in read_lines(one_worker):
        (instance,) = line['instances']
        mask = cv2.imread(str(one_worker / instance['mask']), cv2.IMREAD_UNCHANGED) == 1
        rows, cols = np.nonzero(mask)
        assert instance['box_xyxy'] == [cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5,
                                        rows.max() + 0.5]
        near_mask = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for u, v, flag in instance['keypoints_uvv']:
            inside = -0.5 <= u < 639.5 and -0.5 <= v < 479.5
            assert (flag > 0) == inside
            if flag == 2:  # a visible keypoint lies on the visible object (2 px slack)
                assert near_mask[round(v), round(u)]


def test_keypoints_are_the_projected_model_keypoints(one_worker, repo_root):
    model = yaml.safe_load((repo_root / 'objects' / 'driller.yaml').read_text())
    keypoints = np.array(model['keypoints_m'])
    for line in read_lines(one_worker):
        (instance,) = line['instances']
        K = np.array(line['K'])
        points = keypoints @ np.array(instance['R']).T + np.array(instance['t'])
        uv = (points @ K.T)[:, :2] / points[:, 2:]
        np.testing.assert_allclose(np.array(instance['keypoints_uvv'])[:, :2], uv, atol=2e-3)


def test_two_workers_write_the_same_dataset_as_one(one_worker, tmp_path, repo_root):
    assert render_cli(repo_root, tmp_path, '--workers', '2') == 0
    assert folder_bytes(tmp_path) == folder_bytes(one_worker)


def test_resume_renders_only_what_is_missing(one_worker, tmp_path, repo_root):
    shutil.copytree(one_worker, tmp_path, dirs_exist_ok=True)
    annotations = tmp_path / 'annotations.jsonl'
    lines = annotations.read_text().splitlines(keepends=True)
    # an interrupted run: the last two samples missing, the one before half written
    annotations.write_text(''.join(lines[:3]) + lines[3][:40])
    for name in ('images/000004.jpg', 'masks/000005.png'):
        (tmp_path / name).unlink()
    assert render_cli(repo_root, tmp_path) == 0
    assert folder_bytes(tmp_path) == folder_bytes(one_worker)


def as_format_1(root):
    """Rewrite a one-object render folder as the version before format 2 wrote it."""
    config = yaml.safe_load((root / 'render_config.yaml').read_text())
    config['object'] = config.pop('objects')[0]
    for key in ('object_colours', 'objects_per_scene', 'table_spacing', 'table_probability'):
        del config['settings'][key]
    (root / 'render_config.yaml').write_text(yaml.safe_dump(config))
    meta = yaml.safe_load((root / 'dataset.yaml').read_text())
    (item,) = meta.pop('objects')
    del meta['format_version']
    meta.update(object='object.yaml', object_name=item['name'],
                keypoint_names=item['keypoint_names'])
    (root / 'dataset.yaml').write_text(yaml.safe_dump(meta))
    lines = []
    for line in read_lines(root):
        (instance,) = line['instances']
        ids = cv2.imread(str(root / instance['mask']), cv2.IMREAD_UNCHANGED)
        (root / instance['mask']).unlink()
        instance['mask'] = instance['mask'].replace('.png', '_0.png')
        cv2.imwrite(str(root / instance['mask']), (ids == instance.pop('mask_id')) * np.uint8(255))
        lines.append(json.dumps(line) + '\n')
    (root / 'annotations.jsonl').write_text(''.join(lines))


def test_a_folder_of_format_1_is_read_and_continued(one_worker, tmp_path, repo_root):
    from pose_kp_ros.training.records import load_records, read_instance_mask
    shutil.copytree(one_worker, tmp_path, dirs_exist_ok=True)
    as_format_1(tmp_path)
    _, _, records = load_records(tmp_path)
    assert len(records) == COUNT and {record.mask_id for record in records} == {None}
    annotations = tmp_path / 'annotations.jsonl'
    annotations.write_text(''.join(annotations.read_text().splitlines(keepends=True)[:4]))
    assert render_cli(repo_root, tmp_path) == 0  # the same options: continued as format 2
    for name in ('images/000004.jpg', 'images/000005.jpg', 'masks/000005.png'):
        assert (tmp_path / name).read_bytes() == (one_worker / name).read_bytes()
    _, _, records = load_records(tmp_path)
    assert [record.mask_id for record in records] == [None] * 4 + [1, 1]
    for record, expected in zip(records, load_records(one_worker)[2]):
        np.testing.assert_array_equal(read_instance_mask(record, (480, 640)),
                                      read_instance_mask(expected, (480, 640)))
    assert yaml.safe_load((tmp_path / 'dataset.yaml').read_text())['format_version'] == 2
    assert render_cli(repo_root, tmp_path, '--min-visible', '0.5') == 1  # other options


def test_resume_with_other_settings_is_refused(one_worker, tmp_path, repo_root):
    assert render_cli(repo_root, tmp_path, '--count', '1') == 0
    with pytest.raises(DatasetWriteError, match='other settings'):
        render_dataset(repo_root / 'objects' / 'driller.yaml', tmp_path, 2, seed=7,
                       K=np.array(read_lines(one_worker)[0]['K']),
                       settings=RenderSettings(min_visible_fraction=0.5), progress=False)


def test_bad_inputs_give_clear_errors(tmp_path, repo_root, capsys, renderer_available):
    assert render.main(['--object', str(tmp_path / 'none.yaml'), '--out', str(tmp_path / 'd'),
                        '--count', '1']) == 1
    assert 'none.yaml' in capsys.readouterr().err
    assert render.main(['--object', str(repo_root / 'objects' / 'driller.yaml'), '--out',
                        str(tmp_path / 'd'), '--count', '1', '--fx', '500']) == 1
    assert '--fx --fy --cx --cy' in capsys.readouterr().err
    assert render.main(['--object', str(repo_root / 'objects' / 'driller.yaml'), '--out',
                        str(tmp_path / 'd'), '--count', '1', '--width', '320']) == 1
    assert 'default (LM-O) camera' in capsys.readouterr().err


def test_mesh_files_are_recorded_relative_to_the_dataset(tmp_path, repo_root, renderer_available,
                                                         driller_uri):
    from pose_kp_ros.data.package_data import resolve_pkgdata
    from pose_kp_ros.geometry.object_model import ObjectModel
    (tmp_path / 'meshes').mkdir()
    mesh = tmp_path / 'meshes' / 'driller.ply'
    shutil.copy(resolve_pkgdata(driller_uri), mesh)
    part = yaml.safe_load((repo_root / 'objects' / 'driller.yaml').read_text())
    part['mesh'] = '../meshes/driller.ply'  # relative to the object YAML's folder
    (tmp_path / 'objects').mkdir()
    (tmp_path / 'objects' / 'part.yaml').write_text(yaml.safe_dump(part))
    out = tmp_path / 'data' / 'set'
    assert render.main(['--object', str(tmp_path / 'objects' / 'part.yaml'), '--out', str(out),
                        '--count', '1', '--quiet', '--no-lmo-distractors',
                        '--distractor-mesh', f'{mesh}@0.001']) == 0
    config = yaml.safe_load((out / 'render_config.yaml').read_text())
    assert config['objects'][0]['mesh'] == '../../meshes/driller.ply'  # from the dataset folder
    assert config['distractor_meshes'] == [['../../meshes/driller.ply', 0.001]]
    copied = ObjectModel.from_yaml(out / 'objects' / 'driller.yaml')  # named by its name
    assert copied.mesh_path == '../../../meshes/driller.ply'  # from the copy's folder
    assert copied.resolve_mesh_path().resolve() == mesh.resolve()
