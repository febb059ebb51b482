"""The evaluator's per-object results: each frame's errors computed once, frame indices current."""

import numpy as np

from pose_kp_ros.ros import pose_evaluator_node
from pose_kp_ros.ros.pose_evaluator_node import LiveObject


def test_each_frames_errors_are_computed_once_and_follow_new_estimates(monkeypatch):
    calls = []
    real = pose_evaluator_node.frame_errors
    monkeypatch.setattr(pose_evaluator_node, 'frame_errors',
                        lambda *args, **kwargs: calls.append(args[1]) or real(*args, **kwargs))
    live = LiveObject('glue')  # ADD-S over its whole mesh: the costly metric
    K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
    R, t = np.eye(3), np.array([0.0, 0.0, 0.8])
    live.truth = {(1, 0): (R, t), (2, 0): (R, t)}
    live.estimates = {(1, 0): (R, t + [0.001, 0.0, 0.0], 50.0)}
    index = {(1, 0): 0, (2, 0): 1}
    first = live.results(K, index)
    assert len(calls) == 2 and [r.detected for r in first] == [True, False]
    assert first[0].add_m < 0.0011 and first[0].latency_ms == 50.0
    # Ticks without news compute nothing; the frame index follows the frames seen now.
    again = live.results(K, {(0, 5): 0, (1, 0): 1, (2, 0): 2})
    assert len(calls) == 2 and [r.frame for r in again] == ['1', '2']
    assert again[0].add_m == first[0].add_m
    # A late estimate, or a new camera matrix, is evaluated.
    live.estimates[(2, 0)] = (R, t, 60.0)
    assert live.results(K, index)[1].detected and len(calls) == 3
    live.results(K * [[1.01], [1.01], [1.0]], index)
    assert len(calls) == 5
