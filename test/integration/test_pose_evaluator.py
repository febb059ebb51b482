"""The live evaluator (pose_kp_evaluator) as a process: what it writes when it stops."""

import json
from pathlib import Path
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def run_evaluator(env, output_dir, *parameters, summary='demo_summary.json'):
    """Run the evaluator with no inputs until its 1 s timeout; return a summary dict it wrote."""
    executable = Path(sys.executable).with_name('pose_kp_evaluator')
    extra = [arg for parameter in parameters for arg in ('-p', parameter)]
    result = subprocess.run(
        [str(executable), '--ros-args', '-p', f'output_dir:={output_dir}', '-p', 'timeout_s:=1.0',
         '-p', 'mosaic_every:=0', *extra], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((output_dir / summary).read_text(), parse_constant=refuse)


def refuse(constant):
    """Reject NaN and Infinity while parsing: they are not JSON."""
    raise ValueError(f'{constant} in the summary is not JSON')


def test_evaluator_measures_add_on_the_model_points_of_eval_lmo(ros_env, tmp_path):
    summary = run_evaluator(ros_env, tmp_path)
    assert summary['frames'] == 0 and summary['object'] == 'driller'
    assert summary['model_points'] == 12655  # every vertex of the driller's mesh, as eval-lmo


def test_evaluator_writes_null_for_what_it_did_not_measure(ros_env, tmp_path):
    summary = run_evaluator(ros_env, tmp_path)  # parsed strictly: NaN would raise
    assert summary['latency_median_ms'] is None and summary['median_add_mm'] is None
    frames = json.loads((tmp_path / 'demo_frames.json').read_text(), parse_constant=refuse)
    assert frames == []


def test_evaluator_of_several_objects_writes_each_summary_and_the_table(ros_env, tmp_path):
    table = run_evaluator(ros_env, tmp_path, 'objects:=[driller, eggbox]',
                          'table_objects:=[ape, driller, eggbox]', summary='demo_all_summary.json')
    assert [(row['object'], row['metric'], row['status']) for row in table['rows']] == [
        ('ape', 'ADD', 'no model'), ('driller', 'ADD', 'evaluated'),
        ('eggbox', 'ADD-S', 'evaluated')]  # the eggbox declares a symmetry: ADD-S
    assert table['mean']['objects'] == 2 and table['mean']['of'] == 3
    eggbox = json.loads((tmp_path / 'demo_eggbox_summary.json').read_text(),
                        parse_constant=refuse)
    assert eggbox['object'] == 'eggbox' and eggbox['metric'] == 'ADD-S'
    assert (tmp_path / 'demo_driller_frames.json').is_file()
    assert not (tmp_path / 'demo_summary.json').exists()
