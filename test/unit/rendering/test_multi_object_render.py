"""`pose-kp render` of several objects per scene: all labelled, on one table, readable."""

import json
import shutil

import cv2
import numpy as np
import pytest
import yaml

from pose_kp_ros.geometry.mesh import load_mesh
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.rendering.dataset_writer import render_dataset
from pose_kp_ros.rendering.renderer import Placement, SceneRenderer
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.tools import render

OBJECTS = ('ape', 'eggbox', 'glue')  # eggbox and glue are symmetric
COUNT = 4
SIZE = (320, 240)
K = np.array([[286.0, 0.0, 159.5], [0.0, 286.0, 119.5], [0.0, 0.0, 1.0]])
SETTINGS = RenderSettings(objects_per_scene=(3, 3), upright_axis=(0, 0, 1),
                          upright_probability=1.0, upright_tilt_deg=0.0, table_probability=0.5,
                          distance_m=(0.5, 0.8), centre_outside=0.0, elevation_deg=(30, 60),
                          distractor_count=(1, 3), near_distractor_probability=0.5)


def object_files(repo_root):
    """Return the object YAML paths of OBJECTS."""
    return [repo_root / 'objects' / f'{name}.yaml' for name in OBJECTS]


def make(out, repo_root, count=COUNT):
    """Render the test's scenes into `out`; return the number rendered."""
    return render_dataset(object_files(repo_root), out, count, seed=3, size=SIZE, K=K,
                          settings=SETTINGS, progress=False)


@pytest.fixture(scope='module')
def multi(tmp_path_factory, repo_root, renderer_available, driller_uri):
    """Render a small dataset of three objects per scene; return its folder."""
    out = tmp_path_factory.mktemp('multi')
    assert make(out, repo_root) == COUNT
    return out


@pytest.fixture(scope='module')
def models(repo_root):
    """Return {name: (ObjectModel, convex hull vertices (V, 3) metres)} of OBJECTS."""
    found = {}
    for path in object_files(repo_root):
        model = ObjectModel.from_yaml(path)
        mesh = load_mesh(model.resolve_mesh_path(), model.mesh_scale)
        found[model.name] = (model, mesh, np.asarray(mesh.convex_hull.vertices))
    return found


def read_lines(root):
    """Return the parsed lines of annotations.jsonl."""
    return [json.loads(line) for line in (root / 'annotations.jsonl').read_text().splitlines()]


def alone_silhouette(renderer, R, t):
    """Return where the object (registered as 'object') covers the image alone (H, W) bool."""
    _, depth = renderer.render(K, [Placement('object', np.array(R), np.array(t))],
                               depth_only=True)
    return depth > 0


