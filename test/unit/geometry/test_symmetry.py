"""Discrete symmetries: derived from meshes, declared in object files, checked on load."""

import numpy as np
import pytest

from pose_kp_ros.geometry.object_model import ObjectModel, ObjectModelError
from pose_kp_ros.geometry.symmetry import Symmetry, find_symmetries, symmetry_residual

LMO_OBJECTS = ('ape', 'can', 'cat', 'driller', 'duck', 'eggbox', 'glue', 'holepuncher')
SYMMETRIC = {'eggbox', 'glue'}   # BOP: a 180-degree rotation about the model's z axis


def test_a_box_has_three_half_turns_and_a_shifted_one_keeps_its_centre():
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 9)] * 3), -1).reshape(-1, 3)
    box = grid * [3, 2, 1] + [0.5, -0.2, 4.0]
    found = find_symmetries(box, diameter=7.5)
    assert [s.axis.round(6).tolist() for s in found] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    for symmetry in found:
        np.testing.assert_allclose(symmetry.apply(box).mean(0), box.mean(0), atol=1e-9)
        assert symmetry_residual(box, symmetry) < 1e-9
    wedge = box[box[:, 0] > box[:, 1] + 0.5]       # cut off one corner: no half turn left
    assert find_symmetries(wedge, diameter=7.5) == []


def test_yaml_form_round_trip_and_errors():
    symmetry = Symmetry.from_dict({'axis': [0, 0, 2], 'angle_deg': 180, 'point_m': [0, 0, 1]})
    np.testing.assert_allclose(symmetry.axis, [0, 0, 1])
    np.testing.assert_allclose(symmetry.apply(np.array([1.0, 0, 0])), [-1, 0, 0], atol=1e-12)
    assert Symmetry.from_dict(symmetry.to_dict()).to_dict() == symmetry.to_dict()
    for bad, message in (({'axis': [0, 0, 0], 'angle_deg': 180, 'point_m': [0, 0, 0]}, 'axis'),
                         ({'axis': [0, 0, 1], 'angle_deg': 360, 'point_m': [0, 0, 0]},
                          'angle_deg'),
                         ({'axis': [0, 0, 1], 'angle_deg': 90}, 'point_m')):
        with pytest.raises(ValueError, match=message):
            Symmetry.from_dict(bad)


def test_object_file_symmetries_are_checked(tmp_path, repo_root):
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'glue.yaml')
    assert model.symmetric and len(model.symmetries) == 1
    model.to_yaml(tmp_path / 'glue.yaml')
    again = ObjectModel.from_yaml(tmp_path / 'glue.yaml')
    assert again.symmetries[0].to_dict() == model.symmetries[0].to_dict()
    text = (tmp_path / 'glue.yaml').read_text()
    (tmp_path / 'bad.yaml').write_text(text.replace('symmetric: true', 'symmetric: false'))
    with pytest.raises(ObjectModelError, match='symmetric: an object with symmetries'):
        ObjectModel.from_yaml(tmp_path / 'bad.yaml')
    (tmp_path / 'worse.yaml').write_text(text.replace('angle_deg: 180.0', 'angle_deg: -5'))
    with pytest.raises(ObjectModelError, match=r'symmetries\[0\]: angle_deg'):
        ObjectModel.from_yaml(tmp_path / 'worse.yaml')


@pytest.mark.parametrize('name', LMO_OBJECTS)
def test_lmo_object_files_declare_the_symmetries_of_their_meshes(name, repo_root):
    """Each shipped LM-O object file's symmetries are exactly those found on its mesh."""
    import trimesh

    from pose_kp_ros.geometry.mesh import load_mesh
    model = ObjectModel.from_yaml(repo_root / 'objects' / f'{name}.yaml')
    mesh = load_mesh(model.mesh_path, model.mesh_scale)
    points = np.asarray(trimesh.sample.sample_surface(mesh, 20000, seed=1)[0])
    assert model.symmetric == (name in SYMMETRIC)
    assert len(model.symmetries) == (name in SYMMETRIC)
    for symmetry in model.symmetries:
        assert symmetry_residual(points, symmetry) < 0.015 * model.diameter
        np.testing.assert_allclose(np.abs(symmetry.axis), [0, 0, 1], atol=0.01)
    found = find_symmetries(points, model.diameter)
    assert len(found) == len(model.symmetries)


def _rotation(axis, degrees):
    from scipy.spatial.transform import Rotation
    axis = np.asarray(axis, np.float64)
    return Rotation.from_rotvec(np.deg2rad(degrees) * axis / np.linalg.norm(axis)).as_matrix()


