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


MAX_MODULE_LINES = 400
"""A module of one responsibility stays short (the project's style rule)."""


def test_no_module_of_the_package_is_longer_than_the_limit(repo_root):
    long = {str(path.relative_to(repo_root)): count
            for path in sorted((repo_root / 'pose_kp_ros').rglob('*.py'))
            if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f'modules over {MAX_MODULE_LINES} lines (split them): {long}'
