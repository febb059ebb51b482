"""Launch the live demo: LM-O camera replay, the pose node, and the evaluator.

    ros2 launch pose_kp_ros demo.launch.py rate:=10.0 object:=driller device:=auto
    ros2 launch pose_kp_ros demo.launch.py object:=all pipeline_config:=/path/pipeline.yaml

The node list, parameters and remappings come from pose_kp_ros.launch_graph.demo_graph, the same
description `pose-kp demo` starts as processes where `ros2 launch` is unavailable. object:=all
evaluates every LM-O object the pipeline config has a model for (the others are skipped).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from pose_kp_ros.data.package_data import lmo_objects_frames
from pose_kp_ros.launch_actions import spec_to_node
from pose_kp_ros.launch_graph import demo_graph, demo_objects

ARGUMENTS = (
    ('rate', '10.0', 'camera rate, Hz'),
    ('object', 'driller', "LM-O object name (its LM-O id follows from it), or 'all': every LM-O "
                          'object the pipeline config has a model for'),
    ('device', 'auto', 'auto | cpu | cuda'),
    ('frames', '0', 'frames to replay (0: all)'),
    ('output_dir', 'results/demo', 'where the evaluator writes its results'),
    ('pipeline_config', '', 'pipeline YAML (objects, models); empty: the default model'),
)


def nodes(context):
    """Build the node actions from the resolved launch arguments."""
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    objects = demo_objects(value['object'], value['pipeline_config'])
    frames = int(value['frames']) or len(lmo_objects_frames(objects.evaluated))
    specs = demo_graph(float(value['rate']), objects, value['device'], frames,
                       value['output_dir'], value['pipeline_config'])
    skipped = [LogInfo(msg=f"no model in the pipeline config for {', '.join(objects.skipped)}: "
                           'skipped')] if objects.skipped else []
    return skipped + [spec_to_node(spec) for spec in specs]


def generate_launch_description():
    """Return the launch description."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS] + [OpaqueFunction(function=nodes)])
