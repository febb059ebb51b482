"""scripts/setup_env.sh stops early with a clear, actionable message on a bad machine."""

import os
from pathlib import Path
import shutil
import subprocess
import sys


def run_setup(repo_root, tmp_path, path_dirs, python=None):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'POSE_KP_VENV')}
    env['PATH'] = os.pathsep.join(str(d) for d in path_dirs)
    env['POSE_KP_VENV'] = str(tmp_path / 'venv')
    if python:
        env['PYTHON'] = str(python)
    return subprocess.run(['/bin/bash', str(repo_root / 'scripts' / 'setup_env.sh')], env=env,
                          capture_output=True, text=True, timeout=60)


def tool_dir(tmp_path, names):
    """Return a folder of links to the given system tools (a machine that has only those)."""
    folder = tmp_path / 'bin'
    folder.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name)
        if found:
            (folder / name).symlink_to(found)
    return folder


BASIC = ['dirname', 'cat', 'sha256sum', 'cut', 'grep', 'find', 'sort', 'nproc', 'sed']


def fake_python(tmp_path, version):
    script = tmp_path / f'python{version}'
    script.write_text(f'#!/bin/sh\necho {version}\n')
    script.chmod(0o755)
    return script


def test_unsupported_python_is_named(repo_root, tmp_path):
    result = run_setup(repo_root, tmp_path, [tool_dir(tmp_path, BASIC), '/usr/bin', '/bin'],
                       python=fake_python(tmp_path, '3.10'))
    assert result.returncode != 0
    assert 'unsupported Python 3.10' in result.stderr
    assert 'CPython 3.11' in result.stderr
    assert not (tmp_path / 'venv').exists()


def test_missing_cmake_says_how_to_install(repo_root, tmp_path):
    bin_dir = tool_dir(tmp_path, BASIC + ['gcc', 'g++', 'make'])
    real_python = Path(sys.executable).resolve()
    result = run_setup(repo_root, tmp_path, [bin_dir], python=real_python)
    assert result.returncode != 0
    assert "'cmake' not found" in result.stderr
    assert 'apt-get install -y build-essential cmake' in result.stderr


def test_missing_compiler_says_how_to_install(repo_root, tmp_path):
    bin_dir = tool_dir(tmp_path, BASIC + ['cmake', 'make'])
    real_python = Path(sys.executable).resolve()
    result = run_setup(repo_root, tmp_path, [bin_dir], python=real_python)
    assert result.returncode != 0
    assert "'gcc' not found" in result.stderr
    assert 'apt-get install' in result.stderr
