"""Offscreen renders agree with OpenCV projection; keypoint visibility from the depth buffer."""

import cv2
import numpy as np
import PIL.Image
import pytest
from scipy.spatial.transform import Rotation
import trimesh

from pose_kp_ros.data.package_data import lmo_camera
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.mesh import load_mesh
from pose_kp_ros.rendering.labels import keypoint_visibility
from pose_kp_ros.rendering.renderer import Light, Placement, SceneRenderer

SUPERSAMPLE = 16


def projected_silhouette(mesh, R, t, K, size):
    """Rasterise the cv2.projectPoints projection of a mesh, sampled at pixel centres (H, W) bool.

    Triangles are filled on a 16x finer grid whose every 16th sample is an OpenCV pixel centre.
    """
    width, height = size
    uv, _ = cv2.projectPoints(mesh.vertices, cv2.Rodrigues(R)[0], t, K, None)
    fine = np.zeros((height * SUPERSAMPLE, width * SUPERSAMPLE), np.uint8)
    corners = np.round(uv[:, 0][mesh.faces] * SUPERSAMPLE * 16).astype(np.int32)
    for triangle in corners:
        cv2.fillConvexPoly(fine, triangle, 1, lineType=cv2.LINE_8, shift=4)
    return fine[::SUPERSAMPLE, ::SUPERSAMPLE] > 0


@pytest.fixture(scope='module')
def lmo_renderer(renderer_available, driller_mesh):
    """Yield a 640x480 renderer holding the driller and two boxes."""
    _, size = lmo_camera()
    renderer = SceneRenderer(*size)
    renderer.add_mesh('driller', driller_mesh)
    renderer.add_mesh('box', trimesh.creation.box(extents=(0.2, 0.2, 0.2)), smooth=False)
    renderer.add_mesh('occluder', trimesh.creation.box(extents=(0.02, 0.02, 0.02)), smooth=False)
    yield renderer
    renderer.close()


def silhouette_iou(mask_a, mask_b):
    """Return the intersection over union of two boolean masks."""
    return (mask_a & mask_b).sum() / (mask_a | mask_b).sum()


@pytest.mark.parametrize('angles, t', [((30, 60, 10), (0.05, 0.02, 0.45)),
                                       ((-120, 20, 75), (-0.10, 0.05, 0.6))])
def test_render_matches_opencv_projection(lmo_renderer, driller_mesh, angles, t):
    K, size = lmo_camera()
    R = Rotation.from_euler('xyz', angles, degrees=True).as_matrix()
    _, depth = lmo_renderer.render(K, [Placement('driller', R, np.array(t))], depth_only=True)
    expected = projected_silhouette(driller_mesh, R, np.array(t), K, size)
    assert silhouette_iou(depth > 0, expected) > 0.99
    # Without the half-pixel principal-point fix the same comparison drops below 0.99:
    shifted = K.copy()
    shifted[:2, 2] -= 0.5
    _, depth = lmo_renderer.render(shifted, [Placement('driller', R, np.array(t))],
                                   depth_only=True)
    assert silhouette_iou(depth > 0, expected) < 0.99


def test_depth_buffer_is_camera_z_in_metres(lmo_renderer):
    K, _ = lmo_camera()
    _, depth = lmo_renderer.render(K, [Placement('box', np.eye(3), np.array([0.0, 0.0, 1.0]))],
                                   depth_only=True)
    centre = np.rint(K[:2, 2]).astype(int)
    assert depth[centre[1], centre[0]] == pytest.approx(0.9, abs=1e-4)
    assert depth[0, 0] == 0.0


def test_keypoint_visibility_with_an_occluder_in_front(lmo_renderer):
    K, _ = lmo_camera()
    box = Placement('box', np.eye(3), np.array([0.0, 0.0, 1.0]))
    # Keypoints (box frame): front face centre, front face corner area, back face centre
    # (hidden by the box itself), and one far outside the image.
    keypoints = np.array([[0.0, 0.0, -0.1], [0.06, 0.06, -0.1], [0.0, 0.0, 0.1], [2.0, 0.0, 0.0]])
    uv, z = project_object_points(keypoints, box.R, box.t, K, with_depth=True)
    _, depth = lmo_renderer.render(K, [box], depth_only=True)
    np.testing.assert_array_equal(keypoint_visibility(uv, z, depth, 0.005), [2, 2, 1, 0])
    # A small cube 30 cm in front of the first keypoint hides it and nothing else.
    occluder = Placement('occluder', np.eye(3), np.array([0.0, 0.0, 0.6]))
    _, depth = lmo_renderer.render(K, [box, occluder], depth_only=True)
    np.testing.assert_array_equal(keypoint_visibility(uv, z, depth, 0.005), [1, 2, 1, 0])


