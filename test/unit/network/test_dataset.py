import dataclasses
import json

import numpy as np
import pytest
import torch

from pose_kp_ros.network.crops import heatmap_to_crop_affine, transform_points
from pose_kp_ros.network.heatmaps import decode_heatmaps
from pose_kp_ros.training.augmentation import AugmentConfig
from pose_kp_ros.training.keypoint_dataset import KeypointDataset
from pose_kp_ros.training.records import DatasetError, load_records, split_records


def test_records_read_back_the_annotations(kite_dataset):
    object_name, names, records = load_records(kite_dataset)
    assert object_name == 'kite' and names == ['tip', 'left', 'tail', 'right', 'centre']
    assert len(records) == 12
    first = json.loads((kite_dataset / 'annotations.jsonl').read_text().splitlines()[0])
    instance = first['instances'][0]
    assert records[0].box_xyxy == tuple(instance['box_xyxy'])
    np.testing.assert_allclose(records[0].keypoints, np.array(instance['keypoints_uvv'])[:, :2])
    assert records[0].mask.endswith('masks/000000_0.png')


def test_samples_without_augmentation_put_keypoints_at_heatmap_peaks(kite_dataset):
    _, _, records = load_records(kite_dataset)
    dataset = KeypointDataset(records, input_size=64, heatmap_size=32, sigma=1.5)
    sample = dataset[0]
    assert sample['image'].shape == (3, 64, 64) and sample['heatmaps'].shape == (5, 32, 32)
    decoded, confidence = decode_heatmaps(sample['heatmaps'][None])
    to_crop = torch.as_tensor(heatmap_to_crop_affine(64, 32), dtype=torch.float32)
    torch.testing.assert_close(transform_points(to_crop, decoded[0]), sample['keypoints'],
                               atol=1e-3, rtol=0)
    # The crop maps the record's image keypoints with its scale about the box centre.
    record = records[0]
    centre = np.array([(record.box_xyxy[0] + record.box_xyxy[2]) / 2,
                       (record.box_xyxy[1] + record.box_xyxy[3]) / 2])
    expected = (np.array(record.keypoints) - centre) * sample['crop_scale'].item() + 31.5
    np.testing.assert_allclose(sample['keypoints'].numpy(), expected, atol=1e-4)


def test_occluded_peak_lowers_only_hidden_keypoint_targets(kite_dataset):
    _, _, records = load_records(kite_dataset)
    record = records[0]
    hidden = dataclasses.replace(record, visibility=(1,) + record.visibility[1:])
    plain = KeypointDataset([hidden], 64, 32, sigma=1.5)[0]['heatmaps']
    lowered = KeypointDataset([hidden], 64, 32, sigma=1.5, occluded_peak=0.4)[0]['heatmaps']
    torch.testing.assert_close(lowered[0], 0.4 * plain[0])
    torch.testing.assert_close(lowered[1:], plain[1:])
    decoded, _ = decode_heatmaps(lowered[None])  # same position, lower confidence
    torch.testing.assert_close(decoded, decode_heatmaps(plain[None])[0])
    with pytest.raises(DatasetError, match='occluded_peak'):
        KeypointDataset([hidden], 64, 32, occluded_peak=0.0)


def test_low_pass_smooths_every_sample_and_is_validated(kite_dataset):
    _, _, records = load_records(kite_dataset)
    plain = KeypointDataset(records[:1], 64, 32)[0]
    smooth = KeypointDataset(records[:1], 64, 32, low_pass_px=2.0)[0]

    def roughness(image):
        return (image[:, 1:] - image[:, :-1]).abs().mean()

    assert roughness(smooth['image']) < 0.9 * roughness(plain['image'])
    torch.testing.assert_close(smooth['heatmaps'], plain['heatmaps'])  # targets unchanged
    with pytest.raises(DatasetError, match='low_pass_px'):
        KeypointDataset(records[:1], 64, 32, low_pass_px=-1.0)


def test_augmentation_is_seeded_and_moves_keypoints_with_pixels(kite_dataset):
    _, _, records = load_records(kite_dataset)
    dataset = KeypointDataset(records, 64, 32, augment=AugmentConfig(), seed=3)
    a, b = dataset[2], dataset[2]
    torch.testing.assert_close(a['image'], b['image'])
    dataset.set_epoch(1)
    c = dataset[2]
    assert not torch.equal(a['keypoints'], c['keypoints'])
    # The kite's coloured dots move with the keypoints: the magenta 'centre' dot stays under its
    # keypoint through jitter, scale, rotation and background replacement.
    geometric = AugmentConfig(brightness=0, contrast=0, saturation=0, hue_deg=0, blur_prob=0,
                              noise_prob=0, occluder_prob=0, cutout_prob=0, background_prob=1)
    dataset = KeypointDataset(records, 64, 32, augment=geometric, seed=5)
    for index in range(len(records)):
        sample = dataset[index]
        pixels = sample['image'] * torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        pixels = pixels + torch.tensor([0.485, 0.456, 0.406])[:, None, None]
        u, v = sample['keypoints'][4].round().long().tolist()
        if 0 <= u < 64 and 0 <= v < 64:
            assert pixels[0, v, u] > 0.8 and pixels[1, v, u] < 0.3 and pixels[2, v, u] > 0.8


