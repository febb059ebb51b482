"""`pose-kp train-detector`: train the full-image CenterNet detector from a YAML config.

    pose-kp train-detector --config config/train_detector_example.yaml [--resume] [--epochs N]
                           [--device auto|cpu|cuda]
    torchrun --nproc_per_node 4 -m pose_kp_ros.tools.train_detector --config ...   # multi-GPU

Reads one or several dataset folders (docs/dataset_format.md), possibly of different objects:
the classes are every object they list, in the order they list them (first folder first; the
heatmap order the checkpoint's `class_names` records). Each image is a sample; its instances'
`box_xyxy` are the targets. Writes into the config's output_dir: last.pt (every epoch and every
save_every_minutes, atomic), best.pt (best validation AP@0.5), metrics.json and
training_curves.png. See docs/detector.md for the config keys.
"""

from collections.abc import Sequence
import sys

from pose_kp_ros.network.detector_model import DetectorConfigError
from pose_kp_ros.network.mobilenet_v2 import PretrainedWeightsError
from pose_kp_ros.training.cli import run_training_cli
from pose_kp_ros.training.detector_training import DetectorTrainer, load_config


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pose-kp train-detector`; return the exit code."""
    return run_training_cli(argv, DetectorTrainer, load_config, 'pose-kp train-detector',
                            __doc__.split('\n')[0], 'detector training config YAML',
                            (DetectorConfigError, PretrainedWeightsError))


if __name__ == '__main__':
    sys.exit(main())
