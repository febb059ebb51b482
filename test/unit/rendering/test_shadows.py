"""Cast shadows: the shadow test per pixel, the light's camera, and a box's shadow on a table."""

import numpy as np
import pytest
import trimesh

from pose_kp_ros.rendering.renderer import Light, Placement, SceneRenderer
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.rendering.shadows import light_camera, shadowed_pixels, surface_points

K = np.array([[300.0, 0.0, 79.5], [0.0, 300.0, 59.5], [0.0, 0.0, 1.0]])


def test_a_pixel_is_shadowed_only_where_the_light_sees_something_nearer():
    """Light at the camera: a wall 1 m away is lit, but where a card 0.5 m away hides it."""
    depth = np.ones((120, 160), np.float32)
    depth[:, :20] = 0  # no surface there: never shadowed
    identity = (np.eye(3), np.zeros(3), K)
    assert not shadowed_pixels(depth, K, depth, *identity).any()
    light_depth = depth.copy()
    light_depth[40:80, 60:100] = 0.5  # the card, seen by the light only
    shadowed = shadowed_pixels(depth, K, light_depth, *identity)
    expected = np.zeros_like(shadowed)
    expected[41:79, 61:99] = True  # the card's outermost texels give way to the wall's depth
    np.testing.assert_array_equal(shadowed, expected)
    # a surface less than SHADOW_BIAS_M behind the nearest is lit (no acne on lit surfaces)
    light_depth[40:80, 60:100] = 0.997
    assert not shadowed_pixels(depth, K, light_depth, *identity).any()


@pytest.mark.parametrize('light', [
    Light('directional', (1, 1, 1), 3.0, direction=(0.3, 0.8, 0.5)),
    Light('point', (1, 1, 1), 3.0, position=(0.4, -0.6, 0.2)),
])
def test_the_lights_camera_looks_from_the_light_and_sees_every_surface(light):
    depth = np.full((120, 160), 1.0, np.float32)
    points = surface_points(depth, K)
    R, t, K_light = light_camera(light, points, (160, 120))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    local = points @ R.T + t
    assert (local[:, 2] > 0).all()
    u = K_light[0, 0] * local[:, 0] / local[:, 2] + K_light[0, 2]
    v = K_light[1, 1] * local[:, 1] / local[:, 2] + K_light[1, 2]
    assert u.min() >= 0 and u.max() <= 159 and v.min() >= 0 and v.max() <= 119
    if light.kind == 'directional':  # looks along the light's direction
        direction = np.asarray(light.direction) / np.linalg.norm(light.direction)
        np.testing.assert_allclose(R[2], direction, atol=1e-12)
    else:  # stands at the light
        np.testing.assert_allclose(-R.T @ t, light.position, atol=1e-12)


def test_a_box_on_a_table_casts_its_shadow_away_from_the_light(renderer_available):
    renderer = SceneRenderer(160, 120)
    renderer.add_mesh('table', trimesh.creation.box(extents=(2.0, 2.0, 0.01)), smooth=False)
    renderer.add_mesh('box', trimesh.creation.box(extents=(0.1, 0.1, 0.1)), smooth=False)
    grey = (0.8, 0.8, 0.8, 1.0)
    placements = [Placement('table', np.eye(3), np.array([0.0, 0.0, 1.0]), colour=grey),
                  Placement('box', np.eye(3), np.array([0.0, 0.0, 0.945]), colour=grey)]
    light = Light('directional', (1, 1, 1), 200.0, direction=(1.0, 0.0, 1.0))  # towards +x
    try:
        plain, depth = renderer.render(K, placements, [light], (0.2, 0.2, 0.2))
        shaded, shaded_depth = renderer.render(
            K, placements, [Light(**{**vars(light), 'casts_shadow': True})], (0.2, 0.2, 0.2))
    finally:
        renderer.close()
    np.testing.assert_array_equal(depth, shaded_depth)
    brightness = shaded.astype(float).mean(axis=2) - plain.astype(float).mean(axis=2)
    behind = brightness[50:70, 100:110]  # the table just right of the box (it spans ~ 64-95)
    before = brightness[50:70, 40:55]  # the table left of it, facing the light
    assert (behind < -10).mean() > 0.9  # the light's share taken away
    assert (before == 0).all()
    assert (brightness[55:65, 70:90] == 0).all()  # the box's top, lit


def test_shadow_probability_is_checked():
    with pytest.raises(ValueError, match='shadow_probability must be in'):
        RenderSettings(shadow_probability=1.5)
    assert RenderSettings().shadow_probability == 0.0  # datasets render as they always did
