"""Short soak (45 s of 30 Hz input) through benchmarks/soak_node.py's own code path.

Non-timing invariants only (the figures are the benchmark's): the node stays up, every frame
sent is answered or counted by the node, and resident memory after the warm-up grows less than
25% (a generous bound for 45 s; the 10-minute soak reports the real figure).
"""

import pytest

pytestmark = pytest.mark.integration


def test_short_soak_keeps_node_up_and_accounts_for_every_frame(ros_env, monkeypatch,
                                                               benchmarks_path,
                                                               untrained_pipeline):
    from soak_node import run_soak

    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'ROS_LOG_DIR'):
        monkeypatch.setenv(key, ros_env[key])
    result = run_soak(45.0, rate_hz=30.0, pipeline_config=str(untrained_pipeline))
    assert result['node_alive'] and result['node_exit_code'] == 0
    assert result['frames_sent'] >= 0.9 * 45 * 30
    assert result['frames_answered'] > 0
    assert result['unaccounted_frames'] == 0, result['node_counters']
    assert result['lost_outputs'] == 0, result['node_counters']
    assert result['memory']['rss_growth_percent'] < 25.0, result['memory']
