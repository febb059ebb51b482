"""Scene sampling of `pose-kp render`: upright poses, tables, settings, colour jitter."""

import cv2
import numpy as np
import pytest

from pose_kp_ros.rendering.appearance import object_colour_jitter
from pose_kp_ros.rendering.poses import (
    camera_from_table,
    occluder_position,
    outline,
    plane_under,
    rest_on,
    rotation_between,
    side_by_side,
    table_rotation,
)
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.tools.render import load_settings


@pytest.mark.parametrize('a, b', [([0, 0, 1], [0, 0, 1]), ([0, 0, 1], [0, 0, -1]),
                                  ([1, 0, 0], [0, 1, 0]), ([1, 2, 3], [-3, 1, 0.5])])
def test_rotation_between_turns_a_onto_b(a, b):
    a, b = np.array(a, float) / np.linalg.norm(a), np.array(b, float) / np.linalg.norm(b)
    R = rotation_between(a, b)
    np.testing.assert_allclose(R @ a, b, atol=1e-12)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def upright_rotation(rng, upright_axis, elevation_deg, tilt_deg, roll_deg):
    """Return the rotation of an object standing on its axis, seen from a camera looking down."""
    table_from_object = table_rotation(rng, upright_axis, tilt_deg)
    return camera_from_table(rng, elevation_deg, roll_deg) @ table_from_object


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
    with pytest.raises(ValueError, match=r'object_roughness must lie in \[0, 1\]'):
        RenderSettings(object_roughness=(0.5, 1.5))
    with pytest.raises(ValueError, match='object_metallic must be'):
        RenderSettings(object_metallic=(0.4, 0.1))
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


def test_side_by_side_places_outlines_close_without_overlap():
    rng = np.random.default_rng(4)
    for _ in range(20):
        outlines = []
        for _ in range(6):  # rotated rectangles of 4-20 cm
            corners = cv2.boxPoints(((0.0, 0.0), tuple(rng.uniform(0.04, 0.2, 2)),
                                     rng.uniform(0, 180)))
            outlines.append(corners.astype(np.float32))
        offsets = side_by_side(rng, outlines, (0.6, 1.1))
        assert len(offsets) == 6 and np.array_equal(offsets[0], [0.0, 0.0])
        placed = [(o, shape) for o, shape in zip(offsets, outlines) if o is not None]
        assert len(placed) >= 4
        for i, (a, first) in enumerate(placed):
            for b, second in placed[i + 1:]:
                area, _ = cv2.intersectConvexConvex((first + a).astype(np.float32),
                                                    (second + b).astype(np.float32))
                assert area <= 1e-9
        radius = [np.linalg.norm(shape, axis=1).max() for _, shape in placed]
        for i in range(1, len(placed)):  # each beside one placed before it
            gaps = [np.linalg.norm(placed[i][0] - placed[j][0]) / (radius[i] + radius[j])
                    for j in range(i)]
            assert min(gaps) <= 1.1 + 1e-6


def test_objects_rest_on_the_plane_under_the_first():
    table = camera_from_table(np.random.default_rng(2), (30, 30), 0)
    cube = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * 0.05
    first = cube @ table.T + [0.0, 0.1, 0.8]  # standing square on the table
    plane = plane_under(first, table)
    assert (first @ plane.up).min() == pytest.approx(plane.height) and plane.height < 0
    lifted = cube * 2 + [0.1, 0.3, 0.9]
    lifted = lifted + rest_on(plane, lifted)
    assert (lifted @ plane.up).min() == pytest.approx(plane.height)
    assert outline(plane, cube @ table.T).shape == (4, 2)  # a square from above