def test_keypoint_visibility_rules_on_a_constructed_depth_map():
    depth = np.zeros((10, 20), np.float32)
    depth[:, :10] = 1.0   # a surface 1 m away on the left half
    uv = np.array([[2.0, 3.0], [2.4, 3.4], [15.0, 5.0], [-0.6, 2.0], [19.4, 9.4], [5.0, 5.0]])
    z = np.array([1.0, 1.2, 2.0, 1.0, 1.0, 1.004])
    flags = keypoint_visibility(uv, z, depth, tolerance_m=0.005)
    # on the surface; behind it; where nothing is drawn; left of the image; last pixel;
    # within the tolerance behind the surface
    np.testing.assert_array_equal(flags, [2, 1, 2, 0, 2, 2])
    assert keypoint_visibility(uv[:1], np.array([-1.0]), depth, 0.005)[0] == 0  # behind camera


def test_textured_obj_keeps_its_texture(tmp_path, renderer_available):
    cube = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    corners = cube.vertices[cube.faces].reshape(-1, 3)
    uv = np.tile([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]], (len(cube.faces), 1))
    red = PIL.Image.fromarray(np.full((8, 8, 3), (200, 30, 30), np.uint8))
    textured = trimesh.Trimesh(corners, np.arange(len(corners)).reshape(-1, 3), process=False,
                               visual=trimesh.visual.TextureVisuals(uv=uv, image=red))
    textured.export(tmp_path / 'cube.obj')
    renderer = SceneRenderer(64, 64)
    renderer.add_mesh('cube', load_mesh(tmp_path / 'cube.obj'))
    K = np.array([[64.0, 0.0, 31.5], [0.0, 64.0, 31.5], [0.0, 0.0, 1.0]])
    rgb, depth = renderer.render(K, [Placement('cube', np.eye(3), np.array([0.0, 0.0, 0.3]))],
                                 [Light('directional', (1.0, 1.0, 1.0), 3.0)])
    renderer.close()
    r, g, b = rgb[32, 32].astype(int)
    assert depth[32, 32] == pytest.approx(0.25, abs=1e-4)
    assert r > 3 * g and r > 3 * b


def test_repeated_renders_reuse_the_shader_programs(lmo_renderer):
    # Under OSMesa pyrender's shader cache missed on every draw (a new program and ~3 MB each)
    # until SceneRenderer made PyOpenGL's context id compare by value.
    K, _ = lmo_camera()
    placement = [Placement('box', np.eye(3), np.array([0.0, 0.0, 1.0]))]
    light = [Light('directional', (1.0, 1.0, 1.0), 3.0)]
    lmo_renderer.render(K, placement, light)
    cache = lmo_renderer._renderer._renderer._program_cache._program_cache
    programs = len(cache)
    for _ in range(5):
        lmo_renderer.render(K, placement, light)
        lmo_renderer.render(K, placement, depth_only=True)
    assert len(cache) <= programs + 1


def test_a_glossy_material_adds_a_highlight_and_the_own_material_comes_back(lmo_renderer):
    K, _ = lmo_camera()
    R = Rotation.from_euler('xyz', (30, 60, 10), degrees=True).as_matrix()
    t = np.array([0.0, 0.0, 0.5])
    lights = [Light('directional', (1.0, 1.0, 1.0), 4.0, direction=(0.0, 0.3, 1.0))]

    def render(material):
        rgb, depth = lmo_renderer.render(K, [Placement('driller', R, t, material=material)],
                                         lights, ambient=(0.2, 0.2, 0.2))
        return rgb.astype(np.float64), depth > 0

    own, mask = render(None)
    glossy, glossy_mask = render((0.0, 0.25))
    np.testing.assert_array_equal(mask, glossy_mask)  # the material never moves a silhouette
    # Less rough: light concentrated into highlights, the brightest pixels brighter.
    assert np.percentile(glossy[mask].max(axis=1), 99) > np.percentile(own[mask].max(axis=1),
                                                                       99) + 10
    metal, _ = render((1.0, None))  # metallic only: roughness stays the mesh's own
    assert np.abs(metal - own)[mask].mean() > 5
    np.testing.assert_array_equal(render(None)[0], own)  # None restores the mesh's own material