def _angle_deg(R_a, R_b):
    return np.degrees(np.arccos(np.clip((np.trace(R_a.T @ R_b) - 1) / 2, -1, 1)))


def test_equivalent_poses_show_the_same_surface(repo_root):
    import trimesh

    from pose_kp_ros.geometry.mesh import load_mesh
    from pose_kp_ros.geometry.symmetry import equivalent_poses, symmetry_group
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'eggbox.yaml')
    group = symmetry_group(model.symmetries)
    assert len(group[0]) == 2
    points = np.asarray(trimesh.sample.sample_surface(
        load_mesh(model.mesh_path, model.mesh_scale), 5000, seed=2)[0])
    R, t = _rotation([1, 2, 3], 70), np.array([0.05, -0.02, 0.8])
    rotations, translations = equivalent_poses(R, t, group)
    assert _angle_deg(rotations[0], rotations[1]) == pytest.approx(180, abs=1e-6)
    from scipy.spatial import cKDTree
    seen = points @ R.T + t
    other = points @ rotations[1].T + translations[1]
    assert cKDTree(seen).query(other)[0].mean() < 0.015 * model.diameter


def test_a_symmetric_pose_sequence_stays_continuous(repo_root):
    """Estimates flipping between the two equivalent glue poses are published continuously.

    Without a reference the choice does not depend on which equivalent came in.
    """
    from pose_kp_ros.geometry.symmetry import canonical_pose, equivalent_poses, symmetry_group
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'glue.yaml')
    group = symmetry_group(model.symmetries)
    rng = np.random.default_rng(3)
    published, previous = [], None
    for frame in range(60):
        R_true = _rotation([0.3, 1, 0.2], 4 * frame) @ _rotation([1, 0, 0], 110)
        t_true = np.array([0.01 * np.sin(frame / 9), 0.0, 0.7])
        rotations, translations = equivalent_poses(R_true, t_true, group)
        pick = int(rng.integers(len(rotations)))
        R, t = canonical_pose(rotations[pick], translations[pick], group, previous)
        for k in range(len(rotations)):       # no reference: the same answer for either input
            first = canonical_pose(rotations[k], translations[k], group)
            np.testing.assert_allclose(first[0], canonical_pose(R_true, t_true, group)[0],
                                       atol=1e-9)
        published.append((R, t))
        previous = R
    steps = [_angle_deg(a[0], b[0]) for a, b in zip(published, published[1:])]
    assert max(steps) < 4.5                  # the true motion is 4 degrees per frame
    flips = sum(_angle_deg(R, canonical_pose(R, t, group, R)[0]) > 1 for R, t in published)
    assert flips == 0


def test_the_covariance_follows_the_equivalent_pose():
    """Perturbed poses mapped by the same symmetry spread as the carried covariance says."""
    from scipy.spatial.transform import Rotation

    from pose_kp_ros.geometry.symmetry import canonical_pose_covariance, symmetry_group
    group = symmetry_group([Symmetry(np.array([0.0, 0, 1]), 180.0, np.array([0.05, 0.02, 0]))])
    R, t = _rotation([1, 1, 0], 30), np.array([0.0, 0.1, 0.8])
    reference = R @ group[0][1]                               # ask for the other equivalent
    std = np.array([0.002, 0.002, 0.004, 0.02, 0.03, 0.01])
    R_new, t_new, covariance = canonical_pose_covariance(R, t, np.diag(std ** 2), group,
                                                         reference)
    assert not np.allclose(R_new, R)
    rng = np.random.default_rng(4)
    samples = rng.normal(0, std, (20000, 6))
    R_s, t_s = group[0][1], group[1][1]
    deviations = []
    for dt, r in zip(samples[:, :3], samples[:, 3:]):
        R_p, t_p = Rotation.from_rotvec(r).as_matrix() @ R, t + dt
        R_e, t_e = R_p @ R_s, R_p @ t_s + t_p
        deviations.append([*(t_e - t_new), *Rotation.from_matrix(R_e @ R_new.T).as_rotvec()])
    empirical = np.cov(np.array(deviations).T)
    scale = np.sqrt(np.outer(np.diag(covariance), np.diag(covariance)))
    assert np.abs(empirical - covariance).max() > 0 and np.all(
        np.abs(empirical - covariance) < 0.03 * scale)           # sampling error ~1%
    assert abs(covariance[0, 4]) > 0.1 * scale[0, 4]           # the carry mattered
