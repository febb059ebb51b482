"""The ROS graphs this package starts, as plain data: one place for launch files and scripts.

`launch/*.launch.py` turn these NodeSpecs into launch_ros Node actions (`ros2 launch`); where
`ros2 launch` does not exist (ROS from PyPI wheels), `pose_kp_ros.tools.graph_runner` starts the
same executables with the same parameter files and remappings as processes. Tests check every
spec against the installed package (executables in lib/pose_kp_ros, files in share/pose_kp_ros).
"""

from dataclasses import dataclass

from pose_kp_ros.paths import data_path

PACKAGE = 'pose_kp_ros'


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: executable, name, namespace, parameter files/overrides, remappings."""

    executable: str
    name: str
    namespace: str = ''
    parameter_files: tuple = ()
    parameters: tuple = ()        # ((name, value), ...) overrides applied after the files
    remappings: tuple = ()        # ((from, to), ...)
    package: str = PACKAGE

    def ros_arguments(self):
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


def pose_kp_node_spec(params_file=None, image='image', camera_info='camera_info', device='auto',
                      namespace='', pipeline_config=''):
    """Return the NodeSpec of the pose estimation node with its usual launch arguments."""
    params_file = params_file or str(data_path('config', 'pose_kp_node.yaml'))
    parameters = [('device', device)]
    if pipeline_config:
        parameters.append(('pipeline_config', pipeline_config))
    return NodeSpec(executable='pose_kp_node', name='pose_kp', namespace=namespace,
                    parameter_files=(params_file,), parameters=tuple(parameters),
                    remappings=(('image', image), ('camera_info', camera_info)))


def demo_graph(rate_hz=10.0, object_name='driller', device='auto', frames=0,
               output_dir='results/demo', pipeline_config='', params_file=None,
               debug_image_scale=0.5):
    """Return the live demo's NodeSpecs: LM-O camera replay, the pose node, the evaluator.

    object_name: an LM-O object (the camera replays its frames and ground truth).

    debug_image_scale: the node's overlay size for the evaluator's mosaic; 0: the evaluator does
    not subscribe to it (no mosaic; the node then draws and sends none).
    """
    camera = NodeSpec(
        executable='pose_kp_lmo_camera', name='lmo_camera',
        parameters=(('rate_hz', float(rate_hz)), ('object_name', object_name),
                    ('frames', int(frames))),
        remappings=(('image', '/camera/image'), ('camera_info', '/camera/camera_info')))
    pose = pose_kp_node_spec(params_file=params_file, image='/camera/image',
                             camera_info='/camera/camera_info', device=device,
                             pipeline_config=pipeline_config)
    # Three processes share the machine: one torch thread avoids thrashing on small CPUs.
    overlay = (('debug_image_scale', float(debug_image_scale)),) if debug_image_scale > 0 else ()
    pose = NodeSpec(**{**pose.__dict__, 'parameters': pose.parameters + (
        ('image_qos', 'reliable'), ('torch_threads', 1)) + overlay})
    evaluator = NodeSpec(
        executable='pose_kp_evaluator', name='pose_evaluator',
        parameters=(('object', object_name), ('output_dir', str(output_dir)),
                    ('expected_frames', int(frames)), ('stem', f'demo_{object_name}'),
                    ('mosaic_every', 10 if debug_image_scale > 0 else 0)),
        remappings=(('ground_truth', f'/lmo_camera/ground_truth/{object_name}'),
                    ('pose', f'/pose_kp/pose/{object_name}'),
                    ('debug_image', '/pose_kp/debug_image'),
                    ('camera_info', '/camera/camera_info')))
    return [pose, evaluator, camera]
