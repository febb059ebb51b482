"""benchmarks/select_epoch.py: the choice of epoch and thresholds, and what it writes.

eval-lmo and the export are replaced by fakes here (the whole chain, with the real pipeline,
runs in scripts/offline_gpu/train_and_select.sh; docs/training.md has its CPU dry run).
"""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def select_epoch(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))
    import select_epoch
    return select_epoch


def fake_accuracy(config_path, boxes):
    """ADD of a pipeline config: epoch 2 best, then max_reprojection 30 with power 8."""
    config = yaml.safe_load(Path(config_path).read_text())
    model = Path(config['objects'][0]['keypoint_model']).name
    reprojection = config['thresholds']['max_reprojection_error_px']
    power = config['solver']['confidence_power']
    epoch_bonus = {'epoch_002.pt': 0.2, 'epoch_003.pt': 0.1}.get(model, 0.0)
    detector_cost = 0.05 if boxes == 'detector' else 0.0
    return 0.3 + epoch_bonus - detector_cost + reprojection / 1000 + (power == 8) * 0.01


def test_chooses_epoch_then_thresholds_and_writes_the_pipeline(select_epoch, monkeypatch,
                                                               tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    for epoch in (1, 2, 3):
        (run / f'epoch_{epoch:03d}.pt').write_bytes(b'weights')
    (run / 'metrics.json').write_text(json.dumps(
        [{'epoch': e, 'val_pck@0.1': 0.9, 'foreground_weight': w, 'val_mean_error_px': 5.0}
         for e, w in ((1, 20.0), (2, 20.0), (3, 0.0))]))
    calls = []

    def evaluate(config, data, boxes, renders, frames, folder, **options):
        calls.append((Path(config).name, data, boxes, options.get('reuse', False)))
        accuracy = fake_accuracy(config, boxes)
        return {'add_0.1d_accuracy': accuracy, 'detection_rate': accuracy + 0.1,
                'frames': frames}

    def export_onnx(checkpoint, onnx):
        Path(onnx).write_bytes(Path(checkpoint).read_bytes())

    monkeypatch.setattr(select_epoch, 'evaluate', evaluate)
    monkeypatch.setattr(select_epoch, 'export_onnx', export_onnx)
    # The default pipeline's pair comes first in the grid: fixed here, whatever the shipped one.
    monkeypatch.setattr(select_epoch, 'default_thresholds', lambda: (12.0, 4.0))
    assert select_epoch.main(['--run', str(run), '--last', '2', '--frames', '5', '--jobs', '2',
                              '--max-reprojection', '12', '30', '--confidence-power', '4', '8',
                              '--lmo', 'no']) == 0
    out = run / 'selection'
    result = json.loads((out / 'selection.json').read_text())
    assert [row['epoch'] for row in result['epochs']] == [2, 3]
    assert result['epochs'][1]['foreground_weight'] == 0.0
    assert result['chosen'] == {'epoch': 2, 'max_reprojection_error_px': 30.0,
                                'confidence_power': 8.0}
    assert [(r['max_reprojection_error_px'], r['confidence_power']) for r in result['grid']] \
        == [(12.0, 4.0), (12.0, 8.0), (30.0, 4.0), (30.0, 8.0)]
    assert result['grid'][0]['renders_detector_wrong'] == pytest.approx(0.1)
    assert set(result['final']) == {'renders_ground-truth', 'renders_detector'}
    assert result['keypoint_model'] == 'keypoints.onnx' and result['export_error'] is None
    # Epochs and grid only on renders and reused on a rerun; the default pair is not run twice.
    assert {data for _, data, _, _ in calls} == {'renders'}
    grid_runs = [name for name, _, boxes, reuse in calls if reuse and boxes == 'detector']
    assert sorted(grid_runs) == ['e002_r12_p4.yaml', 'e002_r12_p8.yaml', 'e002_r30_p4.yaml',
                                 'e002_r30_p8.yaml', 'e003_r12_p4.yaml']
    # The kept pipeline config names its files relative to itself, with the chosen thresholds.
    config = yaml.safe_load((out / 'pipeline.yaml').read_text())
    assert config['objects'][0]['keypoint_model'] == 'keypoints.onnx'
    assert (out / config['objects'][0]['object']).resolve() == ROOT / 'objects' / 'driller.yaml'
    assert (out / config['detector']).resolve() == ROOT / 'models' / 'driller' / 'detector.onnx'
    assert config['thresholds']['max_reprojection_error_px'] == 30.0
    assert config['solver']['confidence_power'] == 8.0
    assert (out / 'keypoints.pt').read_bytes() == b'weights'


def test_ties_prefer_the_later_epoch_and_the_earlier_grid_pair(select_epoch):
    rows = [{'name': n, 'renders_ground-truth': 0.5, 'renders_detector': 0.4} for n in 'abc']
    assert select_epoch.choose(rows, prefer_last=True)['name'] == 'c'
    assert select_epoch.choose(rows, prefer_last=False)['name'] == 'a'
