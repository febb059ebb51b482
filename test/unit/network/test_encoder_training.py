"""Training with a pretrained encoder: ImageNet start, freezing schedule, loss and overrides."""

import pytest
import torch
import yaml

from pose_kp_ros.network.checkpoint import load_checkpoint
from pose_kp_ros.network.mobilenet_v2 import imagenet_weights_path
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.training.config import TrainConfigError, parse_overrides
from pose_kp_ros.training.keypoint_training import KeypointTrainer, load_config
from pose_kp_ros.training.losses import heatmap_loss

KITE = ['tip', 'left', 'tail', 'right', 'centre']


def write_config(path, dataset, **extra):
    config = {'datasets': str(dataset), 'val_fraction': 0.25, 'output_dir': 'run',
              'preset': 'mobilenet', 'epochs': 1, 'batch_size': 4, 'workers': 0, 'seed': 1,
              'threads': 1, 'imagenet': True,
              'architecture': {'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 32},
              **extra}
    path.write_text(yaml.safe_dump(config))
    return path


def batch_norm_modes(module):
    return {m.training for m in module.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}


def test_schedule_freezes_the_encoder_then_its_first_blocks(kite_dataset, tmp_path):
    config = load_config(write_config(tmp_path / 'a.yaml', kite_dataset,
                                      encoder_warmup_epochs=1, frozen_encoder_blocks=3))
    trainer = KeypointTrainer(config, torch.device('cpu'), 0, 1)
    blocks = trainer.model.encoder.features
    trainer.model.train()
    trainer.apply_encoder_schedule()          # epoch 0: head only
    assert not any(p.requires_grad for p in blocks.parameters())
    assert batch_norm_modes(blocks) == {False}
    assert all(p.requires_grad for p in trainer.model.hourglasses.parameters())
    assert batch_norm_modes(trainer.model.hourglasses) == {True}
    trainer.epoch = 1
    trainer.model.train()
    trainer.apply_encoder_schedule()          # then blocks 3.. train, 0-2 stay frozen
    for index, block in enumerate(blocks):
        assert all(p.requires_grad == (index >= 3) for p in block.parameters()), index
        assert batch_norm_modes(block) == {index >= 3}, index


def test_frozen_batch_norm_statistics_and_encoder_learning_rate(kite_dataset, tmp_path):
    config = load_config(write_config(tmp_path / 'b.yaml', kite_dataset, encoder_bn='frozen',
                                      encoder_lr_scale=0.25, lr=0.004,
                                      warmup_epochs=0, lr_schedule='constant'))
    trainer = KeypointTrainer(config, torch.device('cpu'), 0, 1)
    trainer.model.train()
    trainer.apply_encoder_schedule()
    assert batch_norm_modes(trainer.model.encoder) == {False}
    assert all(p.requires_grad for p in trainer.model.encoder.parameters())
    trainer.train_epoch()
    scales = sorted(group['lr'] for group in trainer.optimizer.param_groups)
    assert scales == pytest.approx([0.001, 0.004])


def test_cosine_learning_rate_decays_batch_by_batch(kite_dataset, tmp_path):
    config = load_config(write_config(tmp_path / 'd.yaml', kite_dataset, lr=0.004, batch_size=2,
                                      warmup_epochs=0, min_lr_fraction=0.0,
                                      encoder_lr_scale=0.25))
    trainer = KeypointTrainer(config, torch.device('cpu'), 0, 1)
    step, used = trainer.optimizer.step, []

    def recording_step(*args, **kwargs):
        used.append([group['lr'] for group in trainer.optimizer.param_groups])
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    _, epoch_lr = trainer.train_epoch()
    heads = [max(rates) for rates in used]
    assert len(heads) >= 3 and epoch_lr == heads[0] == pytest.approx(0.004)
    assert all(a > b for a, b in zip(heads, heads[1:]))      # one epoch: the whole cosine
    assert all(min(rates) == pytest.approx(0.25 * max(rates)) for rates in used)  # encoder


def test_training_keeps_frozen_blocks_at_their_imagenet_weights(kite_dataset, tmp_path):
    """End to end through the CLI with --set: frozen blocks keep the ImageNet values.

    Their batch-norm statistics stay too; the trained blocks move.
    """
    path = write_config(tmp_path / 'c.yaml', kite_dataset)
    assert cli_main(['train', '--config', str(path), '--device', 'cpu',
                     '--set', 'frozen_encoder_blocks=5', '--set', 'output_dir=run_set']) == 0
    checkpoint = load_checkpoint(tmp_path / 'run_set' / 'last.pt', KITE, 'kite')
    assert checkpoint.meta['training_config']['frozen_encoder_blocks'] == 5
    imagenet = torch.load(imagenet_weights_path(), map_location='cpu', weights_only=True)
    trained = checkpoint.model.encoder.state_dict()
    for name, tensor in trained.items():
        block = int(name.split('.')[1])
        if block < 5:
            assert torch.equal(tensor, imagenet[name]), name
    moved = [name for name in trained if int(name.split('.')[1]) >= 5
             and name.endswith('weight') and not torch.equal(trained[name], imagenet[name])]
    assert moved


def test_imagenet_needs_an_encoder(kite_dataset, tmp_path, capsys):
    path = write_config(tmp_path / 'd.yaml', kite_dataset, preset='cpu',
                        architecture={'num_stacks': 1, 'features': 16, 'depth': 2,
                                      'input_size': 32})
    assert cli_main(['train', '--config', str(path), '--device', 'cpu']) == 2
    assert 'needs a pretrained encoder' in capsys.readouterr().err


def test_overrides_and_their_errors(kite_dataset, tmp_path):
    assert parse_overrides(['epochs=3', 'scale=[1, 2]', 'name=a=b']) == {
        'epochs': 3, 'scale': [1, 2], 'name': 'a=b'}
    with pytest.raises(TrainConfigError, match='KEY=VALUE'):
        parse_overrides(['epochs'])
    path = write_config(tmp_path / 'e.yaml', kite_dataset)
    with pytest.raises(TrainConfigError, match='encoder_bn'):
        load_config(path, overrides={'encoder_bn': 'sometimes'})
    with pytest.raises(TrainConfigError, match='unknown keys'):
        load_config(path, overrides={'encoder_layers': 3})
    config = load_config(path, overrides={'output_dir': 'elsewhere'})
    assert config['output_dir'] == str((tmp_path / 'elsewhere').resolve())


def test_foreground_weight_counts_pixels_near_keypoints_more():
    targets = torch.zeros(1, 1, 8, 8)
    targets[0, 0, 4, 4] = 1.0
    zeros = [torch.zeros_like(targets)]
    weights = torch.ones(1, 1)
    plain = heatmap_loss(zeros, targets, weights)
    assert plain == pytest.approx(1 / 64)
    assert heatmap_loss(zeros, targets, weights, foreground_weight=9.0) == pytest.approx(10 / 64)
    assert heatmap_loss([targets], targets, weights, foreground_weight=9.0) == 0
