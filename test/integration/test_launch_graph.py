"""What the launch files start (launch_graph) really starts: executables, params, remappings."""

import json
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
import pytest

from pose_kp_ros.launch_graph import demo_graph, pose_kp_node_spec

pytestmark = pytest.mark.integration


def test_node_starts_from_its_spec_with_the_shipped_parameter_file(ros_env, untrained_pipeline):
    spec = pose_kp_node_spec(image='/cam/image', camera_info='/cam/info', device='cpu',
                             pipeline_config=str(untrained_pipeline))
    executable = Path(sys.executable).with_name(spec.executable)
    process = subprocess.Popen([str(executable)] + spec.ros_arguments(), env=ros_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if 'ready:' in line:
            break
    process.send_signal(2)
    output = ''.join(lines) + process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "image '/cam/image', camera_info '/cam/info'" in output  # remappings applied
    assert 'on cpu' in output


def test_demo_graph_remaps_the_camera_into_the_node_and_the_evaluator():
    pose, evaluator, camera = demo_graph(frames=5)
    assert dict(camera.remappings)['image'] == dict(pose.remappings)['image']
    assert dict(evaluator.remappings)['pose/driller'] == '/pose_kp/pose/driller'
    assert dict(evaluator.remappings)['detections'] == '/pose_kp/detections'
    assert ('expected_frames', 5) in evaluator.parameters
    assert ('mosaic_every', 10) in evaluator.parameters
    assert ('debug_image_scale', 0.5) in pose.parameters
    _, without_overlay, _ = demo_graph(frames=5, debug_image_scale=0.0)
    assert ('mosaic_every', 0) in without_overlay.parameters  # no debug image subscriber
    args = pose.ros_arguments()
    assert args[:3] == ['--ros-args', '-r', '__node:=pose_kp']
    assert '--params-file' in args


def test_demo_camera_replays_the_frames_of_the_object_it_is_named_for(ros_env):
    from pose_kp_ros.data.package_data import lmo_ground_truth
    camera = demo_graph(objects='ape', frames=2)[2]
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / 'processes' / 'pose_receiver.py'),
         '/lmo_camera/ground_truth/ape', '2', '60'], env=ros_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    executable = Path(sys.executable).with_name(camera.executable)
    player = subprocess.run([str(executable)] + camera.ros_arguments(), env=ros_env,
                            capture_output=True, text=True, timeout=120)
    output = receiver.communicate(timeout=90)[0]
    assert player.returncode == 0, player.stdout + player.stderr
    assert receiver.returncode == 0, output
    received = json.loads(output.strip().splitlines()[-1])
    ape = [t for _, _, t in lmo_ground_truth(1)[:2]]  # LM-O object 1 is the ape
    assert np.allclose(received, ape, atol=1e-9), (received, ape)
