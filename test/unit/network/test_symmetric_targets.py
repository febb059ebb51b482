"""Keypoint targets of symmetric objects: the same for every equivalent pose of a crop."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.symmetry import Symmetry, symmetry_group
from pose_kp_ros.training.augmentation import AugmentConfig
from pose_kp_ros.training.keypoint_dataset import KeypointDataset
from pose_kp_ros.training.records import DatasetError, load_records, object_file

GEOMETRIC = AugmentConfig(brightness=0, contrast=0, saturation=0, hue_deg=0, blur_prob=0,
                          noise_prob=0, occluder_prob=0, cutout_prob=0, background_prob=0,
                          box_jitter=0, scale_range=(1, 1), rotation_deg=30)


def _kite(kite_dataset, symmetric):
    """Return the fixture's kite, declared symmetric (a half turn about z off its origin)."""
    model = ObjectModel.from_yaml(object_file(kite_dataset, 'kite'))
    if not symmetric:
        return model
    half_turn = Symmetry(np.array([0.0, 0.0, 1.0]), 180.0, np.array([0.004, -0.003, 0.0]))
    return dataclasses.replace(model, symmetric=True, symmetries=(half_turn,))


def _equivalent(record, model):
    """Return the record posed by the other equivalent pose: same image, its keypoints."""
    rotations, translations = symmetry_group(model.symmetries)
    R, t = np.array(record.R) @ rotations[1], np.array(record.R) @ translations[1] + record.t
    uv = project_object_points(model.keypoints, R, t, np.array(record.K))
    return dataclasses.replace(record, R=tuple(map(tuple, R)), t=tuple(t),
                               keypoints=tuple(map(tuple, uv)))


def _sample(record, augment, model, epoch=0):
    dataset = KeypointDataset([record], 64, 32, augment=augment, seed=2, object_models=[model])
    dataset.set_epoch(epoch)
    return dataset[0]


@pytest.mark.parametrize('augment', [None, GEOMETRIC, AugmentConfig()])
def test_equivalent_poses_of_one_crop_get_the_same_targets(kite_dataset, augment):
    model = _kite(kite_dataset, symmetric=True)
    _, _, records = load_records(kite_dataset)
    for record in records[:6]:
        other = _equivalent(record, model)
        assert np.abs(np.subtract(other.keypoints, record.keypoints)).max() > 5  # ambiguous
        for epoch in (0, 1):
            a, b = (_sample(r, augment, model, epoch) for r in (record, other))
            torch.testing.assert_close(a['image'], b['image'])
            for key in ('heatmaps', 'keypoints', 'visibility', 'weights'):
                torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=0)
        recorded = [_sample(r, augment, _kite(kite_dataset, False)) for r in (record, other)]
        assert not torch.allclose(recorded[0]['heatmaps'], recorded[1]['heatmaps'])
        unaugmented = _sample(record, None, model)['keypoints']
        assert any(torch.allclose(unaugmented, sample['keypoints'], atol=1e-3)
                   for sample in (_sample(r, None, _kite(kite_dataset, False))
                                  for r in (record, other)))      # one of the two posed ones


def _spin(angle):
    """Return Rz(angle) (3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _crop_rotation(sample, record):
    """Return the in-plane rotation (radians) that took the record's keypoints into the crop."""
    image = np.array(record.keypoints) - np.mean(record.keypoints, 0)
    crop = sample['keypoints'].double().numpy()
    linear = np.linalg.lstsq(image, crop - crop.mean(0), rcond=None)[0].T
    return float(np.arctan2(linear[1, 0], linear[0, 0]))


