"""Lint: the flake8 and pep257 rules that ament_flake8 / ament_pep257 apply, checked with ruff."""

from pathlib import Path
import shutil
import subprocess
import sys


def test_ruff_clean(repo_root):
    ruff = shutil.which('ruff', path=str(Path(sys.executable).parent)) or shutil.which('ruff')
    assert ruff, 'ruff is not installed (it is pinned in requirements.txt)'
    result = subprocess.run([ruff, 'check', '--no-cache', '.'], cwd=repo_root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
