"""Fuzz config loading: pipeline config, object YAML, node parameters.

Each input either loads or raises the documented error (PipelineConfigError, ObjectModelError,
a parameter reason) with a one-line message; never KeyError, TypeError, AttributeError, ....
"""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
import yaml

from pose_kp_ros.geometry.object_model import MAX_DIAMETER_M, ObjectModel, ObjectModelError
from pose_kp_ros.pipeline.config import PipelineConfig, PipelineConfigError
from pose_kp_ros.ros.parameters import NODE_PARAMETERS

BOUNDARY = 'config loading'
PIPELINE_FIELDS = ['device', 'objects', 'detector', 'thresholds', 'solver', 'refine_iou_below',
                   'object', 'keypoint_model', 'max_instances', 'min_score', 'min_valid_keypoints',
                   'max_reprojection_error_px', 'min_keypoint_confidence', 'robust',
                   'max_iterations', 'robust_scale_px', 'min_confidence']
OBJECT_FIELDS = ['name', 'keypoint_names', 'keypoints_m', 'diameter_m', 'symmetric', 'mesh',
                 'mesh_scale', 'shape_basis', 'basis_m', 'prior_scale']
huge_integers = st.sampled_from([10**400, -10**400, 2**63, 2**64 + 1])
scalars = (st.none() | st.booleans() | st.integers(-10**30, 10**30) | huge_integers | st.floats()
           | st.text(max_size=8) | st.sampled_from(['auto', 'cpu', 'cuda:0', 'huber', 'a.pt']))


def yaml_values(field_names):
    """Return a strategy of YAML-like values whose mapping keys are mostly real field names."""
    keys = st.sampled_from(field_names) | st.text(max_size=6) | st.integers(-3, 3)
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(keys, children, max_size=5), max_leaves=20)


def _assert_one_line(error):
    assert '\n' not in str(error) and str(error), repr(error)


GOOD_PIPELINE = {'device': 'cpu',
                 'objects': [{'object': 'o.yaml', 'keypoint_model': 'k.pt', 'max_instances': 1}],
                 'detector': 'd.pt', 'thresholds': {'min_score': 0.2},
                 'solver': {'robust': 'huber', 'max_iterations': 20}, 'refine_iou_below': 0.8}


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.sampled_from(PIPELINE_FIELDS) | st.text(max_size=5),
                            yaml_values(PIPELINE_FIELDS), max_size=6))
def test_random_pipeline_mappings_load_or_raise_the_config_error(data):
    try:
        config = PipelineConfig.load(data)
    except PipelineConfigError as error:
        _assert_one_line(error)
        return
    assert config.objects and all(entry.max_instances >= 1 for entry in config.objects)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from([('device',), ('objects',), ('objects', 0), ('objects', 0, 'object'),
                             ('objects', 0, 'max_instances'), ('detector',), ('thresholds',),
                             ('thresholds', 'min_score'), ('thresholds', 'min_valid_keypoints'),
                             ('solver',), ('solver', 'robust'), ('solver', 'max_iterations'),
                             ('refine_iou_below',)]),
       value=yaml_values(PIPELINE_FIELDS))
def test_one_wrong_pipeline_field_loads_or_raises_the_config_error(path, value):
    data = yaml.safe_load(yaml.safe_dump(GOOD_PIPELINE))  # a deep copy
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        PipelineConfig.load(data)
    except PipelineConfigError as error:
        _assert_one_line(error)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('fuzz_objects')


GOOD_OBJECT = {'name': 'cube', 'keypoint_names': ['a', 'b', 'c', 'd', 'e'],
               'keypoints_m': [[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1], [0.1, 0.1, 0.1]],
               'diameter_m': 0.1732, 'symmetric': False}


def _load_object(folder, text):
    path = folder / 'object.yaml'
    path.write_text(text)
    try:
        return ObjectModel.from_yaml(path)
    except ObjectModelError as error:
        _assert_one_line(error)
        assert str(error).startswith(f'{path}: ')  # names the file
        return None


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(OBJECT_FIELDS) | st.text(max_size=5),
                               yaml_values(OBJECT_FIELDS), max_size=4),
       drop=st.lists(st.sampled_from(list(GOOD_OBJECT)), max_size=2))
def test_random_object_yaml_loads_or_raises_the_object_error(folder, changes, drop):
    data = {key: value for key, value in {**GOOD_OBJECT, **changes}.items() if key not in drop}
    model = _load_object(folder, yaml.safe_dump(data))
    if model is not None:
        assert np.isfinite(model.keypoints).all() and model.diameter > 0


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('abc:-[]{}\'", \n\t&*!|>%@`#?0.5')),
                    max_size=60))
def test_arbitrary_yaml_text_loads_or_raises_the_documented_errors(folder, text):
    _load_object(folder, text)
    path = folder / 'pipeline.yaml'
    path.write_text(text)
    try:
        PipelineConfig.load(path)
    except PipelineConfigError as error:
        _assert_one_line(error)


@settings(max_examples=200, deadline=None)
@given(keypoint_scale=st.sampled_from([1e-6, 1e-3, 0.01, 0.5, 1.0, 2.0, 10.0, 1000.0]),
       diameter_scale=st.sampled_from([1e-6, 1e-3, 1.0, 10.0, 1000.0, 1e6]),
       size=st.floats(0.01, 2.0))
def test_sizes_in_wrong_units_are_refused(folder, keypoint_scale, diameter_scale, size):
    """Keypoints or diameter in millimetres (or any absurd scale) must not load silently."""
    keypoints = np.array(GOOD_OBJECT['keypoints_m']) / 0.1 * size
    spread = math.sqrt(3) * size
    data = {**GOOD_OBJECT, 'keypoints_m': (keypoints * keypoint_scale).tolist(),
            'diameter_m': spread * diameter_scale}
    model = _load_object(folder, yaml.safe_dump(data))
    if model is not None:  # loaded: sizes are plausible and consistent
        assert model.diameter <= MAX_DIAMETER_M
        ratio = spread * keypoint_scale / model.diameter
        assert 0.01 * (1 - 1e-9) <= ratio <= 1.5 * (1 + 1e-9)
    if keypoint_scale == diameter_scale == 1.0:
        assert model is not None


parameter_values = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | huge_integers
                    | st.floats()
                    | st.text(max_size=8) | st.lists(st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(index=st.integers(0, len(NODE_PARAMETERS) - 1), value=parameter_values)
def test_node_parameters_are_accepted_only_when_valid(index, value):
    spec = NODE_PARAMETERS[index]
    reason = spec.check(value)
    if reason is not None:
        assert isinstance(reason, str) and '\n' not in reason and reason.startswith(spec.name)
        return
    expected = type(spec.default)
    assert isinstance(value, expected) or (expected is float and isinstance(value, int))
    assert expected is not int or not isinstance(value, bool)
    if expected in (int, float):
        assert math.isfinite(value) and spec.low <= value <= spec.high
