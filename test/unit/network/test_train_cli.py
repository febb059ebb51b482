"""`pose-kp train` end to end on a tiny dataset, then `--resume` continues at the right epoch."""

import json
import os
from pathlib import Path

import pytest
import yaml

from pose_kp_ros.network.checkpoint import load_checkpoint
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.tools.train import load_config
from pose_kp_ros.tools.training_common import EpochSampler, TrainConfigError, learning_rate


def write_config(path, dataset, **extra):
    config = {'datasets': str(dataset), 'val_fraction': 0.25, 'output_dir': 'run',
              'preset': 'cpu', 'epochs': 1, 'batch_size': 4, 'workers': 0, 'seed': 1, 'threads': 1,
              'architecture': {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 32},
              **extra}
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_then_resume(kite_dataset, tmp_path, capsys):
    config = write_config(tmp_path / 'train.yaml', kite_dataset)
    assert cli_main(['train', '--config', str(config), '--device', 'cpu']) == 0
    run = tmp_path / 'run'
    assert {p.name for p in run.iterdir()} >= {'last.pt', 'best.pt', 'metrics.json',
                                               'training_curves.png'}
    history = json.loads((run / 'metrics.json').read_text())
    assert [h['epoch'] for h in history] == [1]
    for key in ('train_loss', 'val_loss', 'val_mean_error_px', 'val_pck@0.05', 'val_pck@0.1'):
        assert history[0][key] >= 0
    # Without --resume an existing run is not overwritten.
    assert cli_main(['train', '--config', str(config)]) == 2
    assert 'pass --resume' in capsys.readouterr().err
    assert cli_main(['train', '--config', str(config), '--resume', '--epochs', '2']) == 0
    history = json.loads((run / 'metrics.json').read_text())
    assert [h['epoch'] for h in history] == [1, 2]
    checkpoint = load_checkpoint(run / 'last.pt', ['tip', 'left', 'tail', 'right', 'centre'],
                                 'kite')
    assert checkpoint.meta['epoch'] == 2 and checkpoint.training['batches_done'] == 0
    assert checkpoint.meta['training_config']['epochs'] == 2
    assert checkpoint.meta['heatmap_size'] == 16 and checkpoint.meta['preset'] == 'cpu'
    # Paths are recorded relative to the config file's folder, not as absolute paths.
    recorded = checkpoint.meta['training_config']
    assert recorded['output_dir'] == 'run'
    assert recorded['datasets'] == [os.path.relpath(kite_dataset, tmp_path)]
    assert not Path(recorded['config_file']).is_absolute()
    assert (Path.cwd() / recorded['config_file']).resolve() == config.resolve()


def test_config_errors(tmp_path, kite_dataset):
    with pytest.raises(TrainConfigError, match='unknown keys'):
        load_config(write_config(tmp_path / 'a.yaml', kite_dataset, epoch=3))
    (tmp_path / 'b.yaml').write_text('datasets: x\n')
    with pytest.raises(TrainConfigError, match="missing required key 'output_dir'"):
        load_config(tmp_path / 'b.yaml')
    bad_data = write_config(tmp_path / 'c.yaml', tmp_path / 'nowhere')
    assert cli_main(['train', '--config', str(bad_data)]) == 2


def test_learning_rate_schedules():
    config = {'lr': 1.0, 'warmup_epochs': 1, 'epochs': 11, 'lr_schedule': 'cosine',
              'min_lr_fraction': 0.0, 'lr_milestones': [5], 'lr_gamma': 0.1}
    assert learning_rate(config, 0) == 0.5
    assert learning_rate(config, 1) == 1.0
    assert learning_rate(config, 6) == pytest.approx(0.5)
    assert learning_rate({**config, 'lr_schedule': 'step'}, 6) == pytest.approx(0.1)


def test_sampler_shards_cover_everything_and_skip():
    shards = [EpochSampler(10, seed=0, rank=r, world_size=3) for r in range(3)]
    for shard in shards:
        shard.set_epoch(4)
    indices = [i for shard in shards for i in shard]
    assert len(indices) == 12 and set(indices) == set(range(10))
    single = EpochSampler(10, seed=0)
    single.set_epoch(4)
    order = list(single)
    single.set_epoch(4, skip=6)
    assert list(single) == order[6:] and len(single) == 4


