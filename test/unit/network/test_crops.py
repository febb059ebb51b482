import cv2
import numpy as np
import pytest
import torch

from pose_kp_ros.network.crops import (
    CropError,
    compose_affines,
    crop_affines,
    crop_boxes,
    heatmap_to_crop_affine,
    invert_affines,
    low_pass_crops,
    square_regions,
    transform_points,
    warp_crops,
)


def test_square_regions_centre_and_padding():
    centers, sides = square_regions([[10, 20, 50, 40]], padding=1.5)
    np.testing.assert_allclose(centers, [[30, 30]])
    np.testing.assert_allclose(sides, [60])


def test_region_edges_land_on_crop_edges():
    affine = crop_affines([[100.0, 50.0]], [40.0], 64)[0]
    corners = np.array([[80.0, 30.0], [120.0, 70.0], [100.0, 50.0]])
    np.testing.assert_allclose(transform_points(affine, corners),
                               [[-0.5, -0.5], [63.5, 63.5], [31.5, 31.5]], atol=1e-12)


def test_crop_uncrop_round_trip():
    rng = np.random.default_rng(0)
    centers = rng.uniform(-50, 700, (16, 2))
    sides = rng.uniform(5, 400, 16)
    affines = crop_affines(centers, sides, 128, rotations=rng.uniform(-np.pi, np.pi, 16))
    points = rng.uniform(-200, 900, (16, 10, 2))
    back = transform_points(invert_affines(affines), transform_points(affines, points))
    assert np.abs(back - points).max() < 1e-6


def test_transform_points_torch_matches_numpy():
    rng = np.random.default_rng(1)
    affines = crop_affines(rng.uniform(0, 100, (3, 2)), [10, 20, 30], 64, [0.1, 0.2, 0.3])
    points = rng.uniform(0, 100, (3, 5, 2))
    expected = transform_points(affines, points)
    got = transform_points(torch.from_numpy(affines), torch.from_numpy(points))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_compose_matches_sequential_application():
    rng = np.random.default_rng(2)
    first = crop_affines(rng.uniform(0, 100, (4, 2)), rng.uniform(10, 50, 4), 64)
    second = invert_affines(crop_affines(rng.uniform(0, 100, (4, 2)), rng.uniform(10, 50, 4), 32))
    points = rng.uniform(0, 64, (4, 7, 2))
    np.testing.assert_allclose(transform_points(compose_affines(second, first), points),
                               transform_points(second, transform_points(first, points)),
                               atol=1e-9)


def test_heatmap_to_crop_maps_pixel_blocks_centres():
    affine = heatmap_to_crop_affine(128, 32)
    # Heatmap pixel 0 covers crop pixels 0..3 whose centre is 1.5; its outer edge -0.5 stays.
    np.testing.assert_allclose(transform_points(affine, np.array([[0.0, 0.0], [-0.5, 31.5]])),
                               [[1.5, 1.5], [-0.5, 127.5]])


@pytest.mark.parametrize('rotation', [0.0, 0.7])
def test_pixel_content_lands_where_affine_says(rotation):
    # A linear ramp image is reproduced exactly by bilinear sampling: crop pixel (x, y) must hold
    # the ramp value at the inverse-mapped image point (an off-by-half error would show 0.5).
    height, width = 120, 160
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([u, v], -1)
    affine = crop_affines([[80.3, 60.7]], [50.0], 64, [rotation])
    crop = warp_crops(image, affine, 64)[0]
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float64)
    source = transform_points(invert_affines(affine)[0], np.stack([xs, ys], -1).reshape(-1, 2))
    np.testing.assert_allclose(crop.reshape(-1, 2), source, atol=1 / 32 + 1e-4)


def test_single_pixel_moves_to_its_mapped_place_and_outside_is_padded():
    image = np.zeros((50, 50, 3), np.uint8)
    image[10, 20] = 255
    # Scale 1 crop centred so that image pixel (20, 10) lands on crop pixel (5, 7).
    affine = np.array([[[1.0, 0.0, -15.0], [0.0, 1.0, -3.0]]])
    crop = warp_crops(image, affine, 64)[0]
    assert tuple(np.argwhere(crop[..., 0] == 255)[0]) == (7, 5)
    # The crop extends past the image's right/bottom edge: padded with the border value.
    assert crop[60, 60].tolist() == [0, 0, 0]


def test_crop_boxes_shapes_and_errors():
    image = np.zeros((40, 60, 3), np.uint8)
    crops, affines = crop_boxes(image, [[0, 0, 10, 10], [50, 30, 70, 50]], 32)
    assert crops.shape == (2, 32, 32, 3) and affines.shape == (2, 2, 3)
    with pytest.raises(CropError, match='boxes_xyxy'):
        crop_boxes(image, [[5, 5, 5, 5]], 32)
    with pytest.raises(CropError, match='finite'):
        crop_boxes(image, [[np.nan, 5, 9, 9]], 32)


def test_heatmap_to_image_affines_undo_image_to_heatmap():
    from pose_kp_ros.network.predictor import heatmap_to_image_affines
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 300, (5, 2))
    centers, sides = square_regions(np.concatenate([corners, corners + [40, 60]], 1))
    affines = crop_affines(centers, sides, 128)
    points = rng.uniform(0, 400, (5, 6, 2))
    on_heatmap = transform_points(invert_affines(heatmap_to_crop_affine(128, 64)),
                                  transform_points(affines, points))
    back = transform_points(heatmap_to_image_affines(affines, 128, 64), on_heatmap)
    assert np.abs(back - points).max() < 1e-6


def test_low_pass_is_defined_in_image_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = [[40, 30, 100, 90], [10, 10, 130, 110]]  # two crop scales
    crops, affines = crop_boxes(image, boxes, 32)
    assert low_pass_crops(crops, affines, 0.0) is crops
    filtered = low_pass_crops(crops, affines, 1.5)
    for crop, affine, out in zip(crops, affines, filtered):
        scale = np.sqrt(abs(np.linalg.det(affine[:, :2])))  # crop px per image px
        np.testing.assert_array_equal(out, cv2.GaussianBlur(crop, (0, 0), 1.5 * scale))
    # One image pixel of blur at scale 1 is the image blurred, then cropped (away from edges).
    _, identity = crop_boxes(image, [[48, 28, 112, 92]], 64, padding=1.0)
    direct = warp_crops(cv2.GaussianBlur(image, (0, 0), 1.0), identity, 64)[0]
    via_crop = low_pass_crops(warp_crops(image, identity, 64), identity, 1.0)[0]
    np.testing.assert_allclose(via_crop[8:-8, 8:-8].astype(int), direct[8:-8, 8:-8], atol=1)
    assert via_crop.std() < warp_crops(image, identity, 64)[0].std() / 2
