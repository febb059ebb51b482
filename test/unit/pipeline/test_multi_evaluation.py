"""The per-object table of `pose-kp eval-lmo --object all`: metric choice, mean and text."""

import numpy as np
import pytest
import yaml

from pose_kp_ros.data.package_data import LMO_OBJECT_IDS
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.pipeline.multi_evaluation import (
    PUBLISHED_LMO,
    EvalFrame,
    error_metric,
    evaluate_frames,
    mean_row,
    object_row,
    objects_table,
    published_json,
)


@pytest.mark.parametrize('name', sorted(LMO_OBJECT_IDS))
def test_metric_is_add_s_exactly_for_objects_declaring_symmetries(name, repo_root):
    path = repo_root / 'objects' / f'{name}.yaml'
    declared = bool(yaml.safe_load(path.read_text()).get('symmetries'))
    assert error_metric(ObjectModel.from_yaml(path)) == ('ADD-S' if declared else 'ADD')
    assert declared == (name in ('eggbox', 'glue'))  # the BOP / LM-O convention


def summary(accuracy, rotation=2.0):
    return {'frames': 10, 'add_0.1d_accuracy': accuracy, 'add_auc_0.1d': accuracy / 2,
            'detection_rate': 1.0, 'median_rotation_deg': rotation,
            'median_translation_mm': 10.0}


def test_mean_is_over_evaluated_objects_only():
    rows = [object_row('ape', 'ADD'), object_row('driller', 'ADD', summary(0.4), 'a.json'),
            object_row('eggbox', 'ADD-S', summary(0.8, rotation=float('nan')), 'b.json')]
    mean = mean_row(rows)
    assert mean['objects'] == 2 and mean['of'] == 3
    assert mean['accuracy_0.1d'] == pytest.approx(0.6)  # not (0.4 + 0.8 + 0) / 3
    assert mean['median_rotation_deg'] == pytest.approx(2.0)  # NaN left out
    assert mean_row([object_row('ape', 'ADD')])['accuracy_0.1d'] is None


def test_table_names_no_model_rows_the_mean_and_the_published_training_data():
    rows = [object_row('ape', 'ADD'), object_row('driller', 'ADD', summary(0.445), 'a.json')]
    text = objects_table(rows, mean_row(rows), 200, 'synthetic renders only')
    lines = text.splitlines()
    assert lines[1].split() == ['ape', 'ADD', 'no', 'model']
    assert '44.5%' in lines[2] and lines[4].startswith('mean (1 of 2)')
    assert 'trained on synthetic renders only' in text
    for method, _, accuracy, data in PUBLISHED_LMO:
        line = next(line for line in lines if line.split()[:1] == [method])
        assert f'{accuracy:.1f}%' in line and f'trained on {data}' in line
    assert [entry['add_s_0.1d_accuracy'] for entry in published_json()] == pytest.approx(
        np.array([24.9, 40.8, 47.5, 56.1, 76.9]) / 100)


def test_an_unreadable_photo_is_named_in_a_clear_error(tmp_path):
    broken = tmp_path / 'frame.png'
    broken.write_bytes(b'not an image')
    frame = EvalFrame('frame', broken, np.eye(3))
    with pytest.raises(ValueError, match='frame.png: cannot be read as an image'):
        evaluate_frames(estimator=None, frames=[frame], object_names=[], points={})
