"""ObjectModel: construction, YAML round trip, validation errors naming file and field, meshes."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from pose_kp_ros import ObjectModel, ObjectModelError

GOOD = {'name': 'cube', 'keypoint_names': ['a', 'b', 'c', 'd', 'e'],
        'keypoints_m': [[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1], [0.1, 0.1, 0.1]],
        'diameter_m': 0.1732, 'symmetric': False}


def _write(tmp_path, data, name='x.yaml'):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_round_trip_keeps_every_field(tmp_path, rng):
    model = ObjectModel('thing', ['a', 'b', 'c', 'd'], rng.normal(size=(4, 3)) * 0.1,
                        basis=rng.normal(size=(2, 4, 3)), prior_scale=[0.3, 0.1],
                        diameter=0.5, symmetric=True, mesh_path='mesh.ply', mesh_scale=0.001)
    model.to_yaml(tmp_path / 'thing.yaml')
    loaded = ObjectModel.from_yaml(tmp_path / 'thing.yaml')
    assert loaded.keypoint_names == ('a', 'b', 'c', 'd') and loaded.name == 'thing'
    np.testing.assert_allclose(loaded.keypoints, model.keypoints, atol=1e-10)
    np.testing.assert_allclose(loaded.basis, model.basis, atol=1e-10)
    np.testing.assert_allclose(loaded.prior_scale, [0.3, 0.1])
    assert (loaded.diameter, loaded.symmetric, loaded.mesh_path, loaded.mesh_scale) == \
        (0.5, True, 'mesh.ply', 0.001)
    assert loaded.num_basis == 2 and loaded.source == tmp_path / 'thing.yaml'
    np.testing.assert_allclose(loaded.shape([1.0, 0.0]), model.keypoints + model.basis[0],
                               atol=1e-9)


def test_rigid_model_defaults(tmp_path):
    model = ObjectModel.from_yaml(_write(tmp_path, GOOD))
    assert model.num_basis == 0 and model.basis.shape == (0, 5, 3)
    assert model.mesh_path is None and model.resolve_mesh_path() is None
    assert model.mesh_scale == 1.0


def test_example_box_objects_load(repo_root):
    for path in sorted((repo_root / 'objects').glob('box_*.yaml')):
        model = ObjectModel.from_yaml(path)
        assert model.num_keypoints == 8


BAD = [
    ({'keypoints_m': [[0, 0]] * 5}, 'keypoints_m', r'expected \(5, 3\) numbers, got \(5, 2\)'),
    ({'keypoints_m': [[0, 0, 0]] * 4}, 'keypoints_m', r'got \(4, 3\)'),
    ({'keypoints_m': [[0, 0, 'x']] * 5}, 'keypoints_m', 'expected'),
    ({'keypoints_m': [[0, 0, float('nan')]] * 5}, 'keypoints_m', 'finite'),
    ({'keypoint_names': ['a', 'a', 'c', 'd', 'e']}, 'keypoint_names', "repeated: \\['a'\\]"),
    ({'keypoint_names': 'abcde'}, 'keypoint_names', 'list'),
    ({'keypoint_names': ['a', 'b', 'c'], 'keypoints_m': [[0, 0, 0]] * 3}, 'keypoint_names',
     'at least 4'),
    ({'name': 'Big Box'}, 'name', r'\[a-z0-9_\]\+'),
    ({'diameter_m': -1.0}, 'diameter_m', 'positive'),
    ({'diameter_m': 'large'}, 'diameter_m', 'positive'),
    ({'symmetric': 'yes please'}, 'symmetric', 'true or false'),
    ({'mesh_scale': 0}, 'mesh_scale', 'positive'),
    ({'mesh': 5}, 'mesh', 'path'),
    ({'colour': 'red'}, 'colour', 'unknown field'),
    ({'shape_basis': {'basis_m': [[[0, 0, 0]] * 4]}}, 'shape_basis', 'basis_m and prior_scale'),
    ({'shape_basis': {'basis_m': [[[0, 0, 0]] * 4], 'prior_scale': [1.0]}},
     'shape_basis.basis_m', r'expected \(M, 5, 3\) numbers, got \(1, 4, 3\)'),
    ({'shape_basis': {'basis_m': [[[0, 0, 0]] * 5], 'prior_scale': [1.0, 2.0]}},
     'shape_basis.prior_scale', r'expected \(1,\) numbers, got \(2,\)'),
    ({'shape_basis': {'basis_m': [[[0, 0, 0]] * 5], 'prior_scale': [0.0]}},
     'shape_basis.prior_scale', '> 0'),
]


@pytest.mark.parametrize('change,field,message', BAD,
                         ids=[f'{b[1]}-{i}' for i, b in enumerate(BAD)])
def test_invalid_yaml_names_file_and_field(tmp_path, change, field, message):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(ObjectModelError, match=f'^{path}: {field}: .*{message}'):
        ObjectModel.from_yaml(path)


@pytest.mark.parametrize('missing', ['name', 'keypoint_names', 'keypoints_m', 'diameter_m'])
def test_missing_required_field(tmp_path, missing):
    data = {k: v for k, v in GOOD.items() if k != missing}
    path = _write(tmp_path, data)
    with pytest.raises(ObjectModelError, match=f'{path}: {missing}: missing required field'):
        ObjectModel.from_yaml(path)


def test_unreadable_or_malformed_files(tmp_path):
    with pytest.raises(ObjectModelError, match='cannot read'):
        ObjectModel.from_yaml(tmp_path / 'absent.yaml')
    with pytest.raises(ObjectModelError, match='not valid YAML'):
        ObjectModel.from_yaml(_write(tmp_path, 'name: [unclosed'))
    with pytest.raises(ObjectModelError, match='expected a mapping'):
        ObjectModel.from_yaml(_write(tmp_path, '- just\n- a list\n'))
    assert issubclass(ObjectModelError, ValueError)


def test_array_constructor_errors_name_the_field():
    with pytest.raises(ObjectModelError, match='<ObjectModel>: keypoints_m: .*got \\(4, 2\\)'):
        ObjectModel('x', ['a', 'b', 'c', 'd'], np.zeros((4, 2)), diameter=1.0)
    with pytest.raises(ObjectModelError, match='diameter_m'):
        ObjectModel('x', ['a', 'b', 'c', 'd'], np.zeros((4, 3)))


def test_mesh_paths_relative_absolute_and_pkgdata(tmp_path):
    (tmp_path / 'meshes').mkdir()
    mesh = tmp_path / 'meshes' / 'm.ply'
    mesh.write_text('ply\n')
    relative = ObjectModel.from_yaml(_write(tmp_path, {**GOOD, 'mesh': 'meshes/m.ply'}))
    assert relative.resolve_mesh_path() == mesh.resolve()
    absolute = ObjectModel.from_yaml(_write(tmp_path, {**GOOD, 'mesh': str(mesh)}))
    assert absolute.resolve_mesh_path() == mesh.resolve()
    pkgdata = ObjectModel.from_yaml(_write(tmp_path, {**GOOD, 'mesh': 'pkgdata:yaml/__init__.py'}))
    assert pkgdata.resolve_mesh_path() == (Path(yaml.__file__)).resolve()
    for mesh_text, message in [('pkgdata:no_such_package_xyz/m.ply', 'not installed'),
                               ('pkgdata:yaml/absent.ply', 'file not found'),
                               ('meshes/absent.ply', 'file not found')]:
        model = ObjectModel.from_yaml(_write(tmp_path, {**GOOD, 'mesh': mesh_text}))
        with pytest.raises(ObjectModelError, match=f'x.yaml: mesh: .*{message}'):
            model.resolve_mesh_path()
