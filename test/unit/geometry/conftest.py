"""Fixtures of the geometry tests."""

import numpy as np
import pytest

from pose_kp_ros.geometry.synthetic import random_keypoint_model


@pytest.fixture
def rng():
    """Return a seeded numpy Generator (every test sees the same numbers)."""
    return np.random.default_rng(1234)


@pytest.fixture
def model():
    """Return a rigid 10-keypoint model of a 25 cm object."""
    return random_keypoint_model(np.random.default_rng(7))
