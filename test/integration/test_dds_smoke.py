"""Two real processes over real DDS (loopback only): Image, CameraInfo and TF arrive intact."""

import hashlib
import json
from pathlib import Path
import subprocess

import numpy as np
import pytest

PROCESSES = Path(__file__).parent / 'processes'


@pytest.mark.integration
def test_image_camera_info_and_tf_cross_processes(ros_env, python_exe):
    receiver = subprocess.Popen([python_exe, str(PROCESSES / 'smoke_receiver.py'), '30'],
                                env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    publisher = subprocess.Popen([python_exe, str(PROCESSES / 'smoke_publisher.py'), '30'],
                                 env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    out, err = receiver.communicate(timeout=60)
    pub_out, pub_err = publisher.communicate(timeout=60)
    assert receiver.returncode == 0, f'receiver:\n{out}\n{err}\npublisher:\n{pub_out}{pub_err}'
    got = json.loads(out.strip().splitlines()[-1])

    expected = np.random.default_rng(7).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    assert got['image']['shape'] == [480, 640, 3]
    assert got['image']['sha256'] == hashlib.sha256(expected.tobytes()).hexdigest()
    assert got['image']['frame_id'] == 'camera_optical_frame'
    assert got['camera_info']['k'][0] == pytest.approx(572.4114)
    assert (got['camera_info']['width'], got['camera_info']['height']) == (640, 480)
    assert got['tf'] == [{'child': 'driller_0', 'parent': 'camera_optical_frame', 'z': 1.0}]
    assert publisher.returncode == 0, pub_err
