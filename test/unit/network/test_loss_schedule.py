"""The loss schedule (plain_mse_last_epochs) and the per-epoch checkpoints of a training run."""

import json

import pytest
import torch
import yaml

from pose_kp_ros.network.checkpoint import load_checkpoint
from pose_kp_ros.network.checkpoint_format import read_checkpoint_file
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.training.config import TrainConfigError
from pose_kp_ros.training.epoch_loop import epoch_checkpoints
from pose_kp_ros.training.keypoint_training import (
    KeypointTrainer,
    epoch_foreground_weight,
    load_config,
)
from pose_kp_ros.training.losses import heatmap_loss

TINY = {'preset': 'cpu', 'batch_size': 4, 'workers': 0, 'seed': 3, 'threads': 1,
        'val_fraction': 0.25, 'foreground_weight': 20.0,
        'architecture': {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 32}}


def tiny_config(folder, dataset, **keys):
    path = folder / 'schedule.yaml'
    path.write_text(yaml.safe_dump({**TINY, 'datasets': str(dataset), 'output_dir': 'run',
                                    **keys}))
    return path


def test_the_last_epochs_train_with_plain_squared_error():
    config = {'epochs': 6, 'plain_mse_last_epochs': 2, 'foreground_weight': 20.0}
    assert [epoch_foreground_weight(config, e) for e in range(6)] == [20.0] * 4 + [0.0] * 2
    config['plain_mse_last_epochs'] = 0
    assert [epoch_foreground_weight(config, e) for e in range(6)] == [20.0] * 6


def test_the_trainer_loss_follows_its_epoch(kite_dataset, tmp_path):
    config = load_config(tiny_config(tmp_path, kite_dataset, epochs=3,
                                     plain_mse_last_epochs=1))
    trainer = KeypointTrainer(config, torch.device('cpu'), 0, 1)
    batch = next(iter(torch.utils.data.DataLoader(trainer.val_set, batch_size=4)))
    outputs = [torch.rand_like(batch['heatmaps']) for _ in range(2)]
    weighted = heatmap_loss(outputs, batch['heatmaps'], batch['weights'], 20.0)
    plain = heatmap_loss(outputs, batch['heatmaps'], batch['weights'], 0.0)
    assert weighted > plain
    for epoch, expected in ((0, weighted), (1, weighted), (2, plain)):
        trainer.epoch = epoch
        assert trainer.loss(outputs, batch)[0] == pytest.approx(expected.item()), epoch


def test_resume_decides_by_epoch_and_keeps_the_last_epoch_checkpoints(kite_dataset, tmp_path):
    config = tiny_config(tmp_path, kite_dataset, epochs=2, plain_mse_last_epochs=1,
                         keep_epoch_checkpoints=2)
    assert cli_main(['train', '--config', str(config), '--device', 'cpu']) == 0
    run = tmp_path / 'run'
    assert list(epoch_checkpoints(run)) == [1, 2]
    # Extended with --resume: the plain epoch moves to the new end, epochs 1 and 2 stay as run.
    assert cli_main(['train', '--config', str(config), '--device', 'cpu', '--resume',
                     '--epochs', '4']) == 0
    history = json.loads((run / 'metrics.json').read_text())
    assert [h['foreground_weight'] for h in history] == [20.0, 0.0, 20.0, 0.0]
    kept = epoch_checkpoints(run)
    assert list(kept) == [3, 4] and kept[4].name == 'epoch_004.pt'
    assert read_checkpoint_file(kept[3])['training'] is None
    checkpoint = load_checkpoint(kept[4], ['tip', 'left', 'tail', 'right', 'centre'], 'kite')
    assert checkpoint.meta['epoch'] == 4
    assert checkpoint.meta['training_config']['plain_mse_last_epochs'] == 1


@pytest.mark.parametrize('key', ['plain_mse_last_epochs', 'keep_epoch_checkpoints'])
def test_schedule_keys_are_counts(kite_dataset, tmp_path, key):
    with pytest.raises(TrainConfigError, match=key):
        load_config(tiny_config(tmp_path, kite_dataset, **{key: -1}))