def test_scene_settings_of_several_objects_are_validated():
    with pytest.raises(ValueError, match='objects_per_scene must lie in'):
        RenderSettings(objects_per_scene=(0, 3))
    with pytest.raises(ValueError, match='objects_per_scene must be'):
        RenderSettings(objects_per_scene=(4, 3))
    with pytest.raises(ValueError, match=r"object_colours.ape: unknown field\(s\) \['hue'\]"):
        RenderSettings(object_colours={'ape': {'hue': [0, 1]}})
    with pytest.raises(ValueError, match='object_colours.ape.object_saturation must be'):
        RenderSettings(object_colours={'ape': {'object_saturation': [2, 1]}})
    settings = RenderSettings(object_colours={'ape': {'object_hue_shift_deg': [-5, 5]}})
    assert settings.colour_ranges('ape') == ((1.0, 2.2), (0.8, 1.3), (-5, 5))
    assert settings.colour_ranges('can') == ((1.0, 2.2), (0.8, 1.3), (0.0, 0.0))
    assert settings.to_dict()['object_colours'] == {'ape': {'object_hue_shift_deg': [-5, 5]}}
    settings.check_objects(['ape', 'can'])
    with pytest.raises(ValueError, match=r"not rendered: \['ape'\]"):
        settings.check_objects(['can'])
    with pytest.raises(ValueError, match='once each'):
        settings.check_objects(['can', 'can'])


def test_lmo_scene_settings_load(repo_root):
    settings = load_settings(repo_root / 'config' / 'render_lmo_all.yaml')
    assert settings.objects_per_scene == (3, 8) and settings.upright_axis == (0, 0, 1)
    assert set(settings.object_colours) == {'driller'}
    driller = load_settings(repo_root / 'config' / 'render_driller.yaml')
    assert settings.colour_ranges('driller') == driller.colour_ranges('driller')
    assert settings.colour_ranges('ape') == RenderSettings().colour_ranges('ape')


def test_lmo_colour_scene_settings_widen_only_the_colours_of_the_objects_without_their_own(
        repo_root):
    base = load_settings(repo_root / 'config' / 'render_lmo_all.yaml')
    colour = load_settings(repo_root / 'config' / 'render_lmo_all_colour.yaml')
    colour_fields = {'object_saturation', 'object_brightness', 'object_hue_shift_deg'}
    base_dict, colour_dict = base.to_dict(), colour.to_dict()
    assert {k for k in base_dict if base_dict[k] != colour_dict[k]} == colour_fields
    assert colour.colour_ranges('driller') == base.colour_ranges('driller')
    for wide, narrow in zip(colour.colour_ranges('ape'), base.colour_ranges('ape')):
        assert wide[0] <= narrow[0] and narrow[1] <= wide[1] and wide != narrow


def test_lmo_shadow_scene_settings_add_only_shadows_to_the_colour_settings(repo_root):
    colour = load_settings(repo_root / 'config' / 'render_lmo_all_colour.yaml').to_dict()
    shadows = load_settings(repo_root / 'config' / 'render_lmo_all_shadows.yaml').to_dict()
    assert {key for key in colour if colour[key] != shadows[key]} == {'shadow_probability'}
    assert colour['shadow_probability'] == 0.0 and shadows['shadow_probability'] == 0.5


def test_lmo_texture_scene_settings_add_only_textures_to_the_shadow_settings(repo_root):
    shadows = load_settings(repo_root / 'config' / 'render_lmo_all_shadows.yaml').to_dict()
    textures = load_settings(repo_root / 'config' / 'render_lmo_all_textures.yaml').to_dict()
    assert {key for key in shadows if shadows[key] != textures[key]} == {'texture_probability'}
    assert shadows['texture_probability'] == 0.0 and textures['texture_probability'] == 0.5


def test_lmo_material_scene_settings_add_only_materials_to_the_texture_settings(repo_root):
    textures = load_settings(repo_root / 'config' / 'render_lmo_all_textures.yaml').to_dict()
    materials = load_settings(repo_root / 'config' / 'render_lmo_all_materials.yaml').to_dict()
    assert ({key for key in textures if textures[key] != materials[key]}
            == {'object_metallic', 'object_roughness'})
    assert textures['object_metallic'] is None and materials['object_roughness'] == [0.25, 1.0]
