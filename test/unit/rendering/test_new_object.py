"""Mesh loading, diameter, surface keypoints and the `pose-kp new-object` tool."""

import numpy as np
import pytest
import trimesh

from pose_kp_ros.data.package_data import LMO_DIAMETERS_MM, PackageDataError, resolve_pkgdata
from pose_kp_ros.geometry.mesh import MeshError, load_mesh
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.rendering.mesh import (
    SEEN_MIN_FRACTION,
    farthest_point_keypoints,
    mesh_diameter,
    seen_fraction,
    views_from_above,
)
from pose_kp_ros.tools import new_object

BOP_DRILLER_DIAMETER_M = LMO_DIAMETERS_MM[8] / 1000.0


@pytest.fixture
def box_ply(tmp_path):
    """Write a 0.2 x 0.1 x 0.05 m box as PLY in millimetres; return its path."""
    path = tmp_path / 'box.ply'
    trimesh.creation.box(extents=(200.0, 100.0, 50.0)).export(path)
    return path


def surface_distance(mesh, points):
    """Return the distance (N,) of points to the mesh surface (nearest point on any triangle)."""
    triangles = mesh.triangles
    return np.array([np.linalg.norm(trimesh.triangles.closest_point(
        triangles, np.repeat(point[None], len(triangles), axis=0)) - point, axis=1).min()
        for point in np.asarray(points)])


def test_box_diameter_is_its_space_diagonal(box_ply):
    mesh = load_mesh(box_ply, 0.001)
    assert mesh_diameter(mesh.vertices) == pytest.approx(np.sqrt(0.2 ** 2 + 0.1 ** 2 + 0.05 ** 2))


def test_diameter_of_flat_and_tiny_point_sets():
    square = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0.5, 0.5, 0]], float)
    assert mesh_diameter(square) == pytest.approx(np.sqrt(2))
    assert mesh_diameter(square[:2]) == pytest.approx(1.0)


def test_driller_diameter_matches_bop(driller_mesh):
    assert mesh_diameter(driller_mesh.vertices) == pytest.approx(BOP_DRILLER_DIAMETER_M, abs=1e-5)


def test_fps_keypoints_lie_on_the_surface_spread_and_are_seeded(driller_mesh):
    keypoints = farthest_point_keypoints(driller_mesh, 10, seed=3)
    assert keypoints.shape == (10, 3)
    assert surface_distance(driller_mesh, keypoints).max() < 1e-6
    np.testing.assert_array_equal(keypoints, farthest_point_keypoints(driller_mesh, 10, seed=3))
    gaps = np.linalg.norm(keypoints[:, None] - keypoints[None], axis=-1) + np.eye(10)
    random_points = trimesh.sample.sample_surface(driller_mesh, 10, seed=3)[0]
    random_gaps = np.linalg.norm(random_points[:, None] - random_points[None], axis=-1)
    assert gaps.min() > (random_gaps + np.eye(10)).min()
    assert gaps.min() > 0.05 * BOP_DRILLER_DIAMETER_M


def test_a_standing_box_is_seen_on_top_and_sides_never_on_its_base():
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.2))
    points, faces = trimesh.sample.sample_surface(box, 20000, seed=0)
    views = views_from_above([0, 0, 2])
    assert np.allclose(np.linalg.norm(views, axis=1), 1.0)
    assert np.degrees(np.arcsin(views[:, 2])).min() == pytest.approx(10.0)
    cell = np.sqrt(32.0 * box.area / 20000)
    top, base = points[:, 2] > 0.0999, points[:, 2] < -0.0999
    interior = np.abs(points[:, :2]).max(1) < 0.045
    seen = seen_fraction(points, box.face_normals[faces], views, cell)
    assert np.median(seen[top & interior]) == 1.0
    assert 0.4 < np.median(seen[~top & ~base]) < 0.6  # a wall faces half the azimuths
    assert seen[base & interior].max() == 0.0
    # without normals (a mesh whose winding cannot be mended) the z-buffer alone
    seen = seen_fraction(points, None, views, cell)
    assert np.median(seen[top & interior]) > 0.75
    assert np.mean(seen[base & interior] >= SEEN_MIN_FRACTION) < 0.05


def test_fps_keypoints_of_a_standing_object_avoid_its_base():
    slab = trimesh.creation.box(extents=(0.2, 0.2, 0.05))

    def on_face(keypoints, z):
        return int(np.sum((np.abs(keypoints[:, 2] - z) < 1e-9)
                          & (np.abs(keypoints[:, :2]).max(1) < 0.09)))

    anywhere = farthest_point_keypoints(slab, 10)
    assert on_face(anywhere, -0.025) > 0  # plain FPS puts some on the base
    standing = farthest_point_keypoints(slab, 10, upright_axis=[0, 0, 1])
    assert on_face(standing, -0.025) == 0 and on_face(standing, 0.025) > 0
    assert surface_distance(slab, standing).max() < 1e-6
    upside_down = farthest_point_keypoints(slab, 10, upright_axis=[0, 0, -1])
    assert on_face(upside_down, 0.025) == 0
    faces = slab.faces.copy()
    faces[::3] = faces[::3, ::-1]  # a scan's inconsistent winding: mended on a copy
    scanned = trimesh.Trimesh(slab.vertices, faces, process=False)
    assert not scanned.is_winding_consistent
    assert on_face(farthest_point_keypoints(scanned, 10, upright_axis=[0, 0, 1]), -0.025) == 0
    assert not scanned.is_winding_consistent
    with pytest.raises(ValueError, match='non-zero 3-vector'):
        farthest_point_keypoints(slab, 10, upright_axis=[0, 0, 0])
    with pytest.raises(ValueError, match='too few'):
        farthest_point_keypoints(slab, 30, surface_samples=20, upright_axis=[0, 0, 1])


