"""launch_ros actions from NodeSpecs (imported only by launch files, where launch_ros exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from launch_ros.actions import Node

if TYPE_CHECKING:
    from pose_kp_ros.launch_graph import NodeSpec


def spec_to_node(spec: NodeSpec) -> Node:
    """Return a launch_ros Node action for a pose_kp_ros.launch_graph.NodeSpec."""
    return Node(package=spec.package, executable=spec.executable, name=spec.name,
                namespace=spec.namespace or None, output='screen',
                parameters=list(spec.parameter_files) + [dict(spec.parameters)],
                remappings=list(spec.remappings))
