"""Dataset format 2: folders of several objects, instance-id masks, and the datasets on them."""

import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from pose_kp_ros.training.detector_dataset import load_image_records
from pose_kp_ros.training.keypoint_dataset import KeypointDataset
from pose_kp_ros.training.records import (
    DatasetError,
    load_records,
    read_dataset,
    read_instance_mask,
)

SIZE = (96, 64)
OBJECTS = {'kite': ['tip', 'left', 'tail', 'right', 'centre'],  # as the kite fixture's
           'dart': ['nose', 'fin_a', 'fin_b', 'back', 'middle']}
# per image: (object, left edge of its square, visible fraction); dart 0.05 is a sliver
SCENES = [[('kite', 8, 0.9), ('dart', 50, 0.6)], [('dart', 10, 0.05), ('kite', 40, 1.0)],
          [('kite', 20, 0.7)]]


def write_folder(root, scenes=SCENES, objects=OBJECTS):
    """Write a format-2 folder: squares of 20 px, id masks, keypoints at corners and centre."""
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    (root / 'objects').mkdir()
    lines = []
    for number, scene in enumerate(scenes):
        image = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        ids = np.zeros(image.shape[:2], np.uint8)
        instances = []
        for mask_id, (name, left, fraction) in enumerate(scene, 1):
            ids[20:40, left:left + 20] = mask_id
            image[ids == mask_id] = (200, 40 * mask_id, 30)
            corners = [[left, 20], [left + 19, 20], [left + 19, 39], [left, 39], [left + 10, 30]]
            instances.append({'object': name, 'box_xyxy': [left - 0.5, 19.5, left + 19.5, 39.5],
                              'keypoints_uvv': [[u, v, 2] for u, v in corners],
                              'visible_fraction': fraction,
                              'mask': f'masks/{number:06d}.png', 'mask_id': mask_id})
        cv2.imwrite(str(root / f'images/{number:06d}.png'), image)
        cv2.imwrite(str(root / f'masks/{number:06d}.png'), ids)
        lines.append(json.dumps({'image': f'images/{number:06d}.png', 'instances': instances}))
    (root / 'annotations.jsonl').write_text('\n'.join(lines) + '\n')
    meta = {'format_version': 2,
            'objects': [{'name': name, 'keypoint_names': names, 'file': f'objects/{name}.yaml'}
                        for name, names in objects.items()]}
    (root / 'dataset.yaml').write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


@pytest.fixture
def two_objects(tmp_path):
    """Return a format-2 folder labelling a kite and a dart."""
    return write_folder(tmp_path / 'two')


def test_read_dataset_lists_the_objects_and_indexes_every_instance(two_objects):
    objects, records = read_dataset(two_objects)
    assert [item.name for item in objects] == ['kite', 'dart']
    assert objects[1].keypoint_names == tuple(OBJECTS['dart'])
    assert objects[1].file == str(two_objects / 'objects' / 'dart.yaml')
    expected = [name for scene in SCENES for name, _, _ in scene]
    assert [record.object_name for record in records] == expected
    assert [record.object_index for record in records] == [
        ['kite', 'dart'].index(name) for name in expected]
    assert [record.mask_id for record in records] == [1, 2, 1, 2, 1]


def test_instance_masks_come_from_the_id_image(two_objects):
    _, records = read_dataset(two_objects)
    for record in records:
        mask = read_instance_mask(record, (SIZE[1], SIZE[0]))
        x0, y0, x1, y1 = (round(value + 0.5) for value in record.box_xyxy)
        assert set(np.unique(mask)) == {0, 255}
        assert (mask[y0:y1, x0:x1] == 255).all() and (mask > 0).sum() == 400
    with pytest.raises(DatasetError, match='mask size'):
        read_instance_mask(records[0], (10, 10))


