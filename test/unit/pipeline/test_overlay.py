"""Overlay drawing and mosaics draw where the pose projects, and survive odd poses."""

import numpy as np

from pose_kp_ros.pipeline.overlay import confidence_colour, draw_pose, mosaic

K = np.array([[572.4, 0.0, 320.0], [0.0, 573.6, 240.0], [0.0, 0.0, 1.0]])
CUBE = np.array([[x, y, z] for x in (-0.05, 0.05) for y in (-0.05, 0.05) for z in (-0.05, 0.05)])


def test_draws_box_axes_and_keypoints_where_the_pose_projects():
    image = np.zeros((480, 640, 3), np.uint8)
    draw_pose(image, K, np.eye(3), np.array([0.0, 0.0, 0.8]), CUBE,
              keypoints=np.array([[100.0, 100.0], [np.nan, 5.0]]), confidences=[1.0, 0.0],
              label='driller 0.90')
    assert image[240, 320:330].any()          # x axis starts at the projected origin
    assert tuple(image[100, 100]) == confidence_colour(1.0)
    assert not image[400:, :100].any()        # nothing far from the object


def test_pose_behind_the_camera_draws_only_keypoints():
    image = np.zeros((480, 640, 3), np.uint8)
    draw_pose(image, K, np.eye(3), np.array([0.0, 0.0, -1.0]), CUBE,
              keypoints=np.array([[50.0, 50.0]]), label='x')
    assert image.sum() == image[45:56, 45:56].sum() > 0


def test_mosaic_tiles_and_pads():
    tiles = [np.full((480, 640, 3), i, np.uint8) for i in range(5)]
    out = mosaic(tiles, columns=2, tile_width=160)
    assert out.shape == (3 * 120, 2 * 160, 3)
    assert out[0, 0, 0] == 0 and out[0, 160, 0] == 1 and out[-1, -1, 0] == 0
