"""The `pose-kp` command: one entry point, one sub-command per tool module.

Each tool module exposes `main(argv: list[str] | None) -> int`; modules are imported only when
their sub-command runs, so `pose-kp --help` is fast and light.
"""

from collections.abc import Sequence
import importlib
import sys

SUBCOMMANDS = {
    'train': ('pose_kp_ros.tools.train', 'train a keypoint network from a YAML config'),
    'train-detector': ('pose_kp_ros.tools.train_detector',
                       'train the full-image object detector from a YAML config'),
    'export': ('pose_kp_ros.tools.export_model',
               'export a checkpoint to ONNX (.onnx) or torch.export (.pt2)'),
    'new-object': ('pose_kp_ros.tools.new_object',
                   'make an object model YAML from a mesh (keypoints, diameter)'),
    'render': ('pose_kp_ros.tools.render', 'render synthetic training images of an object'),
    'build-shape-basis': ('pose_kp_ros.tools.build_shape_basis',
                          'build a PCA shape basis from keypoint sets of one category'),
    'eval-lmo': ('pose_kp_ros.tools.eval_lmo',
                 'evaluate the image pipeline on the 200 real LM-O photos'),
    'demo': ('pose_kp_ros.tools.demo',
             'live demo: LM-O photos -> pose node -> evaluator, over DDS'),
}


def usage() -> str:
    """Return the help text listing sub-commands."""
    lines = ['usage: pose-kp <command> [options]', '', 'commands:']
    for name, (_, help_text) in SUBCOMMANDS.items():
        lines.append(f'  {name:<20} {help_text}')
    lines.append('')
    lines.append("Run 'pose-kp <command> --help' for a command's options.")
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command of `pose-kp` and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"pose-kp: unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return module.main(rest) or 0


if __name__ == '__main__':
    sys.exit(main())
