"""`pose-kp train`: train a stacked-hourglass keypoint network from a YAML config.

    pose-kp train --config config/train_example.yaml [--resume] [--epochs N]
                  [--device auto|cpu|cuda]
    torchrun --nproc_per_node 4 -m pose_kp_ros.tools.train --config ...   # multi-GPU (DDP)

Writes into the config's output_dir: last.pt (every epoch and every save_every_minutes, atomic),
best.pt (best validation PCK@0.1), metrics.json (one entry per epoch) and training_curves.png.
See docs/training.md for the config keys.
"""

from collections.abc import Sequence
import sys

from pose_kp_ros.network.hourglass import HourglassConfigError
from pose_kp_ros.network.mobilenet_v2 import PretrainedWeightsError
from pose_kp_ros.training.cli import run_training_cli
from pose_kp_ros.training.keypoint_training import KeypointTrainer, load_config


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pose-kp train`; return the exit code."""
    return run_training_cli(argv, KeypointTrainer, load_config, 'pose-kp train',
                            __doc__.split('\n')[0], 'training config YAML',
                            (HourglassConfigError, PretrainedWeightsError))


if __name__ == '__main__':
    sys.exit(main())