def test_init_weights_fine_tunes_from_a_checkpoint(kite_dataset, tmp_path, capsys):
    first = write_config(tmp_path / 'first.yaml', kite_dataset)
    assert cli_main(['train', '--config', str(first), '--device', 'cpu']) == 0
    start = tmp_path / 'run' / 'best.pt'
    import torch

    from pose_kp_ros.tools.train import Trainer
    config = load_config(write_config(tmp_path / 'second.yaml', kite_dataset,
                                      output_dir='run2', init_weights=str(start)))
    trainer = Trainer(config, torch.device('cpu'), 0, 1)
    expected = load_checkpoint(start).model.state_dict()
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert trainer.epoch == 0 and trainer.history == []
    # Another architecture is refused with the file named.
    other = write_config(tmp_path / 'third.yaml', kite_dataset, output_dir='run3',
                         init_weights=str(start),
                         architecture={'num_stacks': 1, 'features': 16, 'depth': 2,
                                       'input_size': 32})
    assert cli_main(['train', '--config', str(other), '--device', 'cpu']) == 2
    assert 'best.pt: architecture' in capsys.readouterr().err
    # Only another heatmap stride: the weights are transferred, every tensor unchanged.
    coarse = load_config(write_config(tmp_path / 'fourth.yaml', kite_dataset, output_dir='run4',
                                      init_weights=str(start),
                                      architecture={'num_stacks': 2, 'features': 16,
                                                    'depth': 2, 'input_size': 32,
                                                    'heatmap_stride': 4}))
    trainer = Trainer(coarse, torch.device('cpu'), 0, 1)
    assert trainer.net_config.heatmap_size == 8
    assert sorted(t.sum().item() for t in trainer.model.state_dict().values()) == sorted(
        t.sum().item() for t in expected.values())


def test_mask_head_trains_from_a_plain_checkpoint_and_reports_its_iou(kite_dataset, tmp_path):
    import torch

    from pose_kp_ros.tools.train import Trainer
    plain = write_config(tmp_path / 'plain.yaml', kite_dataset)
    assert cli_main(['train', '--config', str(plain), '--device', 'cpu']) == 0
    start = tmp_path / 'run' / 'best.pt'
    architecture = {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 32,
                    'visible_mask': True}
    masked = write_config(tmp_path / 'masked.yaml', kite_dataset, output_dir='masked',
                          init_weights=str(start), architecture=architecture)
    trainer = Trainer(load_config(masked), torch.device('cpu'), 0, 1)
    expected = load_checkpoint(start).model.state_dict()
    for name, tensor in trainer.model.state_dict().items():  # all but the new head carried over
        assert name.startswith('to_mask.') or torch.equal(tensor, expected[name]), name
    assert cli_main(['train', '--config', str(masked), '--device', 'cpu']) == 0
    history = json.loads((tmp_path / 'masked' / 'metrics.json').read_text())
    assert 0.0 <= history[0]['val_mask_iou'] <= 1.0
    assert history[0]['train_mask_loss'] > 0 and history[0]['train_heatmap_loss'] > 0
    checkpoint = load_checkpoint(tmp_path / 'masked' / 'best.pt')
    assert checkpoint.meta['architecture']['visible_mask'] is True


def test_mask_loss_counts_only_samples_with_a_mask():
    import torch

    from pose_kp_ros.tools.train import mask_loss
    targets = torch.zeros(2, 4, 4)
    targets[:, :2] = 1.0
    right = torch.where(targets > 0.5, 8.0, -8.0)
    wrong = -right
    assert mask_loss(right, targets, torch.ones(2)) < 0.01 < mask_loss(wrong, targets,
                                                                       torch.ones(2))
    both = torch.stack([right[0], wrong[1]])
    torch.testing.assert_close(mask_loss(both, targets, torch.tensor([1.0, 0.0])),
                               mask_loss(right, targets, torch.ones(2)))
