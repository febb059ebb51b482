"""Launch the live demo: LM-O camera replay, the pose node, and the evaluator.

    ros2 launch pose_kp_ros demo.launch.py rate:=10.0 object:=driller device:=auto

The node list, parameters and remappings come from pose_kp_ros.launch_graph.demo_graph, the same
description `pose-kp demo` starts as processes where `ros2 launch` is unavailable.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from pose_kp_ros.data.package_data import lmo_ground_truth, lmo_object_id
from pose_kp_ros.launch_actions import spec_to_node
from pose_kp_ros.launch_graph import demo_graph

ARGUMENTS = (
    ('rate', '10.0', 'camera rate, Hz'),
    ('object', 'driller', 'LM-O object name (its LM-O id follows from it)'),
    ('device', 'auto', 'auto | cpu | cuda'),
    ('frames', '0', 'frames to replay (0: all)'),
    ('output_dir', 'results/demo', 'where the evaluator writes its results'),
)


def nodes(context):
    """Build the node actions from the resolved launch arguments."""
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    frames = int(value['frames']) or len(lmo_ground_truth(lmo_object_id(value['object'])))
    specs = demo_graph(float(value['rate']), value['object'], value['device'], frames,
                       value['output_dir'])
    return [spec_to_node(spec) for spec in specs]


def generate_launch_description():
    """Return the launch description."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS] + [OpaqueFunction(function=nodes)])
