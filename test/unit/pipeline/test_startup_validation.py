"""Every startup mistake gives one line naming the file (or parameter) and the field at fault.

Each case mutates a working pipeline (a copy of the driller object YAML, a tiny untrained keypoint
checkpoint and the shipped detector), loads it the way the node does
(`KeypointPoseEstimator.from_config`) and checks the error: the documented type, one line, the
file named, the expected text. docs/startup_errors.md lists every case; a test keeps it current
(`python test/unit/pipeline/test_startup_validation.py` prints the generated rows).
"""

from dataclasses import dataclass, replace
import logging
from pathlib import Path

import pytest
import yaml

from pose_kp_ros.geometry.object_model import ObjectModelError
from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.pipeline.config import PipelineConfigError, Thresholds
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.ros.parameters import SPECS

REPO_ROOT = Path(__file__).resolve().parents[3]
DOC = REPO_ROOT / 'docs' / 'startup_errors.md'
STARTUP_ERRORS = (PipelineConfigError, ObjectModelError, CheckpointError)
# A cube of 150 mm written in millimetres (8 vertices, 12 triangles).
CUBE_OBJ_MM = ''.join(f'v {x} {y} {z}\n' for x in (0, 150) for y in (0, 150) for z in (0, 150)) \
    + ''.join(f'f {a} {b} {c}\n' for a, b, c in (
        (1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2),
        (3, 4, 8), (3, 8, 7), (1, 3, 7), (1, 7, 5), (2, 6, 8), (2, 8, 4)))


