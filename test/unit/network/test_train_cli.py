"""`pose-kp train` end to end on a tiny dataset, then `--resume` continues at the right epoch."""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from pose_kp_ros.network.checkpoint import load_checkpoint
from pose_kp_ros.tools.cli import main as cli_main
from pose_kp_ros.training.config import TrainConfigError, learning_rate
from pose_kp_ros.training.distributed import EpochSampler, autocast_dtype
from pose_kp_ros.training.keypoint_training import load_config


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
    assert learning_rate(config, 0.5) == 0.75                       # within an epoch too
    assert learning_rate(config, 6) > learning_rate(config, 6.5) > learning_rate(config, 7)
    assert learning_rate(config, 11) == pytest.approx(0.0)           # the last epoch's end


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

    from pose_kp_ros.training.keypoint_training import KeypointTrainer
    config = load_config(write_config(tmp_path / 'second.yaml', kite_dataset,
                                      output_dir='run2', init_weights=str(start)))
    trainer = KeypointTrainer(config, torch.device('cpu'), 0, 1)
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
    trainer = KeypointTrainer(coarse, torch.device('cpu'), 0, 1)
    assert trainer.net_config.heatmap_size == 8
    # (contiguous: the trainer's weights are channels-last, which sums in another order)
    assert sorted(t.contiguous().sum().item() for t in trainer.model.state_dict().values()) == \
        sorted(t.contiguous().sum().item() for t in expected.values())
    # A network of the keypoints in another order (as another object's network would share
    # only some): the trunk whole, each heatmap from its own keypoint's channel.
    data = torch.load(start, weights_only=True)
    names = data['meta']['keypoint_names']
    data['meta']['keypoint_names'] = names[::-1]
    torch.save(data, tmp_path / 'reversed.pt')
    trainer = KeypointTrainer(load_config(write_config(
        tmp_path / 'fifth.yaml', kite_dataset, output_dir='run5',
        init_weights=str(tmp_path / 'reversed.pt'))), torch.device('cpu'), 0, 1)
    weights = trainer.model.state_dict()
    for name in ('to_heatmaps.0.weight', 'to_heatmaps.1.bias', 'merge_heatmaps.0.weight'):
        dimension = 1 if name.startswith('merge') else 0
        assert torch.equal(weights[name], expected[name].flip(dimension)), name
    assert torch.equal(weights['stem.0.weight'], expected['stem.0.weight'])



def test_a_teacher_network_mixes_its_heatmaps_into_the_targets(kite_dataset, tmp_path):
    """Distillation: targets (1 - w) x rendered Gaussians + w x the teacher's final heatmaps."""
    import torch

    from pose_kp_ros.network.checkpoint import load_model
    from pose_kp_ros.training.keypoint_training import KeypointTrainer
    from pose_kp_ros.training.losses import heatmap_loss
    first = write_config(tmp_path / 'first.yaml', kite_dataset)
    assert cli_main(['train', '--config', str(first), '--device', 'cpu']) == 0
    teacher_path = tmp_path / 'run' / 'best.pt'
    teacher, _ = load_model(teacher_path)
    batch = next(iter(torch.utils.data.DataLoader(
        KeypointTrainer(load_config(write_config(tmp_path / 'plain.yaml', kite_dataset,
                                                 output_dir='plain')),
                        torch.device('cpu'), 0, 1).val_set, batch_size=4)))
    outputs = [torch.rand_like(batch['heatmaps']) for _ in range(2)]
    with torch.no_grad():
        taught = teacher(batch['image'])
    assert not torch.allclose(taught, batch['heatmaps'], atol=1e-3)  # the test can tell them apart
    for share in (0.0, 0.5, 1.0):
        trainer = KeypointTrainer(load_config(write_config(
            tmp_path / f'student{share}.yaml', kite_dataset, output_dir=f'student{share}',
            teacher=str(teacher_path), teacher_weight=share)), torch.device('cpu'), 0, 1)
        expected = heatmap_loss(outputs, (1 - share) * batch['heatmaps'] + share * taught,
                                batch['weights'])
        assert torch.allclose(trainer.loss(outputs, batch)[0], expected, rtol=1e-5), share
    # A teacher of other crop or heatmap sizes is refused, naming what differs.
    with pytest.raises(TrainConfigError, match='input_size'):
        KeypointTrainer(load_config(write_config(
            tmp_path / 'other.yaml', kite_dataset, output_dir='other', teacher=str(teacher_path),
            architecture={'num_stacks': 2, 'features': 16, 'depth': 2, 'input_size': 64})),
            torch.device('cpu'), 0, 1)
    with pytest.raises(TrainConfigError, match='teacher_weight'):
        load_config(write_config(tmp_path / 'weight.yaml', kite_dataset, teacher_weight=1.5))




MODELS = Path(__file__).resolve().parents[3] / 'models'
RECIPES = sorted(f'{p.parent.parent.name}/{p.name}' for p in MODELS.glob('*/recipe/*.yaml'))
LMO_OBJECTS = ['ape', 'can', 'cat', 'driller', 'duck', 'eggbox', 'glue', 'holepuncher']


@pytest.mark.parametrize('name', RECIPES)
def test_the_shipped_models_recipe_loads_with_its_paths_in_the_repository(name):
    """The stage configs beside models/<model> name the repository's objects, data and runs."""
    from pose_kp_ros.training import detector_training, keypoint_training
    model, file = name.split('/')
    trainer = detector_training if 'detector' in file else keypoint_training
    config = trainer.load_config(MODELS / model / 'recipe' / file)
    root = MODELS.parent
    folders = [*config['datasets'], *config['val_datasets'], config['output_dir']]
    assert {Path(p).relative_to(root).parts[0] for p in folders} <= {'data', 'runs'}, folders
    if config['init_weights']:  # a run of the recipe before it, or a shipped model
        start = Path(config['init_weights']).relative_to(root)
        assert start.parts[0] == 'runs' or (root / start).is_file(), start
    if trainer is keypoint_training:
        objects = [config['object']] if config['object'] else config['objects']
        expected = ['driller'] if model == 'driller' else LMO_OBJECTS
        assert [Path(o) for o in objects] == [root / 'objects' / f'{o}.yaml' for o in expected]
        if config['teacher']:  # the distilling stages' teacher ships beside them
            assert Path(config['teacher']).is_file(), config['teacher']


def test_mixed_precision_is_bfloat16_on_cpus_that_have_it_and_trains_like_float32(
        kite_dataset, tmp_path):
    native_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    cpu = torch.device('cpu')
    assert autocast_dtype(False, cpu) is None
    assert autocast_dtype(False, torch.device('cuda')) is None
    assert autocast_dtype(True, torch.device('cuda')) == torch.float16
    assert autocast_dtype(True, cpu) == (torch.bfloat16 if native_bf16 else None)
    losses = {}
    for amp in (False, True):
        config = write_config(tmp_path / f'amp_{amp}.yaml', kite_dataset, amp=amp,
                              output_dir=f'run_{amp}')
        assert cli_main(['train', '--config', str(config), '--device', 'cpu']) == 0
        history = json.loads((tmp_path / f'run_{amp}' / 'metrics.json').read_text())
        losses[amp] = history[0]['train_loss']
    # Same seed, data and steps: the bfloat16 run's loss follows float32's within a few percent,
    # and differs from it at all only where the CPU computes bfloat16.
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
    assert (losses[True] != losses[False]) == native_bf16
