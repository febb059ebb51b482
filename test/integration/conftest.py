"""Fixtures for tests that run the real node: pipeline configs and node processes."""

import json
from pathlib import Path
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_untrained_keypoints(path, object_name, preset, **overrides):
    """Write an UNTRAINED (seeded, randomly initialised) keypoint checkpoint for objects/<name>."""
    import torch

    from pose_kp_ros.geometry.object_model import ObjectModel
    from pose_kp_ros.network.checkpoint import make_meta
    from pose_kp_ros.network.checkpoint_format import save_checkpoint
    from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet

    model = ObjectModel.from_yaml(REPO_ROOT / 'objects' / f'{object_name}.yaml')
    torch.manual_seed(0)
    config = HourglassConfig.from_preset(preset, model.num_keypoints, **overrides)
    meta = make_meta(config, model.name, model.keypoint_names, preset, padding=1.25, sigma=2.0,
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    save_checkpoint(path, HourglassNet(config), meta)
    return path


def write_untrained_pipeline(folder, preset, **overrides):
    """Write a driller pipeline YAML with an UNTRAINED keypoint network; return its path.

    Its poses are meaningless: it exercises the node's plumbing (inputs, faults, rates, outputs),
    not accuracy (accuracy tests use the trained default model).
    """
    write_untrained_keypoints(folder / 'keypoints.pt', 'driller', preset, **overrides)
    pipeline = folder / 'pipeline.yaml'
    pipeline.write_text(f'objects:\n  - object: {REPO_ROOT / "objects" / "driller.yaml"}\n'
                        f'    keypoint_model: {folder / "keypoints.pt"}\n'
                        'thresholds: {min_score: 0.0, min_valid_keypoints: 4, '
                        'max_reprojection_error_px: 1000.0, min_keypoint_confidence: 0.0}\n')
    return pipeline


@pytest.fixture(scope='session')
def untrained_keypoints():
    """Return write_untrained_keypoints(path, object_name, preset, **overrides) (see above)."""
    return write_untrained_keypoints


@pytest.fixture(scope='session')
def untrained_pipeline(tmp_path_factory):
    """Return a pipeline YAML with a small, fast untrained network (see above)."""
    return write_untrained_pipeline(tmp_path_factory.mktemp('untrained'), 'cpu', num_stacks=1,
                                    features=16)


@pytest.fixture(scope='session')
def slow_untrained_pipeline(tmp_path_factory):
    """Return a pipeline YAML with the untrained 'paper' network (slower than a 60 Hz camera)."""
    return write_untrained_pipeline(tmp_path_factory.mktemp('slow_untrained'), 'paper')


def node_command(*ros_args):
    """Return the command starting the installed pose_kp_node executable with ROS args."""
    executable = Path(sys.executable).with_name('pose_kp_node')
    return [str(executable), '--ros-args', '-r', 'image:=/camera/image',
            '-r', 'camera_info:=/camera/camera_info', '-p', 'image_qos:=reliable', *ros_args]


class NodeProcess:
    """A pose_kp_node child process; stop() sends SIGINT and returns (exit code, output)."""

    def __init__(self, env, *ros_args):
        self.process = subprocess.Popen(node_command(*ros_args), env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def alive(self):
        return self.process.poll() is None

    def wait_exit(self, timeout=60):
        """Wait for the process to exit by itself; return (exit code, output)."""
        output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, output

    def stop(self, timeout=20):
        if self.alive():
            self.process.send_signal(signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


@pytest.fixture
def start_node(ros_env):
    """Start pose_kp_node processes (stopped with SIGINT at the end of the test)."""
    started = []

    def start(*ros_args):
        node = NodeProcess(ros_env, *ros_args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


CAMERA_DRIVER = Path(__file__).parent / 'processes' / 'camera_driver.py'


class DriverProcess:
    """A camera_driver.py child running in the background, read line by line as it streams."""

    def __init__(self, env, plan):
        self.process = subprocess.Popen([sys.executable, str(CAMERA_DRIVER), json.dumps(plan)],
                                        env=env, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        self.output = []
        self.progress = {'sent': 0, 'detections': 0}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _take(self, timeout):
        """Read one line (None at end of output or after `timeout` s); track progress."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if line is not None:
            self.output.append(line)
            if line.startswith('progress '):
                self.progress = json.loads(line.split(' ', 1)[1])
        return line

    def wait_progress(self, sent=0, detections=0, timeout=60.0):
        """Wait until at least `sent` frames went out and `detections` outputs came back.

        Returns the newest progress {'sent': n, 'detections': m} (without arguments: now).
        """
        while not self.lines.empty():
            self._take(0.0)
        end = time.monotonic() + timeout
        while self.progress['sent'] < sent or self.progress['detections'] < detections:
            if time.monotonic() > end or self.process.poll() is not None and self.lines.empty():
                raise AssertionError(f'driver progress {self.progress} never reached '
                                     f'sent={sent} detections={detections}: '
                                     + ''.join(self.output[-20:]))
            self._take(end - time.monotonic())
        return dict(self.progress)

    def finish(self, timeout=120.0):
        """End the stream (SIGUSR1), let the driver settle; return its JSON report."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
        end = time.monotonic() + timeout
        while self._take(end - time.monotonic()) is not None:
            pass
        assert self.process.wait(timeout=10) == 0, ''.join(self.output[-30:])
        return json.loads(self.output[-1])

    def kill(self):
        """SIGKILL the driver (a camera process crashing mid-stream)."""
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def benchmarks_path(monkeypatch):
    """Make benchmarks/*.py importable (their shared helpers, the soak's code path)."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / 'benchmarks'))


@pytest.fixture
def start_driver(ros_env):
    """Start camera drivers in the background with a plan (killed at the end of the test)."""
    started = []

    def start(plan):
        driver = DriverProcess(ros_env, plan)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        if driver.process.poll() is None:
            driver.kill()


@pytest.fixture
def run_driver(ros_env):
    """Return a function running the camera driver with a plan (dict) -> its JSON report."""

    def run(plan, timeout=180):
        result = subprocess.run([sys.executable, str(CAMERA_DRIVER), json.dumps(plan)],
                                env=ros_env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run
