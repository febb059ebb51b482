"""Rotation matrix <-> (x, y, z, w) quaternion, the order ROS messages use."""

import numpy as np
from scipy.spatial.transform import Rotation

from pose_kp_ros.geometry.rotations import matrix_to_quaternion_xyzw, quaternion_xyzw_to_matrix


def test_matches_scipy_on_random_rotations_including_near_pi():
    rotations = Rotation.random(500, random_state=4).as_matrix()
    near_pi = Rotation.from_rotvec(np.array([[np.pi - 1e-9, 0, 0], [0, np.pi, 0],
                                             [1, 1, 0] / np.sqrt(2) * np.pi])).as_matrix()
    matrices = np.concatenate([rotations, near_pi, np.eye(3)[None]])
    expected = Rotation.from_matrix(matrices).as_quat()  # scipy is (x, y, z, w) too
    expected *= np.where(expected[:, 3:] < 0, -1.0, 1.0)
    got = matrix_to_quaternion_xyzw(matrices)
    # q and -q are the same rotation; at w = 0 the sign is a convention
    same = np.minimum(np.abs(got - expected).max(-1), np.abs(got + expected).max(-1))
    assert same.max() < 1e-9
    assert np.allclose(np.linalg.norm(got, axis=-1), 1.0)


def test_round_trip_and_batch_shape():
    matrices = Rotation.random(12, random_state=5).as_matrix().reshape(3, 4, 3, 3)
    q = matrix_to_quaternion_xyzw(matrices)
    assert q.shape == (3, 4, 4)
    assert np.allclose(quaternion_xyzw_to_matrix(q), matrices, atol=1e-12)
    assert np.allclose(quaternion_xyzw_to_matrix([0, 0, 0, 2.0]), np.eye(3))
