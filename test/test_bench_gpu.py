"""benchmarks/bench_gpu.py's CPU path on a tiny budget.

The report's structure, and one line for each runtime this machine lacks (no timing assertions;
on a GPU machine those rows are timed).
"""

import json
import subprocess
import sys

RUNTIMES = ['torch-cpu', 'torch-cuda', 'ort-cpu', 'ort-cuda', 'ort-tensorrt']
BATCHES = ['b1', 'b2', 'b3', 'b4', 'b8']


def refuse(constant):
    raise ValueError(f'{constant} is not JSON')


def test_bench_gpu_measures_the_cpu_rows_and_names_each_missing_runtime(repo_root, tmp_path):
    out = tmp_path / 'bench_gpu.json'
    done = subprocess.run(
        [sys.executable, str(repo_root / 'benchmarks' / 'bench_gpu.py'), '--repeats', '2',
         '--frames', '2', '--node-seconds', '0', '--out', str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text(), parse_constant=refuse)
    machine = report['machine']
    for key in ('cpu_model', 'gpus', 'driver_cuda_version', 'torch', 'torch_cuda_available',
                'onnxruntime', 'ort_providers_available', 'tensorrt'):
        assert key in machine
    assert 'CPUExecutionProvider' in machine['ort_providers_available']
    assert [row['name'] for row in report['runtimes']] == RUNTIMES
    lines = done.stdout.splitlines()
    for row in report['runtimes']:
        if row['missing'] is None:
            timings = row['keypoint_ms_per_call']
            assert sorted(timings) == sorted(BATCHES + ['detector_b1'])
            assert all(value > 0 for value in timings.values())
        else:
            assert 'keypoint_ms_per_call' not in row
            line = f"{row['name']}: not measured: {row['missing']}"
            assert lines.count(line) == 1 and line in report['not_measured']
    measured = {row['name'] for row in report['runtimes'] if row['missing'] is None}
    assert {'torch-cpu', 'ort-cpu'} <= measured
    if not machine['torch_cuda_available']:
        assert 'torch-cuda' not in measured
    for name in ('ort-cuda', 'ort-tensorrt'):
        provider = {'ort-cuda': 'CUDA', 'ort-tensorrt': 'Tensorrt'}[name] + 'ExecutionProvider'
        if provider not in machine['ort_providers_available']:
            assert 'install onnxruntime-gpu' in report['runtimes'][RUNTIMES.index(name)][
                'missing']
    ort_cpu = report['runtimes'][RUNTIMES.index('ort-cpu')]
    assert ort_cpu['keypoints_providers'] == ['CPUExecutionProvider']

    pipeline = {row['runtime']: row for row in report['pipeline']}
    assert set(pipeline) == measured - {'torch-cpu', 'torch-cuda'}
    row = pipeline['ort-cpu']
    assert row['frames'] == 2 and row['device'] == 'cpu'
    assert row['keypoint_providers'] == row['detector_providers'] == ['CPUExecutionProvider']
    assert row['runtime_median_ms'] > 0 and {'detector', 'network'} <= set(
        row['stages_median_ms'])
    assert 0.0 <= row['add_0.1d_accuracy'] <= 1.0
    assert [node['runtime'] for node in report['node']] == sorted(pipeline, key=RUNTIMES.index)
    for node in report['node']:
        assert node['missing'].startswith('skipped')
        assert f"node {node['runtime']}: not measured: {node['missing']}" in lines
