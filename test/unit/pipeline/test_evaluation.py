"""Per-frame errors, the summary and its printed table (pose_kp_ros.pipeline.evaluation)."""

import json

import numpy as np
import pytest

from pose_kp_ros.geometry.mesh import load_mesh
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.pipeline.evaluation import (
    frame_errors,
    model_points,
    summarize,
    summary_table,
    write_results,
)

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
POINTS = np.random.default_rng(0).uniform(-0.1, 0.1, (200, 3))
T = np.array([0.02, -0.01, 0.9])


def test_exact_missed_and_shifted_frames_are_summarised():
    eye = np.eye(3)
    results = [frame_errors('a', eye, T, eye, T, POINTS, K, runtime_ms=20.0),
               frame_errors('b', None, None, eye, T, POINTS, K, runtime_ms=30.0),
               frame_errors('c', eye, T + [0.0, 0.0, 0.05], eye, T, POINTS, K, runtime_ms=40.0)]
    assert results[0].detected and results[0].add_m == pytest.approx(0.0, abs=1e-12)
    assert not results[1].detected and np.isnan(results[1].add_m)
    assert results[2].add_m == pytest.approx(0.05) and results[2].rotation_deg < 1e-6
    summary = summarize(results, diameter=0.2)
    assert summary['detection_rate'] == pytest.approx(2 / 3)
    assert summary['add_0.1d_accuracy'] == pytest.approx(1 / 3)  # only the exact frame
    assert summary['runtime_median_ms'] == pytest.approx(30.0)
    table = summary_table(summary)
    assert 'ADD < 0.1 d               33.3%' in table
    assert 'runtime median / p95' in table
    assert 'latency' not in table  # not measured offline: no 'nan' row
    assert summary['by_visible_fraction'] == []  # no visibility annotated: no breakdown


def test_accuracy_is_broken_down_by_visible_fraction():
    eye = np.eye(3)
    off = T + [0.0, 0.0, 0.05]
    results = [frame_errors('a', eye, T, eye, T, POINTS, K, visible_fraction=1.0),
               frame_errors('b', eye, off, eye, T, POINTS, K, visible_fraction=0.95),
               frame_errors('c', None, None, eye, T, POINTS, K, visible_fraction=0.4),
               frame_errors('d', eye, T, eye, T, POINTS, K, visible_fraction=0.75)]
    parts = summarize(results, diameter=0.2)['by_visible_fraction']
    assert [(p['visible_fraction'], p['frames']) for p in parts] == [
        ([0.0, 0.5], 1), ([0.7, 0.9], 1), ([0.9, 1.0], 2)]  # empty ranges are left out
    assert [p['add_0.1d_accuracy'] for p in parts] == pytest.approx([0.0, 1.0, 0.5])
    assert [p['detection_rate'] for p in parts] == pytest.approx([0.0, 1.0, 1.0])
    assert 'ADD, 90%-100% visible     50.0% of 2 frames' in summary_table(
        summarize(results, diameter=0.2))


def test_model_points_are_the_mesh_vertices(repo_root, tmp_path):
    model = ObjectModel.from_yaml(repo_root / 'objects' / 'driller.yaml')
    vertices = np.asarray(load_mesh(model.resolve_mesh_path(), model.mesh_scale).vertices)
    assert np.array_equal(model_points(model), vertices)  # BOP: every vertex of the model
    subset = model_points(model, max_points=1000)  # a huge mesh: a fixed subset of vertices
    assert len(subset) == 1000 and np.array_equal(subset, model_points(model, max_points=1000))
    assert {tuple(p) for p in subset} <= {tuple(v) for v in vertices}
    bare = ObjectModel(name='bare', keypoint_names=model.keypoint_names,
                       keypoints=model.keypoints, diameter=model.diameter)
    with pytest.raises(ValueError, match='bare: no mesh'):
        model_points(bare)


def strict_json(text):
    """Parse JSON text, refusing NaN and Infinity (not JSON, though Python writes them)."""
    def refuse(constant):
        raise ValueError(f'{constant} is not JSON')
    return json.loads(text, parse_constant=refuse)


def test_result_files_are_strict_json_with_null_for_unmeasured(tmp_path):
    eye = np.eye(3)
    results = [frame_errors('a', None, None, eye, T, POINTS, K)]  # not detected: NaN errors
    summary = summarize(results, diameter=0.2)  # no latency nor runtime measured: NaN
    write_results(results, summary, tmp_path, 'run')
    written = strict_json((tmp_path / 'run_summary.json').read_text())
    assert written['runtime_median_ms'] is None and written['median_add_mm'] is None
    frames = strict_json((tmp_path / 'run_frames.json').read_text())
    assert frames[0]['add_m'] is None and frames[0]['detected'] is False


def test_symmetric_object_errors_against_the_nearest_equivalent_pose():
    """An eggbox-like 180 deg symmetry: the flipped answer is right (ADD-S 0, rotation 0 deg)."""
    from pose_kp_ros.geometry.symmetry import Symmetry
    flip = Symmetry(axis=np.array([0.0, 0.0, 1.0]), angle_deg=180.0, point=np.zeros(3))
    eye, T = np.eye(3), np.array([0.0, 0.0, 0.5])
    R_flipped = flip.rotation
    symmetric_points = np.concatenate([POINTS, POINTS @ R_flipped.T])
    plain = frame_errors('a', R_flipped, T, eye, T, symmetric_points, K, symmetric=True)
    aware = frame_errors('a', R_flipped, T, eye, T, symmetric_points, K, symmetric=True,
                         symmetries=[flip])
    assert plain.add_m < 1e-9 and aware.add_m < 1e-9
    assert plain.rotation_deg == pytest.approx(180.0)
    assert aware.rotation_deg == pytest.approx(0.0, abs=1e-6)
    assert aware.translation_m == pytest.approx(0.0, abs=1e-9)


def test_pose_error_change_ignores_a_steady_error_and_measures_a_jump():
    from pose_kp_ros.geometry.rotations import so3_exp
    from pose_kp_ros.pipeline.evaluation import pose_error_change

    steady = (so3_exp([0.0, 0.1, 0.0]), np.array([0.01, 0.0, 0.02]))
    assert pose_error_change(steady, steady) == pytest.approx((0.0, 0.0), abs=1e-9)
    jumped = (so3_exp([0.0, 0.1, np.radians(3.0)]) , steady[1] + [0.0, 0.004, 0.0])
    degrees, millimetres = pose_error_change(steady, jumped)
    assert millimetres == pytest.approx(4.0)
    assert 2.5 < degrees < 3.5