def test_background_swap_without_photos_paints_procedural_patterns(kite_dataset):
    _, _, records = load_records(kite_dataset)
    still = AugmentConfig(brightness=0, contrast=0, saturation=0, hue_deg=0, blur_prob=0,
                          noise_prob=0, occluder_prob=0, cutout_prob=0, box_jitter=0,
                          scale_range=(1, 1), rotation_deg=0, truncation_prob=0, jpeg_prob=0,
                          background_prob=0)
    kept = KeypointDataset(records, 64, 32, augment=still)
    swapped = KeypointDataset(records, 64, 32,
                              augment=dataclasses.replace(still, background_prob=1))
    changed = [(kept[index]['image'] - swapped[index]['image']).abs().amax(0) > 0.1
               for index in range(4)]
    patterned = 0
    for index, mask in enumerate(changed):
        assert 0.2 < mask.float().mean() < 0.98  # the background, not the kite
        pixels = swapped[index]['image'][:, mask]
        spread = (pixels - pixels.median(dim=1, keepdim=True).values).abs().median(dim=1).values
        patterned += int(spread.max() > 0.05)  # most of it away from one colour
    assert patterned >= 2  # patterns (a large cell may fill a 64 px crop), not flat colours


def test_workers_give_the_same_batches_as_the_main_process(kite_dataset):
    _, _, records = load_records(kite_dataset)
    dataset = KeypointDataset(records[:4], 32, 16, augment=AugmentConfig(), seed=1)
    serial = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    parallel = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)))
    torch.testing.assert_close(serial['image'], parallel['image'])


def test_split_by_image_is_seeded(kite_dataset):
    _, _, records = load_records(kite_dataset)
    train, val = split_records(records, 0.25, seed=0)
    assert len(val) == 3 and len(train) == 9
    assert not {r.image for r in train} & {r.image for r in val}
    assert split_records(records, 0.25, seed=0)[1] == val


def test_jpeg_dataset_without_masks(tmp_path, make_kite_dataset):
    root = make_kite_dataset(tmp_path / 'jpg', count=2, image_ext='jpg', with_masks=False)
    _, _, records = load_records(root)
    assert records[0].mask is None and records[0].image.endswith('.jpg')
    sample = KeypointDataset(records, 32, 16, augment=AugmentConfig(), seed=0)[1]
    assert torch.isfinite(sample['image']).all()


def _rewrite_first_instance(root, **changes):
    lines = (root / 'annotations.jsonl').read_text().splitlines()
    entry = json.loads(lines[0])
    entry['instances'][0].update(changes)
    lines[0] = json.dumps(entry)
    (root / 'annotations.jsonl').write_text('\n'.join(lines) + '\n')


@pytest.mark.parametrize('breakage, message', [
    (lambda root: (root / 'dataset.yaml').unlink(), r'dataset.yaml: missing'),
    (lambda root: (root / 'dataset.yaml').write_text('object_name: kite\n'),
     "missing field 'keypoint_names'"),
    (lambda root: (root / 'annotations.jsonl').write_text('{not json\n'),
     r'annotations.jsonl:1: not valid JSON'),
    (lambda root: (root / 'images' / '000000.png').unlink(), r'000000.png not found'),
    (lambda root: _rewrite_first_instance(root, box_xyxy=[5, 5, 2, 9]),
     r'instances\[0\].box_xyxy must be'),
    (lambda root: _rewrite_first_instance(root, keypoints_uvv=[[1, 2, 2]]),
     r'keypoints_uvv must have 5 rows'),
    (lambda root: _rewrite_first_instance(root, mask='masks/absent.png'), r'absent.png not found'),
])
def test_bad_folders_give_errors_naming_file_and_field(tmp_path, make_kite_dataset, breakage,
                                                        message):
    root = make_kite_dataset(tmp_path / 'bad', count=2)
    breakage(root)
    with pytest.raises(DatasetError, match=message):
        load_records(root)


def test_mismatched_datasets_and_missing_folder(tmp_path, make_kite_dataset):
    first = make_kite_dataset(tmp_path / 'a', count=1)
    second = make_kite_dataset(tmp_path / 'b', count=1)
    text = (second / 'dataset.yaml').read_text().replace('- centre', '- middle')
    (second / 'dataset.yaml').write_text(text)
    with pytest.raises(DatasetError, match='keypoint_names .* differ'):
        load_records([first, second])
    with pytest.raises(DatasetError, match='missing'):
        load_records(tmp_path / 'nowhere')
    with pytest.raises(DatasetError, match='unknown augmentation keys'):
        AugmentConfig.from_dict({'rotation': 10})


def test_jpeg_and_truncation_augmentation(kite_dataset):
    """JPEG re-compression keeps shapes; truncation moves the object off the crop centre.

    The keypoints' mean leaves the crop centre by more than jitter alone allows.
    """
    from pose_kp_ros.training.augmentation import jpeg_compress
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    compressed = jpeg_compress(image, 30)
    assert compressed.shape == image.shape and compressed.dtype == np.uint8
    assert 2 < np.abs(compressed.astype(int) - image).mean() < 100
    _, _, records = load_records([kite_dataset])
    still = AugmentConfig(box_jitter=0.0, scale_range=(1.0, 1.0), rotation_deg=0.0,
                          occluder_prob=0.0, cutout_prob=0.0, background_prob=0.0,
                          blur_prob=0.0, noise_prob=0.0)
    cut = AugmentConfig(**{**still.to_dict(), 'scale_range': (1.0, 1.0), 'jpeg_quality': (30, 95),
                           'background_dirs': (), 'truncation_prob': 1.0, 'jpeg_prob': 1.0})
    offsets = []
    for augment in (still, cut):
        dataset = KeypointDataset(records, 64, 32, augment=augment)
        offsets.append(np.mean([np.linalg.norm(dataset[i]['keypoints'].numpy().mean(0) - 31.5)
                                for i in range(len(records))]))
    assert offsets[1] > offsets[0] + 0.15 * 64 / 1.25 * 0.5
