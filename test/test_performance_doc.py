"""docs/performance.md is exactly what benchmarks/performance_report.py makes from results/."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def benchmarks_path(monkeypatch):
    """Make the report's sibling modules (benchmarks/speed_sections.py, ...) importable."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'benchmarks'))


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


def test_gpu_section_is_pending_without_gpu_rows_and_a_table_with_them(tmp_path):
    report = load_report_module()
    page = report.render(tmp_path)
    assert '## On a GPU' in page and 'Figures pending' in page
    cpu_row = {'name': 'ort-cpu', 'library': 'onnxruntime', 'device': 'cpu', 'missing': None,
               'keypoints_providers': ['CPUExecutionProvider'], 'keypoints_first_run_s': 0.05,
               'keypoint_ms_per_call': {'b1': 18.0, 'b8': 140.0, 'detector_b1': 10.0}}
    missing = 'ort-tensorrt: not measured: TensorrtExecutionProvider could not start here'
    bench = {'machine': {'gpus': [], 'driver_cuda_version': None, 'torch': '2', 'tensorrt': None,
                         'torch_cuda_version': None, 'onnxruntime_package': None,
                         'onnxruntime': '1', 'cpu_model': 'cpu', 'cpu_count': 2},
             'threads': 1, 'repeats': 2, 'batches': [1, 8], 'frames': 2,
             'runtimes': [cpu_row], 'pipeline': [], 'node': [], 'not_measured': [missing]}
    (tmp_path / 'bench_gpu.json').write_text(json.dumps(bench))
    assert 'Figures pending' in report.render(tmp_path)  # CPU rows only: still pending

    gpu_row = dict(cpu_row, name='ort-cuda', device='cuda',
                   keypoints_providers=['CUDAExecutionProvider', 'CPUExecutionProvider'])
    bench['runtimes'].append(gpu_row)
    bench['machine']['gpus'] = [{'name': 'Some GPU', 'driver': '1.0', 'memory': '1 MiB'}]
    bench['pipeline'] = [{'runtime': 'ort-cuda', 'runtime_median_ms': 50.0,
                          'runtime_p95_ms': 60.0, 'stages_median_ms': {'network': 5.0},
                          'add_0.1d_accuracy': 0.5, 'detection_rate': 1.0}]
    bench['node'] = [{'runtime': 'ort-cuda', 'latency_median_ms': 40.0, 'latency_p95_ms': 50.0,
                      'output_rate_hz': 20.0}, {'runtime': 'ort-cpu', 'missing': 'no rclpy'}]
    (tmp_path / 'bench_gpu.json').write_text(json.dumps(bench))
    page = report.render(tmp_path)
    assert 'Figures pending' not in page and 'Some GPU (driver 1.0)' in page
    assert '| ort-cuda | CUDAExecutionProvider, CPUExecutionProvider | 18.00 | 140.00 |' in page
    assert '| ort-cuda | 50.0 / 60.0 | 5.0 | - | - | 50.0% | 100.0% |' in page
    assert '| ort-cuda | 40 / 50 ms | 20.0 poses/s |' in page
    assert f'- {missing}' in page
