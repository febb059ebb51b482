"""`colcon build` and `colcon test` of this package in a fresh temporary workspace.

Proves what a ROS 2 user does works: the package builds with ament_python, installs its
executables into lib/pose_kp_ros (so `ros2 run pose_kp_ros ...` finds them) and its data files
into share/pose_kp_ros, the installed executable starts, and `colcon test` passes.
"""

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

SKIP_DIRS = {'.git', '.venv', 'build', 'install', 'log', 'results', '__pycache__', '.pytest_cache',
             '.ruff_cache', '.hypothesis', 'data'}
EXECUTABLES = ['pose-kp', 'pose_kp_node']


def colcon(*args, cwd, env):
    """Run colcon from the test interpreter's environment and return the completed process."""
    return subprocess.run([sys.executable, '-m', 'colcon', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def tracked_files(repo_root):
    """Return the repository's files (tracked or new, not ignored), relative to its root."""
    listing = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                             cwd=repo_root, capture_output=True, text=True)
    if listing.returncode == 0:
        return [Path(p) for p in listing.stdout.splitlines() if (repo_root / p).is_file()]
    return [p.relative_to(repo_root) for p in repo_root.rglob('*')
            if p.is_file() and not SKIP_DIRS & set(p.relative_to(repo_root).parts)]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, repo_root):
    """Return a colcon workspace with this package copied under src/."""
    ws = tmp_path_factory.mktemp('colcon_ws')
    package = ws / 'src' / 'pose_kp_ros'
    for rel in tracked_files(repo_root):
        if rel.parts[0] in ('interfaces',):  # built separately where needed, not part of the pkg
            continue
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / rel, package / rel)
    return ws


@pytest.mark.integration
def test_colcon_build_installs_executables_and_data(workspace, ros_env, repo_root):
    result = colcon('build', '--packages-select', 'pose_kp_ros', '--event-handlers',
                    'console_direct-', cwd=workspace, env=ros_env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    prefix = workspace / 'install' / 'pose_kp_ros'
    for name in EXECUTABLES:
        assert (prefix / 'lib' / 'pose_kp_ros' / name).is_file(), f'{name} not in lib/pose_kp_ros'
    share = prefix / 'share' / 'pose_kp_ros'
    assert (share / 'package.xml').is_file()
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (index / 'pose_kp_ros').is_file()
    for folder in ('launch', 'objects', 'models'):
        for source in sorted((repo_root / folder).glob('*')):
            if source.is_file() and source.name != '.gitkeep':
                assert (share / folder / source.name).is_file(), f'{folder}/{source.name} missing'
    # config/: only what a user runs; the training recipes stay in the repository
    installed = sorted(p.name for p in (share / 'config').iterdir())
    assert installed == ['pose_kp.rviz', 'pose_kp_node.yaml', 'train_detector_example.yaml',
                         'train_example.yaml']

    # Every executable the launch files and the demo start (launch_graph) is installed.
    from pose_kp_ros.launch_graph import demo_graph, pose_kp_node_spec
    for spec in [pose_kp_node_spec()] + demo_graph(frames=1):
        assert (prefix / 'lib' / spec.package / spec.executable).is_file(), spec.executable
        for path in spec.parameter_files:
            assert (share / 'config' / Path(path).name).is_file(), path
    for launch_file in ('pose_kp.launch.py', 'demo.launch.py'):
        assert (share / 'launch' / launch_file).is_file()

    # The installed executable starts and imports the installed package, not the source tree.
    started = subprocess.run(
        ['bash', '-c', '. install/setup.sh && install/pose_kp_ros/lib/pose_kp_ros/pose-kp --help'
         ' && python -c "import pose_kp_ros; print(pose_kp_ros.__file__)"'],
        cwd=workspace, env=ros_env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    assert 'usage: pose-kp' in started.stdout
    assert str(workspace / 'install') in started.stdout.splitlines()[-1]


@pytest.mark.integration
def test_colcon_test_passes(workspace, ros_env):
    # The lint test is the package's fast check; the full suite runs in the same CI job already.
    result = colcon('test', '--packages-select', 'pose_kp_ros', '--return-code-on-test-failure',
                    '--event-handlers', 'console_direct-',
                    '--pytest-args', 'test/test_lint.py', cwd=workspace, env=ros_env)
    results = colcon('test-result', '--all', '--verbose', cwd=workspace, env=ros_env)
    assert result.returncode == 0, result.stdout[-3000:] + results.stdout[-3000:]
    assert results.returncode == 0, results.stdout + results.stderr
    assert '0 errors, 0 failures' in results.stdout, results.stdout