def _tiny_checkpoint(path, object_name, keypoint_names):
    """Write an untrained one-stack keypoint checkpoint for `keypoint_names` to path."""
    import torch

    from pose_kp_ros.network.checkpoint import make_meta
    from pose_kp_ros.network.checkpoint_format import save_checkpoint
    from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet

    torch.manual_seed(0)
    config = HourglassConfig.from_preset('cpu', len(keypoint_names), num_stacks=1, features=16)
    meta = make_meta(config, object_name, keypoint_names, 'cpu', padding=1.25, sigma=2.0,
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    save_checkpoint(path, HourglassNet(config), meta)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Return a folder with tiny checkpoints: driller.pt (the driller's) and widget.pt."""
    folder = tmp_path_factory.mktemp('checkpoints')
    names = yaml.safe_load((REPO_ROOT / 'objects' / 'driller.yaml').read_text())['keypoint_names']
    _tiny_checkpoint(folder / 'driller.pt', 'driller', names)
    _tiny_checkpoint(folder / 'widget.pt', 'widget', names)
    return folder


class Workspace:
    """A pipeline config and object YAML in one folder, as dicts to mutate before writing."""

    def __init__(self, folder, checkpoints):
        self.folder = folder
        self.checkpoints = checkpoints
        self.object = yaml.safe_load((REPO_ROOT / 'objects' / 'driller.yaml').read_text())
        self.config = {
            'device': 'cpu',
            'objects': [{'object': 'driller.yaml', 'keypoint_model': 'keypoints.pt'}],
            'detector': str(REPO_ROOT / 'models' / 'driller' / 'detector.pt'),
            'thresholds': {'min_score': 0.2, 'min_valid_keypoints': 5},
            'solver': {'robust': 'huber', 'max_iterations': 20},
        }
        self.config_text = None  # raw text replacing the config dict
        self.object_text = None   # raw text replacing the object dict
        (folder / 'keypoints.pt').write_bytes((checkpoints / 'driller.pt').read_bytes())

    @property
    def pipeline_path(self):
        return self.folder / 'pipeline.yaml'

    @property
    def object_path(self):
        return self.folder / 'driller.yaml'

    def write(self):
        """Write both files and return the pipeline config path."""
        self.object_path.write_text(self.object_text if self.object_text is not None
                                    else yaml.safe_dump(self.object))
        self.pipeline_path.write_text(self.config_text if self.config_text is not None
                                      else yaml.safe_dump(self.config))
        return self.pipeline_path


@dataclass(frozen=True)
class Case:
    """One user mistake: what it is, how to make it, which file is named, what the line says."""

    id: str
    mistake: str
    mutate: object
    file: str      # 'pipeline', 'object', 'keypoints' or 'detector': the file the line names
    expected: str  # text following '<file>: ' in the message


def _set(path, value):
    """Return a mutation setting config field `path` ('a.b' or 'objects.0.x') to value."""
    def mutate(ws):
        *parents, last = path.split('.')
        target = ws.config
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value
    return mutate


def _drop(path):
    """Return a mutation deleting config field `path` ('a.b')."""
    def mutate(ws):
        *parents, last = path.split('.')
        target = ws.config
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]
    return mutate


def _obj(**changes):
    """Return a mutation changing object YAML fields (None deletes the field)."""
    def mutate(ws):
        for key, value in changes.items():
            if value is None:
                ws.object.pop(key, None)
            else:
                ws.object[key] = value
    return mutate


def _checkpoint(name):
    """Return a mutation installing the tiny checkpoint `name` as keypoints.pt."""
    def mutate(ws):
        (ws.folder / 'keypoints.pt').write_bytes((ws.checkpoints / name).read_bytes())
    return mutate


def _in_mm(rows):
    return [[value * 1000.0 for value in row] for row in rows]


def _mesh_in_mm(ws):
    (ws.folder / 'cube_mm.obj').write_text(CUBE_OBJ_MM)
    ws.object.update(mesh='cube_mm.obj', mesh_scale=1.0, diameter_m=0.26)


def _text(attribute, text):
    return lambda ws: setattr(ws, attribute, text)


def _both(*mutations):
    def mutate(ws):
        for mutation in mutations:
            mutation(ws)
    return mutate


def _rename_keypoint(ws):
    ws.object['keypoint_names'] = ['tip'] + ws.object['keypoint_names'][1:]


def _swap_keypoints(ws):
    names = ws.object['keypoint_names']
    names[0], names[1] = names[1], names[0]


def _nine_keypoints(ws):
    ws.object['keypoint_names'] = ws.object['keypoint_names'][:9]
    ws.object['keypoints_m'] = ws.object['keypoints_m'][:9]


CASES = [
    Case('config-missing', 'pipeline config file does not exist',
         lambda ws: ws.pipeline_path.unlink(), 'pipeline', 'pipeline config not found'),
    Case('config-yaml', 'pipeline config is not valid YAML',
         _text('config_text', 'objects: [\n  {object: a\n'), 'pipeline',
         'not valid YAML: line 3, column 1'),
    Case('config-not-mapping', 'pipeline config is a list, not a mapping',
         _text('config_text', '- objects\n'), 'pipeline', 'expected a mapping at the top level'),
    Case('config-unknown-key', 'misspelt top-level field (treshold)',
         _set('treshold', {}), 'pipeline', 'treshold: unknown field'),
    Case('config-number-key', 'a number as a field name',
         lambda ws: ws.config.update({1: 'x'}), 'pipeline', '1: unknown field'),
    Case('objects-missing', 'no objects list', _drop('objects'), 'pipeline',
         'objects: expected a non-empty list'),
    Case('objects-empty', 'empty objects list', _set('objects', []), 'pipeline',
         'objects: expected a non-empty list'),
    Case('objects-not-mapping', 'an objects entry that is a plain string',
         _set('objects.0', 'driller.yaml'), 'pipeline', 'objects[0]: expected a mapping'),
    Case('keypoint-model-missing', 'objects entry without keypoint_model',
         _drop('objects.0.keypoint_model'), 'pipeline',
         'objects[0].keypoint_model: expected a file path'),
    Case('objects-unknown-key', 'misspelt objects entry field',
         _set('objects.0.max_instance', 2), 'pipeline', 'objects[0].max_instance: unknown field'),
    Case('max-instances-zero', 'max_instances 0', _set('objects.0.max_instances', 0),
         'pipeline', 'objects[0].max_instances: expected an integer >= 1, got 0'),
    Case('max-instances-text', "max_instances given as text ('2')",
         _set('objects.0.max_instances', '2'), 'pipeline',
         "objects[0].max_instances: expected an integer >= 1, got '2'"),
    Case('device-unknown', 'unknown device (tpu)', _set('device', 'tpu'), 'pipeline',
         "device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    Case('device-bad-index', 'malformed CUDA device (cuda:x)', _set('device', 'cuda:x'),
         'pipeline', "device: expected auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    Case('thresholds-not-mapping', 'thresholds given as a list', _set('thresholds', [0.2]),
         'pipeline', 'thresholds: expected a mapping'),
    Case('thresholds-unknown', 'misspelt threshold', _set('thresholds.min_scor', 0.2),
         'pipeline', 'thresholds.min_scor: unknown field'),
    Case('min-score-range', 'min_score above 1', _set('thresholds.min_score', 2),
         'pipeline', 'thresholds.min_score: expected [0, 1], got 2'),
    Case('min-score-text', "min_score given as text ('0.2')", _set('thresholds.min_score', '0.2'),
         'pipeline', "thresholds.min_score: expected [0, 1], got '0.2'"),
    Case('min-valid-keypoints-low', 'min_valid_keypoints below 4 (no pose from 3 points)',
         _set('thresholds.min_valid_keypoints', 3), 'pipeline',
         'thresholds.min_valid_keypoints: expected an integer >= 4, got 3'),
    Case('reprojection-zero', 'max_reprojection_error_px 0',
         _set('thresholds.max_reprojection_error_px', 0), 'pipeline',
         'thresholds.max_reprojection_error_px: expected > 0, got 0'),
    Case('reprojection-nan', 'max_reprojection_error_px .nan',
         _set('thresholds.max_reprojection_error_px', float('nan')), 'pipeline',
         'thresholds.max_reprojection_error_px: expected > 0, got nan'),
    Case('confidence-negative', 'negative min_keypoint_confidence',
         _set('thresholds.min_keypoint_confidence', -0.1), 'pipeline',
         'thresholds.min_keypoint_confidence: expected [0, 1), got -0.1'),
    Case('solver-not-mapping', 'solver given as a string', _set('solver', 'huber'), 'pipeline',
         'solver: expected a mapping of solve_pose options'),
    Case('solver-unknown', 'misspelt solver option', _set('solver.max_iteration', 5),
         'pipeline', 'solver: max_iteration: unknown solver option'),
    Case('solver-robust', 'unknown robust kernel', _set('solver.robust', 'l1'), 'pipeline',
         "solver: robust: expected huber, cauchy or null, got 'l1'"),
    Case('solver-iterations', 'negative max_iterations', _set('solver.max_iterations', -1),
         'pipeline', 'solver: max_iterations: expected an integer >= 0, got -1'),
    Case('solver-scale', 'robust_scale_px 0', _set('solver.robust_scale_px', 0), 'pipeline',
         'solver: robust_scale_px: expected a finite number > 0, got 0'),
    Case('solver-min-confidence', 'min_confidence in solver (belongs to thresholds)',
         _set('solver.min_confidence', 0.3), 'pipeline',
         'solver.min_confidence: set thresholds.min_keypoint_confidence instead'),
    Case('refine-range', 'refine_iou_below above 1', _set('refine_iou_below', 1.5), 'pipeline',
         'refine_iou_below: expected a number in [0, 1], got 1.5'),
    Case('candidates-zero', 'search_candidates 0', _set('search_candidates', 0), 'pipeline',
         'search_candidates: expected an integer >= 1, got 0'),
    Case('relative-score-range', 'search_relative_score above 1',
         _set('search_relative_score', 1.5), 'pipeline',
         'search_relative_score: expected a number in [0, 1], got 1.5'),
    Case('contour-range', 'contour_search_px given as one number', _set('contour_search_px', 6),
         'pipeline', 'contour_search_px: expected a list of pixel ranges in (0, 50] '
         '([] disables), got 6'),
    Case('contour-balance', 'contour_balance 0', _set('contour_balance', 0), 'pipeline',
         'contour_balance: expected a number > 0, got 0'),
    Case('contour-depth-starts-empty', 'contour_depth_starts empty',
         _set('contour_depth_starts', []), 'pipeline', 'contour_depth_starts: expected a '
         'non-empty list of depth factors in [0.5, 2] ([1.0]: one start), got []'),
    Case('detector-not-path', 'detector given as a number', _set('detector', 5), 'pipeline',
         'detector: expected a file path, got 5'),
    Case('object-file-missing', 'relative object path that does not exist',
         _set('objects.0.object', 'objects/driller.yaml'), 'pipeline',
         'objects[0].object: file not found:'),
    Case('keypoint-model-file-missing', 'keypoint_model file that does not exist',
         _set('objects.0.keypoint_model', 'keypoints.pt2'), 'pipeline',
         'objects[0].keypoint_model: file not found:'),
    Case('object-detector-not-path', "an object's own detector given as a number",
         _set('objects.0.detector', 5), 'pipeline', 'objects[0].detector: expected a file path, '
         'got 5'),
    Case('object-detector-file-missing', "an object's own detector file that does not exist",
         _set('objects.0.detector', 'my_detector.onnx'), 'pipeline',
         'objects[0].detector: file not found:'),
    Case('detector-file-missing', 'detector file that does not exist',
         _set('detector', 'detector.pt'), 'pipeline', 'detector: file not found:'),
    Case('objects-duplicate', 'the same object listed twice',
         lambda ws: ws.config['objects'].append(dict(ws.config['objects'][0])), 'pipeline',
         "objects[1].object: object 'driller' is already objects[0]"),
    Case('object-yaml', 'object YAML is not valid YAML',
         _text('object_text', 'name: driller\nkeypoint_names: [a, b\n'), 'object',
         'not valid YAML: line 3, column 1'),
    Case('object-field-missing', 'object YAML without diameter_m', _obj(diameter_m=None),
         'object', 'diameter_m: missing required field'),
    Case('object-unknown-field', 'misspelt object field (diameter)', _obj(diameter=0.26),
         'object', 'diameter: unknown field'),
    Case('object-name', 'object name with capitals and spaces', _obj(name='Power Drill'),
         'object', "name: expected a name matching [a-z0-9_]+, got 'Power Drill'"),
    Case('object-keypoint-count', 'keypoint_names and keypoints_m of different lengths',
         lambda ws: ws.object['keypoints_m'].pop(), 'object',
         'keypoints_m: expected (10, 3) numbers, got (9, 3)'),
    Case('keypoints-in-mm', 'keypoints_m written in millimetres',
         lambda ws: ws.object.update(keypoints_m=_in_mm(ws.object['keypoints_m'])), 'object',
         'keypoints_m: keypoints span 260.471 m but diameter_m is 0.261472 m'),
    Case('diameter-in-mm', 'diameter_m written in millimetres', _obj(diameter_m=261.472),
         'object', 'diameter_m: 261.472 m is above 100 m'),
    Case('everything-in-mm', 'keypoints_m and diameter_m both in millimetres',
         lambda ws: ws.object.update(keypoints_m=_in_mm(ws.object['keypoints_m']),
                                     diameter_m=261.472), 'object',
         'diameter_m: 261.472 m is above 100 m'),
    Case('mesh-scale', 'mesh in millimetres without mesh_scale 0.001', _mesh_in_mm, 'object',
         'mesh_scale: the mesh is 259.808 m across with mesh_scale 1'),
    Case('checkpoint-order', 'object keypoints in another order than the checkpoint',
         _swap_keypoints, 'keypoints', 'keypoint order mismatch at index 0'),
    Case('checkpoint-names', 'object keypoint renamed', _rename_keypoint, 'keypoints',
         "keypoint name mismatch: checkpoint has ['kp00'] that the object model lacks"),
    Case('checkpoint-count', 'object with fewer keypoints than the checkpoint', _nine_keypoints,
         'keypoints', 'keypoint count mismatch: checkpoint has 10'),
    Case('checkpoint-object', 'checkpoint trained for another object',
         _checkpoint('widget.pt'), 'keypoints', "trained for object 'widget', not 'driller'"),
    Case('checkpoint-not-torch', 'keypoint_model pointing at a YAML file',
         _set('objects.0.keypoint_model', 'driller.yaml'), 'object',
         'not a pose_kp_ros checkpoint (not a torch.save file)'),
    Case('checkpoint-is-detector', 'keypoint_model pointing at the detector checkpoint',
         lambda ws: _set('objects.0.keypoint_model', ws.config['detector'])(ws), 'detector',
         "not a pose_kp_ros checkpoint (format 'pose_kp_ros.detector_checkpoint', expected "
         "'pose_kp_ros.keypoint_checkpoint')"),
    Case('detector-is-exported', 'detector pointing at an exported keypoint model (.onnx)',
         _set('detector', str(REPO_ROOT / 'models' / 'driller' / 'keypoints.onnx')), 'detector',
         "not a pose_kp_ros detector checkpoint (format 'pose_kp_ros.keypoint_checkpoint'"),
    Case('detector-is-keypoints', 'detector pointing at a keypoint checkpoint',
         _set('detector', 'keypoints.pt'), 'keypoints',
         'not a pose_kp_ros detector checkpoint'),
    Case('detector-classes', "detector without a class for the object (object 'widget')",
         _both(_obj(name='widget'), _checkpoint('widget.pt')), 'detector',
         "detector has no class ['widget']"),
]

# Node parameters (checked before the pipeline loads): (id, mistake, name, value, expected).
PARAMETER_CASES = [
    ('search-interval-zero', 'search_interval 0', 'search_interval', 0,
     'search_interval: 0 is below the minimum 1'),
    ('device-parameter', 'device parameter tpu', 'device', 'tpu', "device: 'tpu' does not match"),
    ('transport', 'unknown image_transport', 'image_transport', 'theora',
     "image_transport: 'theora' is not one of raw, compressed"),
    ('parameter-type', 'integer parameter given as text', 'max_misses', 'five',
     "max_misses: expected int, got 'five'"),
    ('parameter-nan', 'diagnostics_period_s .nan', 'diagnostics_period_s', float('nan'),
     'diagnostics_period_s: expected a number, got nan'),
    ('min-score-parameter', 'min_score parameter above 1', 'min_score', 1.5,
     'min_score: 1.5 is above the maximum 1.0'),
    ('min-valid-keypoints-parameter', 'min_valid_keypoints parameter 3', 'min_valid_keypoints', 3,
     'min_valid_keypoints: 3 is below the minimum 4'),
]
# Threshold parameters within their range but refused by the pipeline's own rules.
THRESHOLD_PARAMETER_CASES = [
    ('reprojection-parameter-zero', 'max_reprojection_error_px parameter 0',
     'max_reprojection_error_px', 0.0,
     'thresholds.max_reprojection_error_px: expected > 0, got 0.0'),
]


def _file_named(case, ws):
    return {'pipeline': ws.pipeline_path, 'object': ws.object_path,
            'keypoints': ws.folder / 'keypoints.pt',
            'detector': ws.config.get('detector')}[case.file]


def _startup_error(ws, case):
    """Apply the case to a fresh workspace, load it and return the error message."""
    ws.write()
    case.mutate(ws)
    if ws.pipeline_path.exists():
        ws.write()
    with pytest.raises(STARTUP_ERRORS) as caught:
        KeypointPoseEstimator.from_config(ws.pipeline_path)
    return str(caught.value)


@pytest.fixture
def workspace(tmp_path, checkpoints):
    return Workspace(tmp_path, checkpoints)


def test_an_objects_own_detector_replaces_the_shared_one_for_it(workspace):
    workspace.config['objects'][0]['detector'] = str(REPO_ROOT / 'models' / 'driller'
                                                     / 'detector.onnx')
    estimator = KeypointPoseEstimator.from_config(workspace.write())
    (detector,) = estimator.detectors  # the shared detector.pt serves no object: not loaded
    assert detector.object_names == ['driller'] and type(detector.model).__name__ == 'OnnxNetwork'


def test_the_unchanged_workspace_loads(workspace):
    estimator = KeypointPoseEstimator.from_config(workspace.write())
    assert estimator.object_names == ['driller'] and len(estimator.detectors) == 1


@pytest.mark.parametrize('case', CASES, ids=[case.id for case in CASES])
def test_config_mistake(workspace, case):
    message = _startup_error(workspace, case)
    named = str(_file_named(case, workspace))
    assert '\n' not in message, message
    assert f'{named}: ' in message, message
    assert case.expected in message.split(f'{named}: ', 1)[1], message


@pytest.mark.parametrize('name, value, expected',
                         [case[2:] for case in PARAMETER_CASES],
                         ids=[case[0] for case in PARAMETER_CASES])
def test_parameter_mistake(name, value, expected):
    reason = SPECS[name].check(value)
    assert reason is not None and expected in reason and '\n' not in reason


@pytest.mark.parametrize('name, value, expected',
                         [case[2:] for case in THRESHOLD_PARAMETER_CASES],
                         ids=[case[0] for case in THRESHOLD_PARAMETER_CASES])
def test_threshold_parameter_mistake(name, value, expected):
    assert SPECS[name].check(value) is None  # in the parameter's range ...
    with pytest.raises(PipelineConfigError, match=expected.replace('[', r'\[')):
        replace(Thresholds(), **{name: value}).validated()  # ... refused as the node applies it


def test_missing_mesh_warns_and_starts(workspace, caplog):
    workspace.object['mesh'] = 'meshes/driller.ply'
    with caplog.at_level(logging.WARNING):
        estimator = KeypointPoseEstimator.from_config(workspace.write())
    assert estimator.object_names == ['driller']
    assert 'driller: mesh meshes/driller.ply unusable' in caplog.text
    assert 'crop boxes from keypoints' in caplog.text


def doc_rows():
    """Return the Markdown rows of docs/startup_errors.md generated from the cases."""
    files = {'pipeline': '<pipeline.yaml>', 'object': '<object.yaml>',
             'keypoints': '<keypoint_model>', 'detector': '<detector>'}
    rows = [f'| {case.mistake} | `{files[case.file]}: {case.expected}` | '
            f'`test_config_mistake[{case.id}]` |' for case in CASES]
    rows += [f'| {mistake} | `pose_kp_node: parameter {expected}` | '
             f'`test_parameter_mistake[{case_id}]` |'
             for case_id, mistake, _, _, expected in PARAMETER_CASES]
    rows += [f'| {mistake} | `pose_kp_node: parameter {expected}` | '
             f'`test_threshold_parameter_mistake[{case_id}]` |'
             for case_id, mistake, _, _, expected in THRESHOLD_PARAMETER_CASES]
    return rows


def test_doc_table_lists_every_case():
    text = DOC.read_text()
    missing = [row for row in doc_rows() if row not in text]
    assert not missing, 'docs/startup_errors.md is out of date; missing rows:\n' + \
        '\n'.join(missing)


if __name__ == '__main__':
    print('\n'.join(doc_rows()))
