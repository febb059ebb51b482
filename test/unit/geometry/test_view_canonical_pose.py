"""The equivalent pose a view shows canonically (training targets of symmetric objects)."""

import numpy as np
import pytest

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import random_rotations
from pose_kp_ros.geometry.symmetry import (
    Symmetry,
    canonical_pose,
    equivalent_poses,
    symmetry_group,
    view_canonical_pose,
)


def _roll(angle):
    """Return Rz(angle) (3, 3): the camera turned about its optical axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@pytest.fixture
def eggbox(repo_root):
    """Return the LM-O eggbox's symmetry group: a half turn about z through a shifted point."""
    group = symmetry_group(ObjectModel.from_yaml(repo_root / 'objects' / 'eggbox.yaml').symmetries)
    assert len(group[0]) == 2 and np.abs(group[1][1]).max() > 1e-4
    return group


def _poses(count, seed):
    rng = np.random.default_rng(seed)
    t = np.column_stack([rng.uniform(-0.25, 0.25, (count, 2)), rng.uniform(0.4, 1.2, count)])
    return random_rotations(rng, count), t, rng.uniform(-np.pi, np.pi, count)


@pytest.mark.parametrize('axis_point', [None, [0.12, 0.05, 0.0]])
def test_every_equivalent_pose_gives_one_of_them_and_the_same_one(eggbox, axis_point):
    """Also about an axis far from the origin, whose equivalent poses lie far apart."""
    if axis_point is not None:
        eggbox = symmetry_group([Symmetry(np.array([0.0, 0.0, 1.0]), 180.0,
                                          np.array(axis_point))])
    R, t, roll = _poses(300, seed=5)
    R_c, t_c = view_canonical_pose(R, t, eggbox, roll)
    assert R_c.shape == (300, 3, 3) and t_c.shape == (300, 3)
    rotations, translations = equivalent_poses(R, t, eggbox)          # (300, 2, 3, 3)
    picked = np.argmin(np.abs(rotations - R_c[:, None]).sum((-1, -2)), 1)
    np.testing.assert_allclose(rotations[np.arange(300), picked], R_c, atol=1e-12)
    np.testing.assert_allclose(translations[np.arange(300), picked], t_c, atol=1e-12)
    assert 0.3 < picked.mean() < 0.7                     # both equivalents get chosen
    other_R, other_t = view_canonical_pose(rotations[:, 1], translations[:, 1], eggbox, roll)
    np.testing.assert_allclose(other_R, R_c, atol=1e-12)
    np.testing.assert_allclose(other_t, t_c, atol=1e-12)
    one = view_canonical_pose(R[7], t[7], eggbox, roll[7])           # one pose, no batch
    assert one[0].shape == (3, 3) and one[1].shape == (3,)
    np.testing.assert_allclose(one[0], R_c[7], atol=1e-12)


def test_a_rolled_crop_chooses_as_a_rolled_camera_does(eggbox):
    """A crop turned by `roll` shows what a camera turned about its axis by `roll` sees."""
    R, t, roll = _poses(300, seed=6)
    from_crop = view_canonical_pose(R, t, eggbox, roll)[0]
    turned = np.stack([_roll(angle) for angle in roll])
    from_camera = view_canonical_pose(turned @ R, np.einsum('bij,bj->bi', turned, t), eggbox)[0]
    np.testing.assert_allclose(turned @ from_crop, from_camera, atol=1e-9)
    unrolled = view_canonical_pose(R, t, eggbox)[0]
    assert (np.abs(unrolled - from_crop).max((-1, -2)) > 1e-6).mean() > 0.2   # roll mattered


def test_an_object_seen_straight_on_gets_the_published_rule(eggbox):
    """On the optical axis and unrolled: the pipeline's choice without a reference."""
    R, t, _ = _poses(200, seed=7)
    t[:, :2] = 0.0
    np.testing.assert_allclose(view_canonical_pose(R, t, eggbox)[0],
                               canonical_pose(R, t, eggbox)[0], atol=1e-12)
    t[:, :2] = np.random.default_rng(8).uniform(-0.4, 0.4, (200, 2))   # off the axis: the view
    off_axis = view_canonical_pose(R, t, eggbox)[0]                     # turns towards the ray
    assert (np.abs(off_axis - canonical_pose(R, t, eggbox)[0]).max((-1, -2)) > 1e-6).any()