def test_every_instance_is_labelled_and_agrees_with_its_mask(multi, models):
    renderers, inside = {}, 0
    for name, (_, mesh, _) in models.items():
        renderers[name] = SceneRenderer(*SIZE)
        renderers[name].add_mesh('object', mesh)
    try:
        for line in read_lines(multi):
            ids = cv2.imread(str(multi / line['instances'][0]['mask']), cv2.IMREAD_UNCHANGED)
            assert ids.shape == SIZE[::-1] and ids.dtype == np.uint8
            assert set(np.unique(ids)) <= set(range(len(line['instances']) + 1))
            assert line['instances'][0]['visible_fraction'] >= SETTINGS.min_visible_fraction
            for number, instance in enumerate(line['instances'], 1):
                model = models[instance['object']][0]
                assert instance['mask_id'] == number
                pixels = ids == number
                rows, cols = np.nonzero(pixels)
                box = [cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5]
                assert instance['box_xyxy'] == box
                R, t = np.array(instance['R']), np.array(instance['t'])
                points = model.keypoints @ R.T + t
                uvv = np.array(instance['keypoints_uvv'])
                np.testing.assert_allclose(uvv[:, :2], (points @ K.T)[:, :2] / points[:, 2:],
                                           atol=2e-3)
                near = cv2.dilate(pixels.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                for u, v, _ in uvv[uvv[:, 2] == 2]:  # on the object's visible part (edges:
                    slack = 1.0                        # a keypoint's pixel may miss it by 1)
                    assert box[0] - slack <= u <= box[2] + slack
                    assert box[1] - slack <= v <= box[3] + slack
                    assert near[round(v), round(u)]
                whole = alone_silhouette(renderers[instance['object']], R, t)
                fraction = instance['visible_fraction']
                assert 0 < fraction <= 1 and not (pixels & ~whole).any()
                border = whole[0].any() or whole[-1].any() or whole[:, 0].any() \
                    or whole[:, -1].any()
                if border:  # the silhouette's area outside the image counts too
                    assert fraction <= pixels.sum() / whole.sum() + 1e-4
                else:
                    assert fraction == pytest.approx(pixels.sum() / whole.sum(), abs=1e-4)
                    inside += 1
    finally:
        for renderer in renderers.values():
            renderer.close()
    assert inside >= 3  # instances whose whole silhouette is in the image were checked


def test_objects_stand_side_by_side_on_one_table(multi, models):
    shown = 0
    for line in read_lines(multi):
        ups, floors, outlines = [], [], []
        for instance in line['instances']:
            R, t = np.array(instance['R']), np.array(instance['t'])
            up = R @ [0.0, 0.0, 1.0]  # upright, no tilt: the object's +z is the table's up
            hull = models[instance['object']][2] @ R.T + t
            ups.append(up)
            floors.append((hull @ up).min())
            outlines.append(hull - np.outer(hull @ up, up))  # seen from above the table
        shown += len(ups)
        np.testing.assert_allclose(ups, np.repeat(ups[:1], len(ups), 0), atol=1e-6)
        np.testing.assert_allclose(floors, floors[0], atol=1e-5)  # one table height
        centres = [outline.mean(0) for outline in outlines]
        for i in range(len(centres)):
            for j in range(i + 1, len(centres)):  # close together, as in a cluttered scene
                assert np.linalg.norm(centres[i] - centres[j]) < 0.5
    assert shown > COUNT  # most scenes show more than one object


def test_object_files_and_their_symmetries_are_carried(multi, repo_root):
    from pose_kp_ros.training.records import read_dataset
    meta = yaml.safe_load((multi / 'dataset.yaml').read_text())
    assert meta['format_version'] == 2 and [o['name'] for o in meta['objects']] == list(OBJECTS)
    objects, _ = read_dataset(multi)
    for item, path in zip(objects, object_files(repo_root)):
        copied, source = ObjectModel.from_yaml(item.file), ObjectModel.from_yaml(path)
        assert copied.symmetric == source.symmetric
        assert [s.to_dict() for s in copied.symmetries] == [s.to_dict()
                                                            for s in source.symmetries]
        assert copied.resolve_mesh_path() == source.resolve_mesh_path()
    assert [bool(ObjectModel.from_yaml(item.file).symmetries) for item in objects] == [
        False, True, True]


def test_training_datasets_read_the_renders(multi):
    from pose_kp_ros.training.augmentation import AugmentConfig
    from pose_kp_ros.training.detector_dataset import load_image_records
    from pose_kp_ros.training.keypoint_dataset import KeypointDataset
    from pose_kp_ros.training.records import load_records, read_dataset
    objects, records = read_dataset(multi)
    lines = read_lines(multi)
    labelled = [instance['object'] for line in lines for instance in line['instances']]
    assert [record.object_name for record in records] == labelled
    assert [record.object_index for record in records] == [OBJECTS.index(n) for n in labelled]
    augment = AugmentConfig(background_prob=1.0)  # cuts each instance out by its mask
    dataset = KeypointDataset(records, 32, 16, augment=augment, min_visible_fraction=0.1)
    kept = [r for r in records if r.visible_fraction >= 0.1]
    assert len(dataset) == len(kept)
    for index in range(len(dataset)):
        assert int(dataset[index]['object_index']) == kept[index].object_index
    _, names, glue = load_records(multi, object_name='glue')
    assert len(glue) == labelled.count('glue') and len(names) == 10
    classes, images, _ = load_image_records([multi])
    assert classes == list(OBJECTS)
    assert [record.classes for record in images] == [
        tuple(OBJECTS.index(i['object']) for i in line['instances']) for line in lines]


def test_resume_continues_a_scene_dataset(multi, tmp_path, repo_root):
    shutil.copytree(multi, tmp_path, dirs_exist_ok=True)
    annotations = tmp_path / 'annotations.jsonl'
    lines = annotations.read_text().splitlines(keepends=True)
    annotations.write_text(''.join(lines[:-1]))
    (tmp_path / 'masks' / f'{COUNT - 1:06d}.png').unlink()
    assert make(tmp_path, repo_root) == 1
    for path in sorted(multi.rglob('*')):
        if path.is_file():
            assert (tmp_path / path.relative_to(multi)).read_bytes() == path.read_bytes()


def test_cli_takes_several_objects_and_checks_the_colour_settings(tmp_path, repo_root, capsys,
                                                                  renderer_available,
                                                                  driller_uri):
    settings = tmp_path / 'scene.yaml'
    settings.write_text('objects_per_scene: [2, 2]\nobject_colours:\n  duck:\n'
                        '    object_hue_shift_deg: [-5, 5]\n')
    camera = ['--fx', '286', '--fy', '286', '--cx', '159.5', '--cy', '119.5', '--width', '320',
              '--height', '240']
    objects = [arg for name in OBJECTS[:2] for arg in ('--object', str(object_files(
        repo_root)[OBJECTS.index(name)]))]
    assert render.main([*objects, '--out', str(tmp_path / 'd'), '--count', '1', '--quiet',
                        '--settings', str(settings), *camera]) == 1
    assert "object_colours names objects not rendered: ['duck']" in capsys.readouterr().err
    settings.write_text('objects_per_scene: [2, 2]\nobject_colours:\n  ape:\n'
                        '    object_hue_shift_deg: [-5, 5]\n')
    assert render.main([*objects, '--out', str(tmp_path / 'd'), '--count', '1', '--quiet',
                        '--settings', str(settings), *camera]) == 0
    config = yaml.safe_load((tmp_path / 'd' / 'render_config.yaml').read_text())
    assert [o['name'] for o in config['objects']] == ['ape', 'eggbox']
    assert config['settings']['object_colours'] == {'ape': {'object_hue_shift_deg': [-5, 5]}}
    # the LM-O meshes not rendered are the distractors
    assert len(config['distractor_meshes']) == 6


def test_shadows_darken_the_scene_and_change_no_label(tmp_path, repo_root, renderer_available,
                                                      driller_uri, monkeypatch):
    """The same scenes with their lights casting shadows, and with cast_shadows switched off."""
    from dataclasses import replace

    from pose_kp_ros.rendering import scene

    settings = replace(SETTINGS, shadow_probability=1.0, table_probability=1.0)
    folders = {}
    for kind in ('shadows', 'plain'):
        if kind == 'plain':
            monkeypatch.setattr(scene, 'cast_shadows', lambda *args: args[5])  # the rgb as is
        folders[kind] = tmp_path / kind
        assert render_dataset(object_files(repo_root), folders[kind], 2, seed=5, size=SIZE, K=K,
                              settings=settings, progress=False) == 2
    assert ((folders['shadows'] / 'annotations.jsonl').read_text()
            == (folders['plain'] / 'annotations.jsonl').read_text())
    darker = []
    for line in read_lines(folders['plain']):
        plain, shadowed = (cv2.imread(str(folders[kind] / line['image']), cv2.IMREAD_GRAYSCALE)
                           .astype(float) for kind in ('plain', 'shadows'))
        change = shadowed - plain
        darker.append((change < -15).mean())
        assert (change > 15).mean() < 0.002  # only JPEG's differences brighten
    assert max(darker) > 0.01  # a shadow of some size on the table or the objects


def test_each_object_draws_its_material_in_the_ranges_and_nothing_else_does(
        repo_root, renderer_available, driller_uri):
    from dataclasses import replace

    from pose_kp_ros.rendering.scene import SampleRenderer

    models = [ObjectModel.from_yaml(path) for path in object_files(repo_root)]
    settings = replace(SETTINGS, object_metallic=(0.0, 0.3), object_roughness=(0.3, 0.6))
    glossy = SampleRenderer(models, K, SIZE, settings=settings)
    try:
        materials = []
        for seed in range(6):
            scene = glossy.draw_scene(np.random.default_rng(seed))
            if scene is None:
                continue
            objects, placements = scene[:2]
            assert all(item.material is None for item in placements[len(objects):])
            materials += [item.material for item in placements[:len(objects)]]
    finally:
        glossy.close()
    assert len(materials) >= 6
    metallic, roughness = np.array(materials).T
    assert ((0.0 <= metallic) & (metallic <= 0.3)).all() and metallic.std() > 0.02
    assert ((0.3 <= roughness) & (roughness <= 0.6)).all() and roughness.std() > 0.02
    plain = SampleRenderer(models, K, SIZE, settings=SETTINGS)
    try:
        scene = plain.draw_scene(np.random.default_rng(0))
    finally:
        plain.close()
    assert scene is None or all(item.material is None for item in scene[1])
