"""The command line shared by `pose-kp train` and `pose-kp train-detector`."""

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
import sys

import torch.distributed as dist

from pose_kp_ros.network.checkpoint_format import CheckpointError
from pose_kp_ros.training.config import TrainConfigError, parse_overrides
from pose_kp_ros.training.distributed import distributed_setup, set_cpu_threads
from pose_kp_ros.training.epoch_loop import EpochTrainer
from pose_kp_ros.training.records import DatasetError


def run_training_cli(argv: Sequence[str] | None, trainer_class: type[EpochTrainer],
                     load_config: Callable[[str, int | None, dict], dict], prog: str,
                     description: str, config_help: str,
                     errors: tuple[type[Exception], ...] = ()) -> int:
    """Parse the command line of a training tool, train, and return the exit code.

    Args:
        argv: the arguments (None: sys.argv[1:]).
        trainer_class: the task's EpochTrainer subclass.
        load_config: function (config path, epochs or None, overrides) -> config dict.
        prog, description, config_help: the tool's name, help line and --config help.
        errors: the task's exception types that end the run with exit code 2, besides
            TrainConfigError, DatasetError and CheckpointError.

    Returns:
        0 when done, 2 on a config/data/checkpoint error, 130 on Ctrl-C.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument('--config', required=True, help=config_help)
    parser.add_argument('--resume', action='store_true',
                        help="continue from output_dir's last.pt (fresh start if none)")
    parser.add_argument('--epochs', type=int, help='total epochs (overrides the config)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    parser.add_argument('--set', action='append', metavar='KEY=VALUE', default=[],
                        help='replace a config key (value as YAML), e.g. --set '
                             'output_dir=../runs/x --set frozen_encoder_blocks=7; repeatable')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.epochs, parse_overrides(args.set))
        rank, world_size, device = distributed_setup(args.device)
        if device.type == 'cpu':
            set_cpu_threads(config['threads'])
        trainer = trainer_class(config, device, rank, world_size)
        last = Path(config['output_dir']) / 'last.pt'
        if args.resume:
            if trainer.resume():
                print(f'resuming from {last}: epoch {trainer.epoch}, batch '
                      f'{trainer.batches_done}', file=sys.stderr)
            else:
                print(f'no {last} yet: starting from epoch 0', file=sys.stderr)
        elif last.exists():
            raise TrainConfigError(f'{last} exists: pass --resume to continue, or choose '
                                   f'another output_dir')
        if rank == 0:
            print(f'{trainer.describe()}, device {device}, world size {world_size}',
                  file=sys.stderr)
        trainer.run()
    except (TrainConfigError, DatasetError, CheckpointError, *errors) as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted; continue with --resume from the last saved last.pt',
              file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
