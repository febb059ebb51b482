"""The ROS graphs this package starts, as plain data: one place for launch files and scripts.

`launch/*.launch.py` turn these NodeSpecs into launch_ros Node actions (`ros2 launch`); where
`ros2 launch` does not exist (ROS from PyPI wheels), `pose-kp demo` (pose_kp_ros.tools.demo)
starts the same executables with the same parameter files and remappings as processes. Tests
check every spec against the installed package (executables in lib/pose_kp_ros, files in
share/pose_kp_ros).
"""

from dataclasses import dataclass
from pathlib import Path

from pose_kp_ros.data.package_data import lmo_object_names
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.paths import data_path, default_pipeline_config, portable_path
from pose_kp_ros.pipeline.config import PipelineConfig
from pose_kp_ros.pipeline.multi_evaluation import OTHER_TRAINING, SHIPPED_TRAINING

PACKAGE = 'pose_kp_ros'


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: executable, name, namespace, parameter files/overrides, remappings."""

    executable: str
    name: str
    namespace: str = ''
    parameter_files: tuple[Path | str, ...] = ()
    parameters: tuple[tuple[str, object], ...] = ()  # ((name, value), ...) after the files
    remappings: tuple[tuple[str, str], ...] = ()  # ((from, to), ...)
    package: str = PACKAGE

    def ros_arguments(self) -> list[str]:
        """Return the `--ros-args ...` command-line arguments that start this spec."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:=/{self.namespace.strip("/")}']
        for path in self.parameter_files:
            args += ['--params-file', str(path)]
        for name, value in self.parameters:
            args += ['-p', f'{name}:={_param_text(value)}']
        for source, target in self.remappings:
            args += ['-r', f'{source}:={target}']
        return args


def _param_text(value):
    """Return a parameter value as `-p name:=value` text (YAML)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


def pose_kp_node_spec(params_file: Path | str | None = None, image: str = 'image',
                      camera_info: str = 'camera_info', device: str = 'auto',
                      namespace: str = '', pipeline_config: str = '') -> NodeSpec:
    """Return the NodeSpec of the pose estimation node with its usual launch arguments."""
    params_file = params_file or str(data_path('config', 'pose_kp_node.yaml'))
    parameters = [('device', device)]
    if pipeline_config:
        parameters.append(('pipeline_config', pipeline_config))
    return NodeSpec(executable='pose_kp_node', name='pose_kp', namespace=namespace,
                    parameter_files=(params_file,), parameters=tuple(parameters),
                    remappings=(('image', image), ('camera_info', camera_info)))


@dataclass(frozen=True)
class DemoObjects:
    """The objects of a demo run.

    evaluated: the objects the evaluator measures (the camera replays the LM-O photos showing any
    of them); skipped: LM-O objects without a model in the pipeline config (`all` only); table:
    the rows of the evaluator's per-object table (`demo_all_*`; empty: a single-object run).
    """

    evaluated: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    table: tuple[str, ...] = ()


def demo_objects(choice: str | list[str] = 'driller', pipeline_config: Path | str = '',
                 ) -> DemoObjects:
    """Return the DemoObjects of `--object` / `object:=`: an LM-O name, 'all', or a list.

    'all': every LM-O object the pipeline config (empty: the shipped one) has a model for, the
    others skipped, the table over the eight (as `pose-kp eval-lmo --object all`). A list of
    several names: those, and their table. ValueError: an unknown name, or 'all' with a config
    that has no LM-O object.
    """
    if choice != 'all':
        names = tuple(lmo_object_names(choice))
        return DemoObjects(names, (), names if len(names) > 1 else ())
    config = pipeline_config or default_pipeline_config()
    listed = {ObjectModel.from_yaml(entry.object_path).name
              for entry in PipelineConfig.load(config).objects}
    everything = tuple(lmo_object_names('all'))
    evaluated = tuple(name for name in everything if name in listed)
    if not evaluated:
        raise ValueError(f'{config} has no model for an LM-O object (known: '
                         f'{", ".join(everything)})')
    return DemoObjects(evaluated, tuple(n for n in everything if n not in listed), everything)


def demo_graph(rate_hz: float = 10.0, objects: str | list[str] | DemoObjects = 'driller',
               device: str = 'auto', frames: int = 0, output_dir: Path | str = 'results/demo',
               pipeline_config: str = '', params_file: Path | str | None = None,
               debug_image_scale: float = 0.5) -> list[NodeSpec]:
    """Return the live demo's NodeSpecs: LM-O camera replay, the pose node, the evaluator.

    objects: what demo_objects takes (an LM-O name, 'all' or a list of names) or DemoObjects.
    The camera replays the photos showing any evaluated object with the ground truth of each;
    the evaluator measures each object's `~/pose/<object>` and writes `demo_<object>_*`, and
    with several objects (or 'all') the table `demo_all_*` too.

    debug_image_scale: the node's overlay size for the evaluator's mosaic; 0: the evaluator does
    not subscribe to it (no mosaic; the node then draws and sends none).
    """
    if not isinstance(objects, DemoObjects):
        objects = demo_objects(objects, pipeline_config)
    names = list(objects.evaluated)
    camera = NodeSpec(
        executable='pose_kp_lmo_camera', name='lmo_camera',
        parameters=(('rate_hz', float(rate_hz)), ('object_names', names),
                    ('frames', int(frames))),
        remappings=(('image', '/camera/image'), ('camera_info', '/camera/camera_info')))
    pose = pose_kp_node_spec(params_file=params_file, image='/camera/image',
                             camera_info='/camera/camera_info', device=device,
                             pipeline_config=pipeline_config)
    overlay = (('debug_image_scale', float(debug_image_scale)),) if debug_image_scale > 0 else ()
    pose = NodeSpec(**{**pose.__dict__, 'parameters': pose.parameters + (
        ('image_qos', 'reliable'),) + overlay})
    table = ()
    if objects.table:
        shipped = not pipeline_config or \
            portable_path(pipeline_config) == portable_path(default_pipeline_config())
        table = (('table_objects', list(objects.table)),
                 ('training_data', SHIPPED_TRAINING if shipped else OTHER_TRAINING))
    per_object = [remapping for name in names for remapping in (
        (f'ground_truth/{name}', f'/lmo_camera/ground_truth/{name}'),
        (f'pose/{name}', f'/pose_kp/pose/{name}'))]
    evaluator = NodeSpec(
        executable='pose_kp_evaluator', name='pose_evaluator',
        parameters=(('objects', names), ('output_dir', str(output_dir)),
                    ('expected_frames', int(frames)),
                    ('stem', 'demo' if objects.table else f'demo_{names[0]}'),
                    ('mosaic_every', 10 if debug_image_scale > 0 else 0)) + table,
        remappings=tuple(per_object) + (('debug_image', '/pose_kp/debug_image'),
                                        ('detections', '/pose_kp/detections'),
                                        ('camera_info', '/camera/camera_info')))
    return [pose, evaluator, camera]