def test_a_turned_crop_gets_the_targets_of_a_turned_camera(kite_dataset):
    """The choice is made for the crop after its in-plane rotation.

    Kite poses facing the camera on its axis, turned about z so that the rule's boundary lies
    between the image and the rotated crop; a camera turned by the crop's rotation gives the
    same crop, which must get the same targets.
    """
    model = _kite(kite_dataset, symmetric=True)
    _, _, records = load_records(kite_dataset)
    centre = np.array(records[0].K)[:2, 2]
    for index, seed_record in enumerate(records[:5]):
        plain = KeypointDataset([seed_record], 64, 32, augment=GEOMETRIC, seed=index)
        angle = _crop_rotation(plain[0], seed_record)
        assert abs(angle) > 1e-3
        results = []
        for turn in (0.0, angle):
            R = _spin(turn) @ _spin(np.pi / 2 - angle / 2)
            t = np.array([0.0, 0.0, 0.4])
            uv = project_object_points(model.keypoints, R, t, np.array(seed_record.K))
            record = dataclasses.replace(
                seed_record, R=tuple(map(tuple, R)), t=tuple(t), mask=None,
                keypoints=tuple(map(tuple, uv)),
                box_xyxy=tuple(np.concatenate([centre - 30, centre + 30])))
            augment = GEOMETRIC if turn == 0.0 else None
            results.append(KeypointDataset([record], 64, 32, augment=augment, seed=index,
                                           object_models=[model])[0])
        torch.testing.assert_close(results[0]['keypoints'], results[1]['keypoints'],
                                   atol=1e-3, rtol=0)
        torch.testing.assert_close(results[0]['heatmaps'], results[1]['heatmaps'],
                                   atol=1e-3, rtol=0)


def test_an_asymmetric_object_keeps_its_recorded_targets(kite_dataset):
    _, _, records = load_records(kite_dataset)
    model = _kite(kite_dataset, symmetric=False)
    for augment in (None, AugmentConfig()):
        before = KeypointDataset(records, 64, 32, augment=augment, seed=4)
        after = KeypointDataset(records, 64, 32, augment=augment, seed=4, object_models=[model])
        for index in range(len(records)):
            for key in ('heatmaps', 'keypoints', 'visibility', 'weights', 'image'):
                assert torch.equal(before[index][key], after[index][key])
    sample = KeypointDataset(records, 64, 32, object_models=[model])[0]
    box = np.array(records[0].box_xyxy)
    expected = ((np.array(records[0].keypoints) - (box[:2] + box[2:]) / 2)
                * sample['crop_scale'].item() + 31.5)
    np.testing.assert_allclose(sample['keypoints'].numpy(), expected, atol=1e-4)
    assert sample['visibility'].tolist() == list(records[0].visibility)


def test_symmetric_visibility_comes_from_the_image_and_the_mask(kite_dataset):
    model = _kite(kite_dataset, symmetric=True)
    _, _, records = load_records(kite_dataset)
    record = records[0]
    assert KeypointDataset([record], 64, 32, object_models=[model])[0]['visibility'].tolist() \
        == [2] * 5                                   # every kite keypoint is on its mask
    unmasked = dataclasses.replace(record, mask=None)
    assert KeypointDataset([unmasked], 64, 32,
                           object_models=[model])[0]['visibility'].tolist() == [1] * 5
    far = dataclasses.replace(record, t=(0.3, 0.0, 0.4), mask=None)   # off the image's side
    assert 0 in KeypointDataset([far], 64, 32, object_models=[model])[0]['visibility'].tolist()


def test_a_symmetric_object_without_poses_is_refused(kite_dataset):
    model = _kite(kite_dataset, symmetric=True)
    _, _, records = load_records(kite_dataset)
    hand_labelled = dataclasses.replace(records[3], R=None, t=None)
    with pytest.raises(DatasetError, match=r'000003\.png: an instance of the symmetric object'):
        KeypointDataset([records[0], hand_labelled], 64, 32, object_models=[model])
    KeypointDataset([hand_labelled], 64, 32, object_models=[_kite(kite_dataset, False)])


def test_the_trainer_takes_the_symmetries_from_the_datasets_object_file(make_kite_dataset,
                                                                       tmp_path):
    from pose_kp_ros.training.keypoint_training import KeypointTrainer, load_config
    dataset = make_kite_dataset(tmp_path / 'data', count=4)
    plain = tmp_path / 'plain_kite.yaml'
    _kite(dataset, symmetric=False).to_yaml(plain)
    _kite(dataset, symmetric=True).to_yaml(dataset / 'kite.yaml')

    def trainer(**extra):
        config = {'datasets': str(dataset), 'output_dir': str(tmp_path / 'run'),
                  'val_fraction': 0.5, 'architecture': {'input_size': 32, 'features': 16,
                                                        'depth': 2}, **extra}
        (tmp_path / 'train.yaml').write_text(yaml.safe_dump(config))
        return KeypointTrainer(load_config(tmp_path / 'train.yaml'), torch.device('cpu'), 0, 1)

    chosen = trainer()
    assert set(chosen.train_set.symmetric) == set(chosen.val_set.symmetric) == {'kite'}
    assert trainer(object=str(plain)).train_set.symmetric == {}     # the config's object wins