def test_one_object_is_chosen_by_name(two_objects):
    with pytest.raises(DatasetError, match=r"several objects \['kite', 'dart'\]"):
        load_records(two_objects)
    name, names, records = load_records(two_objects, object_name='dart')
    assert name == 'dart' and names == OBJECTS['dart'] and len(records) == 2
    assert {record.object_index for record in records} == {1}
    with pytest.raises(DatasetError, match="'cup'"):
        load_records(two_objects, object_name='cup')


def test_formats_1_and_2_read_together(two_objects, kite_dataset):
    name, names, records = load_records([kite_dataset, two_objects], object_name='kite')
    assert name == 'kite' and names == OBJECTS['kite'] and len(records) == 12 + 3
    assert all(record.object_index == 0 for record in records)
    assert records[0].mask_id is None and records[-1].mask_id == 1


def test_keypoint_crops_of_every_visible_enough_instance_carry_their_object(two_objects):
    _, records = read_dataset(two_objects)
    dataset = KeypointDataset(records, input_size=32, heatmap_size=16,
                              min_visible_fraction=0.1)
    assert len(dataset) == 4  # the dart showing 5% is left out
    samples = [dataset[i] for i in range(len(dataset))]
    assert [int(sample['object_index']) for sample in samples] == [0, 1, 0, 0]
    assert all(sample['keypoints'].shape == (5, 2) for sample in samples)
    batch = torch.utils.data.default_collate(samples)
    assert batch['object_index'].tolist() == [0, 1, 0, 0]
    assert len(KeypointDataset(records, 32, 16)) == 5  # default: every instance


def test_detector_records_hold_every_instance_with_its_class(two_objects, kite_dataset):
    names, train, val = load_image_records([two_objects])
    assert names == ['kite', 'dart'] and val == []
    assert [record.classes for record in train] == [(0, 1), (1, 0), (0,)]
    assert train[1].boxes[0] == (9.5, 19.5, 29.5, 39.5)
    names, train, _ = load_image_records([two_objects], class_names=['dart'])
    assert [record.classes for record in train] == [(0,), (0,)]  # kites are background
    names, train, _ = load_image_records([kite_dataset, two_objects])  # format 1, then 2
    assert names == ['kite', 'dart'] and len(train) == 12 + 3
    with pytest.raises(DatasetError, match=r"none of its objects \['kite', 'dart'\]"):
        load_image_records([two_objects], class_names=['cup'])


def test_format_errors_name_the_field(tmp_path, kite_dataset):
    other = write_folder(tmp_path / 'other', objects={'kite': ['a', 'b', 'c', 'd', 'e'],
                                                       'dart': OBJECTS['dart']})
    with pytest.raises(DatasetError, match="keypoint_names of 'kite'"):
        read_dataset([kite_dataset, other])
    meta_path = other / 'dataset.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    meta_path.write_text(yaml.safe_dump({**meta, 'format_version': 3}))
    with pytest.raises(DatasetError, match='format_version 3'):
        read_dataset(other)
    meta_path.write_text(yaml.safe_dump({**meta, 'objects': meta['objects'][:1]}))
    with pytest.raises(DatasetError, match=r"instances\[1\].object 'dart' is not among"):
        read_dataset(other)
    meta_path.write_text(yaml.safe_dump({'format_version': 2}))
    with pytest.raises(DatasetError, match="missing field 'objects'"):
        read_dataset(other)


def test_mosaic_script_draws_the_labels(two_objects, tmp_path, repo_root):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_render_mosaic', repo_root / 'scripts' / 'make_render_mosaic.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / 'mosaic.png'
    assert script.main([str(two_objects), '--columns', '2', '--scale', '1',
                        '--out', str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * SIZE[1], 2 * SIZE[0], 3)  # 3 images, one blank tile
    plain = cv2.imread(str(two_objects / 'images' / '000000.png'))
    assert (picture[:SIZE[1], :SIZE[0]] != plain).any()  # boxes and keypoints drawn
    assert (picture[SIZE[1]:, SIZE[0]:] == 255).all()
    assert script.main([str(two_objects), '--first', '5', '--out', str(out)]) == 1
