"""benchmarks/paired_comparison.py: frames gained and lost between two eval-lmo runs."""

import json
from math import nan
from pathlib import Path

import pytest

from pose_kp_ros.pipeline.evaluation import FrameResult, write_results

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def paired(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))
    import paired_comparison
    return paired_comparison


def write_run(folder: Path, stem: str, add_mm: list[float], diameter_m: float = 0.1) -> None:
    """Write an evaluation of frames 000..N with these ADD errors (NaN: no pose)."""
    results = [FrameResult(f'{i:03d}', add == add, add / 1000, 1.0, 0.01, 1.0)
               for i, add in enumerate(add_mm)]
    write_results(results, {'diameter_m': diameter_m, 'frames': len(results)}, folder, stem)


def test_sign_test_p(paired):
    assert paired.sign_test_p(0, 0) == 1.0
    assert paired.sign_test_p(5, 5) == 1.0
    assert paired.sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert paired.sign_test_p(2, 9) == paired.sign_test_p(9, 2) == pytest.approx(
        2 * (1 + 11 + 55) / 2 ** 11)


def test_gained_and_lost_frames(paired, tmp_path, capsys):
    # 0.1 d = 10 mm: right means ADD <= 10 mm; no pose (NaN) is wrong
    write_run(tmp_path / 'a', 'duck_detector', [5, 20, nan, 8, 30, 10])
    write_run(tmp_path / 'b', 'duck_detector', [6, 9, 7, 25, 40, 10])
    write_run(tmp_path / 'a', 'can_detector', [1, 2, 3])
    write_run(tmp_path / 'b', 'can_detector', [1, 2, 3, 50])    # frame 003 only in b
    write_run(tmp_path / 'a', 'cat_detector', [1])               # cat only in a
    output = tmp_path / 'out' / 'paired.json'
    assert paired.main([str(tmp_path / 'a'), str(tmp_path / 'b'), '--output', str(output)]) == 0
    result = json.loads(output.read_text())
    rows = {row['evaluation']: row for row in result['objects']}
    assert set(rows) == {'can_detector', 'duck_detector'}
    assert rows['duck_detector'] | {'sign_test_p': None} == {
        'evaluation': 'duck_detector', 'frames': 6, 'right_before': 3, 'right_after': 4,
        'gained': 2, 'lost': 1, 'sign_test_p': None}
    assert rows['can_detector']['frames'] == 3 and rows['can_detector']['gained'] == 0
    assert result['total']['gained'] == 2 and result['total']['lost'] == 1
    assert result['total']['sign_test_p'] == pytest.approx(1.0)
    assert 'total' in capsys.readouterr().out


def test_folders_without_a_common_object(paired, tmp_path, capsys):
    write_run(tmp_path / 'a', 'duck_detector', [1])
    write_run(tmp_path / 'b', 'duck_ground-truth', [1])
    assert paired.main([str(tmp_path / 'a'), str(tmp_path / 'b')]) == 2
    assert 'no *_frames.json of the same object' in capsys.readouterr().err
