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

    from pose_kp_ros.rendering.mesh import load_mesh
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
