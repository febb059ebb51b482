"""docs/performance.md is exactly what benchmarks/performance_report.py makes from results/."""

import importlib.util
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_report_module():
    path = REPO_ROOT / 'benchmarks' / 'performance_report.py'
    spec = importlib.util.spec_from_file_location('performance_report', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_performance_doc_matches_the_committed_results():
    expected = load_report_module().render(REPO_ROOT / 'results')
    actual = (REPO_ROOT / 'docs' / 'performance.md').read_text()
    assert actual == expected, 'run: python benchmarks/performance_report.py'


def test_missing_results_are_listed_as_not_measured(tmp_path):
    page = load_report_module().render(tmp_path)
    assert page.count('not measured') == 5 and 'Not measured yet' in page


def test_threads_and_commit_comparisons_render_every_setting(tmp_path):
    row = {'cores': [0], 'threads': 1, 'keypoints_batch3_one_call_ms': 24.9,
           'keypoints_batch3_separate_calls_ms': 23.9, 'eval_lmo_frames': 100,
           'eval_lmo_median_ms': 62.9, 'node_poses_per_s': 7.6,
           'node_latency_median_ms': 138.4, 'node_latency_p95_ms': 162.0}
    (tmp_path / 'bench_threads.json').write_text(json.dumps(
        {'cpu_model': 'Some CPU', 'rows': [row, {**row, 'cores': [0, 1], 'threads': 2}]}))
    (tmp_path / 'compare_abc1234.json').write_text(json.dumps({
        'commits': {'other': 'abc1234', 'this': 'def5678'}, 'cores': [0], 'cpu_model': 'Some CPU',
        'frames': 200, 'node_seconds': 45, 'runs': {'this': [{}, {}], 'other': [{}, {}]},
        'medians': {'other': {'eval_lmo_median_ms': 115.0}, 'this': {'eval_lmo_median_ms': 69.0}},
        'this_over_other': {'eval_lmo_median_ms': 0.6}}))
    page = load_report_module().render(tmp_path)
    assert '| figure | cores 0, 1 thread | cores 0,1, 2 threads |' in page
    assert '| keypoints, 3 calls of one crop (ms) | 23.9 | 23.9 |' in page
    assert '| node latency median / p95 (ms) | 138 / 162 | 138 / 162 |' in page
    assert '| eval-lmo ms per frame | 115.0 | 69.0 | 0.60x |' in page
