"""spin_node ends a node process cleanly whenever Ctrl-C comes, start-up included (real rclpy)."""

import pytest
import rclpy
from rclpy.node import Node

from pose_kp_ros.ros.spin import spin_node


def _node():
    return Node('spin_test')


def test_ctrl_c_during_the_work_returns_0_after_cleanup():
    cleaned = []

    def work(node):
        raise KeyboardInterrupt

    assert spin_node(_node, [], work=work, cleanup=cleaned.append) == 0
    assert len(cleaned) == 1 and not rclpy.ok()


def test_sigint_arriving_while_a_start_up_error_is_handled_is_a_clean_shutdown(monkeypatch):
    """SIGINT just after start-up ends the process cleanly.

    Its handler shuts the context down, so rclpy.spin fails to make its executor, and the
    signal's KeyboardInterrupt arrives while spin_node looks at that error (seen in CI).
    rclpy.ok delivers it at that moment here, once.
    """
    real_ok, calls = rclpy.ok, []

    def ok_interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_ok(*args, **kwargs)

    def work(node):
        rclpy.shutdown()
        raise RuntimeError('failed to create guard_condition: the given context is not valid')

    monkeypatch.setattr(rclpy, 'ok', ok_interrupted_once)
    assert spin_node(_node, [], work=work) == 0
    assert calls and not real_ok()


def test_an_error_while_the_context_is_valid_is_raised_after_shutdown():
    def work(node):
        raise ValueError('a real bug')

    with pytest.raises(ValueError, match='a real bug'):
        spin_node(_node, [], work=work)
    assert not rclpy.ok()
