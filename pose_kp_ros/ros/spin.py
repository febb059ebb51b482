"""The life of a node process: rclpy start-up, the node's work, and a clean shutdown.

Each console script (pose_kp_node, pose_kp_evaluator, lmo_camera) runs its node through
`spin_node`, so that Ctrl-C, SIGTERM and a shutdown during start-up end every one of them alike.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

NodeT = TypeVar('NodeT', bound=Node)


def spin_node(node_factory: Callable[[], NodeT], args: Sequence[str] | None = None,
              work: Callable[[NodeT], object] = rclpy.spin,
              cleanup: Callable[[NodeT], object] | None = None) -> int:
    """Initialise rclpy, make the node, run `work(node)` on it, then shut down; return 0.

    Ctrl-C (KeyboardInterrupt) and a shutdown of the context from outside end the work quietly,
    and so does an error raised once the context is already shut down (SIGINT during start-up
    shuts it down before the executor exists: a clean shutdown, not an error; its
    KeyboardInterrupt may then arrive while that error is handled). Any other error,
    a failing `node_factory` included, is raised after the shutdown.

    Args:
        node_factory: makes the node (called after rclpy.init).
        args: command-line arguments for rclpy.init (None: sys.argv).
        work: what to do with the node (default: rclpy.spin until shutdown).
        cleanup: called with the node before it is destroyed (e.g. stop its threads, write
            results); skipped when the node was never made.
    """
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = node_factory()
            work(node)
        except ExternalShutdownException:
            pass
        except Exception:
            if rclpy.ok():
                raise
    except KeyboardInterrupt:  # also the one SIGINT raises while the error above is looked at
        pass
    finally:
        if node is not None:
            if cleanup is not None:
                cleanup(node)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
