"""docs/performance.md is exactly what benchmarks/performance_report.py makes from results/."""

import importlib.util
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
