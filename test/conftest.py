"""Shared test fixtures: the project venv's environment and isolated ROS 2 settings per test."""

import os
from pathlib import Path
import random
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root():
    """Return the repository (source) root."""
    return REPO_ROOT


@pytest.fixture
def ros_env(tmp_path):
    """Environment for child ROS processes: loopback-only discovery and a domain of their own.

    Every test gets a fresh random ROS_DOMAIN_ID (1..101, the range safe for Fast DDS port
    mapping), so tests and parallel runs on one machine do not see each other's traffic.
    """
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))
    env['ROS_LOG_DIR'] = str(tmp_path / 'ros_log')
    env['PYTHONUNBUFFERED'] = '1'
    return env


@pytest.fixture
def python_exe():
    """Return the interpreter running the tests (the project venv), for child processes."""
    return sys.executable
