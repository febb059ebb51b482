"""Scene sampling of `pose-kp render`: upright poses, settings validation, colour jitter."""

import numpy as np
import pytest

from pose_kp_ros.rendering.scene import (
    RenderSettings,
    object_colour_jitter,
    occluder_position,
    rotation_between,
    upright_rotation,
)
from pose_kp_ros.tools.render import load_settings


@pytest.mark.parametrize('a, b', [([0, 0, 1], [0, 0, 1]), ([0, 0, 1], [0, 0, -1]),
                                  ([1, 0, 0], [0, 1, 0]), ([1, 2, 3], [-3, 1, 0.5])])
def test_rotation_between_turns_a_onto_b(a, b):
    a, b = np.array(a, float) / np.linalg.norm(a), np.array(b, float) / np.linalg.norm(b)
    R = rotation_between(a, b)
    np.testing.assert_allclose(R @ a, b, atol=1e-12)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_upright_rotation_stands_the_object_up_under_a_camera_looking_down():
    rng = np.random.default_rng(3)
    axis = np.array([0.0, 1.0, 1.0]) / np.sqrt(2.0)
    for _ in range(300):
        R = upright_rotation(rng, axis, (20.0, 60.0), tilt_deg=0.0, roll_deg=0.0)
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        up_cam = R @ axis  # world up seen from the camera (OpenCV: y down, z forward)
        elevation = np.degrees(np.arcsin(-up_cam[2]))
        assert 20.0 - 1e-9 <= elevation <= 60.0 + 1e-9
        assert up_cam[0] == pytest.approx(0.0, abs=1e-12)  # no roll: up stays vertical
        assert up_cam[1] < 0  # and points up in the image
    # Tilt and roll move the axis by at most their sum.
    for _ in range(300):
        R = upright_rotation(rng, axis, (40.0, 40.0), tilt_deg=10.0, roll_deg=15.0)
        untilted = np.array([0.0, -np.cos(np.radians(40.0)), -np.sin(np.radians(40.0))])
        angle = np.degrees(np.arccos(np.clip((R @ axis) @ untilted, -1, 1)))
        assert angle <= 25.0 + 1e-6


def test_settings_are_validated_with_the_field_named(tmp_path):
    with pytest.raises(ValueError, match='needs upright_axis'):
        RenderSettings(upright_probability=0.5)
    with pytest.raises(ValueError, match='upright_axis must be a non-zero 3-vector'):
        RenderSettings(upright_axis=(0, 0, 0))
    with pytest.raises(ValueError, match='near_distractor_probability must be in'):
        RenderSettings(near_distractor_probability=1.5)
    with pytest.raises(ValueError, match='elevation_deg must be'):
        RenderSettings(elevation_deg=(50, 10))
    path = tmp_path / 'settings.yaml'
    path.write_text('upright_axis: [0, 0, 1]\nupright_probability: 0.7\n'
                    'distractor_count: [2, 4]\n')
    settings = load_settings(path, distance=[0.5, 0.9])
    assert settings.upright_axis == (0, 0, 1) and settings.distractor_count == (2, 4)
    assert settings.distance_m == (0.5, 0.9)
    path.write_text('upright: [0, 0, 1]\n')
    with pytest.raises(ValueError, match=r"unknown render setting\(s\) \['upright'\]"):
        load_settings(path)
    path.write_text('upright_probability: 0.5\n')
    with pytest.raises(ValueError, match='settings.yaml: upright_probability > 0 needs'):
        load_settings(path)


def test_shipped_render_settings_load(repo_root):
    settings = load_settings(repo_root / 'config' / 'render_driller.yaml')
    assert settings.upright_axis == (0, 0, 1) and settings.upright_probability > 0


def test_colour_jitter_changes_only_the_object_and_shifts_its_hue():
    rng = np.random.default_rng(0)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[...] = (40, 120, 160)  # teal
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    out = object_colour_jitter(rng, rgb, mask, (1.0, 1.0), (1.0, 1.0), (-40.0, -40.0))
    np.testing.assert_array_equal(out[2:], rgb[2:])
    assert out[0, 0, 1] > out[0, 0, 2]  # blue-green turned green-dominant


def test_low_occluders_sit_below_the_object_centre_and_in_front():
    centre, diameter = np.array([0.05, -0.02, 0.9]), 0.26
    up_cam = upright_rotation(np.random.default_rng(3), [0, 0, 1], (30, 30), 0, 0) @ [0, 0, 1]
    low = [occluder_position(np.random.default_rng(i), centre, diameter, up_cam, 1.0)
           for i in range(200)]
    plain = [occluder_position(np.random.default_rng(i), centre, diameter, up_cam, 0.0)
             for i in range(200)]
    height = lambda points: (np.array(points) - centre) @ up_cam  # noqa: E731
    assert np.all(np.array(low)[:, 2] < centre[2]) and np.all(np.array(plain)[:, 2] < centre[2])
    assert np.median(height(low)) < np.median(height(plain)) - 0.1 * diameter


def test_occluder_position_without_the_option_draws_what_it_always_drew():
    first, second = np.random.default_rng(5), np.random.default_rng(5)
    occluder_position(first, np.array([0.0, 0.0, 1.0]), 0.2, np.array([0.0, -1.0, 0.0]), 0.0)
    second.uniform(0.55, 0.85), second.uniform(-0.5, 0.5, size=2)
    assert first.random() == second.random()
