"""Launch the pose_kp node (and optionally RViz) on a camera.

    ros2 launch pose_kp_ros pose_kp.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info device:=auto rviz:=true

The node's executable, parameters and remappings come from pose_kp_ros.launch_graph, the same
description the scripts use where `ros2 launch` is unavailable.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from pose_kp_ros.launch_actions import spec_to_node
from pose_kp_ros.launch_graph import pose_kp_node_spec
from pose_kp_ros.paths import data_path

ARGUMENTS = (
    ('params_file', str(data_path('config', 'pose_kp_node.yaml')), 'node parameter YAML'),
    ('pipeline_config', '', 'pipeline YAML (objects, models); empty: the default model'),
    ('image', 'image', 'image topic (sensor_msgs/Image)'),
    ('camera_info', 'camera_info', 'camera_info topic'),
    ('device', 'auto', 'auto | cpu | cuda | cuda:N'),
    ('namespace', '', 'namespace of the node'),
    ('rviz', 'false', 'also start RViz with config/pose_kp.rviz'),
)


def nodes(context):
    """Build the node actions from the resolved launch arguments."""
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    spec = pose_kp_node_spec(params_file=value['params_file'], image=value['image'],
                             camera_info=value['camera_info'], device=value['device'],
                             namespace=value['namespace'],
                             pipeline_config=value['pipeline_config'])
    return [spec_to_node(spec)]


def generate_launch_description():
    """Return the launch description (arguments, the node, optional RViz)."""
    rviz = Node(package='rviz2', executable='rviz2', output='screen',
                arguments=['-d', str(data_path('config', 'pose_kp.rviz'))],
                condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS] + [OpaqueFunction(function=nodes), rviz])