def test_new_object_upright_axis(tmp_path, box_ply, capsys):
    out = tmp_path / 'box.yaml'
    argv = ['--mesh', str(box_ply), '--name', 'box', '--mesh-scale', '0.001', '--out', str(out),
            '--preview', 'none']
    assert new_object.main(argv + ['--upright-axis', '0', '0', '1']) == 0
    keypoints = ObjectModel.from_yaml(out).keypoints
    assert not np.any((np.abs(keypoints[:, 2] + 0.025) < 1e-6)
                      & (np.abs(keypoints[:, 0]) < 0.09) & (np.abs(keypoints[:, 1]) < 0.04))
    assert new_object.main(argv + ['--upright-axis', '0', '0', '0']) == 1
    assert 'upright axis must be a non-zero 3-vector' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        new_object.main(argv + ['--upright-axis', '0', '0', '1', '--keypoints', 'kp.yaml'])
    assert 'not with --keypoints' in capsys.readouterr().err


def test_missing_garbage_and_empty_meshes_raise_mesh_error(tmp_path):
    with pytest.raises(MeshError, match='not found'):
        load_mesh(tmp_path / 'nothing.ply')
    garbage = tmp_path / 'garbage.ply'
    garbage.write_bytes(b'ply\nthis is not a mesh \x00\xff' * 10)
    with pytest.raises(MeshError, match='garbage.ply'):
        load_mesh(garbage)
    points_only = tmp_path / 'points.obj'
    points_only.write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\n')
    with pytest.raises(MeshError, match='points.obj'):
        load_mesh(points_only)
    with pytest.raises(MeshError, match='not installed'):
        load_mesh('pkgdata:no_such_package_xyz/mesh.ply')


def test_pkgdata_reference_errors():
    with pytest.raises(PackageDataError, match='not of the form'):
        resolve_pkgdata('pkgdata:numpy')
    with pytest.raises(PackageDataError, match='file not found'):
        resolve_pkgdata('pkgdata:numpy/no_such_file.ply')


def test_new_object_writes_a_yaml_that_round_trips(tmp_path, box_ply, renderer_available):
    out = tmp_path / 'objects' / 'box.yaml'
    code = new_object.main(['--mesh', str(box_ply), '--name', 'box', '--num-keypoints', '6',
                            '--mesh-scale', '0.001', '--out', str(out)])
    assert code == 0
    model = ObjectModel.from_yaml(out)
    assert model.name == 'box' and model.num_keypoints == 6
    assert model.diameter == pytest.approx(0.229129, abs=1e-6)
    assert model.mesh_path == '../box.ply' and model.mesh_scale == 0.001
    assert model.resolve_mesh_path() == box_ply.resolve()
    mesh = load_mesh(model.resolve_mesh_path(), model.mesh_scale)
    assert surface_distance(mesh, model.keypoints).max() < 2e-6  # written rounded to 1 um
    again = tmp_path / 'again.yaml'
    model.to_yaml(again)
    reloaded = ObjectModel.from_yaml(again)
    np.testing.assert_array_equal(reloaded.keypoints, model.keypoints)
    assert reloaded.keypoint_names == model.keypoint_names
    assert (tmp_path / 'objects' / 'box_keypoints.png').stat().st_size > 1000


def test_new_object_takes_given_keypoints(tmp_path, box_ply):
    keypoints = tmp_path / 'kp.yaml'
    keypoints.write_text('tip: [100, 50, 25]\nback: [-100, -50, -25]\n'
                         'left: [-100, 50, 25]\nright: [100, -50, 25]\n')
    out = tmp_path / 'box.yaml'
    assert new_object.main(['--mesh', str(box_ply), '--name', 'box', '--keypoints',
                            str(keypoints), '--mesh-scale', '0.001', '--out', str(out),
                            '--preview', 'none']) == 0
    model = ObjectModel.from_yaml(out)
    assert model.keypoint_names == ('tip', 'back', 'left', 'right')
    np.testing.assert_allclose(model.keypoints[0], [0.1, 0.05, 0.025])


def test_new_object_reports_a_bad_mesh(tmp_path, capsys):
    garbage = tmp_path / 'garbage.obj'
    garbage.write_text('this is not an OBJ file\n')
    code = new_object.main(['--mesh', str(garbage), '--name', 'thing', '--out',
                            str(tmp_path / 'thing.yaml')])
    assert code == 1
    assert 'garbage.obj' in capsys.readouterr().err
    assert not (tmp_path / 'thing.yaml').exists()


def test_shipped_driller_model(repo_root, driller_mesh):
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'driller.yaml')
    assert model.name == 'driller' and model.num_keypoints == 10
    assert model.diameter == pytest.approx(BOP_DRILLER_DIAMETER_M, abs=1e-5)
    mesh = load_mesh(model.resolve_mesh_path(), model.mesh_scale)
    assert surface_distance(mesh, model.keypoints).max() < 2e-6
