"""`pose-kp demo --object all` with a pipeline of two LM-O objects: real processes over DDS.

The pipeline holds the shipped driller model and an ape with an UNTRAINED keypoint network (no
training: seeded random weights). The shipped detector knows only the driller, so the test's
detector is the shipped one with a second class, 'ape', whose heatmap is a copy of the
driller's: the ape is "found" where the driller is. Thresholds are relaxed so that the untrained
network's poses are accepted and published: this checks the plumbing of several objects (camera
ground truth per object, ~/pose/<object>, TF, the evaluator's per-object summaries and table),
not the ape's accuracy.
"""

import json
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

FRAMES = 20
APE_FRAMES = 18  # the ape is not annotated in photos 39 and 64, two of the first 20


def write_detector_with_ape(path):
    """Write the shipped driller detector with a second class 'ape' (a copy of the driller's)."""
    import torch

    from pose_kp_ros.network.checkpoint_format import save_checkpoint
    from pose_kp_ros.network.detector_checkpoint import load_detector_checkpoint
    from pose_kp_ros.network.detector_model import CenterNet, DetectorConfig

    model, meta, _ = load_detector_checkpoint(REPO_ROOT / 'models' / 'driller' / 'detector.pt')
    config = DetectorConfig.from_dict({**meta['architecture'], 'num_classes': 2})
    state = model.state_dict()
    for key in ('heads.heatmap.1.weight', 'heads.heatmap.1.bias'):  # the class heatmap layer
        state[key] = torch.cat([state[key], state[key]])
    two = CenterNet(config)
    two.load_state_dict(state)
    save_checkpoint(path, two, {**meta, 'class_names': ['driller', 'ape'],
                                'architecture': config.to_dict()})
    return path


@pytest.fixture(scope='module')
def two_object_pipeline(tmp_path_factory, untrained_keypoints):
    """Return a pipeline YAML: the shipped driller model, an untrained ape, one detector."""
    folder = tmp_path_factory.mktemp('two_objects')
    untrained_keypoints(folder / 'ape_keypoints.pt', 'ape', 'cpu', num_stacks=1,
                              features=16)
    config = yaml.safe_load((REPO_ROOT / 'models' / 'driller' / 'pipeline.yaml').read_text())
    config['objects'] = [
        {'object': str(REPO_ROOT / 'objects' / 'driller.yaml'),
         'keypoint_model': str(REPO_ROOT / 'models' / 'driller' / 'keypoints.onnx')},
        {'object': str(REPO_ROOT / 'objects' / 'ape.yaml'),
         'keypoint_model': str(folder / 'ape_keypoints.pt')}]
    config['detector'] = str(write_detector_with_ape(folder / 'detector.pt'))
    config['thresholds'].update(min_score=0.0, min_keypoint_confidence=0.0,
                                min_valid_keypoints=4, max_reprojection_error_px=1000.0)
    path = folder / 'pipeline.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def test_demo_all_evaluates_every_object_with_a_model(ros_env, two_object_pipeline, tmp_path):
    output = tmp_path / 'demo'
    result = subprocess.run(
        [sys.executable, '-m', 'pose_kp_ros.tools.cli', 'demo', '--object', 'all',
         '--frames', str(FRAMES), '--rate', '2', '--device', 'cpu',
         '--pipeline-config', str(two_object_pipeline), '--output-dir', str(output)],
        env=ros_env, capture_output=True, text=True, timeout=300)
    log = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, log
    assert ('[demo] no model in the pipeline config for can, cat, duck, eggbox, glue, '
            'holepuncher: skipped') in result.stdout, log
    summaries = {name: json.loads((output / f'demo_{name}_summary.json').read_text())
                 for name in ('driller', 'ape')}
    driller, ape = summaries['driller'], summaries['ape']
    # Ground truth per object, only where the object is annotated; poses on ~/pose/<object>.
    assert driller['frames'] == FRAMES and ape['frames'] == APE_FRAMES, log
    assert driller['metric'] == 'ADD' and ape['metric'] == 'ADD'
    assert driller['detection_rate'] >= 0.5 and driller['poses_received'] >= FRAMES // 2, log
    assert driller['tf_transforms_received'] > 0, log
    # ~/detections answers every frame the node processed: at least those with a pose
    assert driller['poses_received'] <= driller['frames_answered'] <= FRAMES, log
    assert ape['poses_received'] > 0 and ape['tf_transforms_received'] > 0, log
    table = json.loads((output / 'demo_all_summary.json').read_text())
    rows = {row['object']: row for row in table['rows']}
    assert sorted(rows) == ['ape', 'can', 'cat', 'driller', 'duck', 'eggbox', 'glue',
                            'holepuncher']
    assert [rows[name]['frames'] for name in ('driller', 'ape')] == [FRAMES, APE_FRAMES]
    assert rows['driller']['summary'] == 'demo_driller_summary.json'
    assert {rows[name]['status'] for name in rows if name not in summaries} == {'no model'}
    assert table['mean']['objects'] == 2 and table['mean']['of'] == 8
    assert table['mean']['accuracy_0.1d'] == pytest.approx(
        (driller['add_0.1d_accuracy'] + ape['add_0.1d_accuracy']) / 2)
    assert (output / 'demo_all_mosaic.png').is_file()
    assert 'mean (2 of 8)' in result.stdout
