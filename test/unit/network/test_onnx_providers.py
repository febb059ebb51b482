"""ONNX Runtime on a CUDA device, checked without a GPU, and the one-run batch.

The TensorRT profile and cache, narrowing to CUDA, the fallback warnings: the sessions run on
the CPU, and what a GPU machine would be asked is read from the arguments.
"""

import json
import logging

import numpy as np
import onnxruntime
import pytest
import torch

from pose_kp_ros.network.checkpoint import make_meta
from pose_kp_ros.network.hourglass import FinalHeatmaps, HourglassConfig, HourglassNet
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.onnx_export import write_onnx
from pose_kp_ros.network.onnx_runtime import (
    PROVIDERS_ENV,
    TRT_BATCH,
    TRT_CACHE_ENV,
    OnnxNetwork,
    execution_providers,
    load_onnx_model,
    tensorrt_options,
)
from pose_kp_ros.network.predictor import KeypointPredictor

GPU = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
NAMES = ['a', 'b', 'c']


@pytest.fixture(scope='module')
def tiny_onnx(tmp_path_factory):
    torch.manual_seed(0)
    config = HourglassConfig(num_keypoints=3, num_stacks=1, features=8, depth=1,
                             input_size=16, heatmap_stride=2)
    meta = make_meta(config, 'kite', NAMES, 'tiny', 1.25, 2.0, IMAGENET_MEAN, IMAGENET_STD)
    path = tmp_path_factory.mktemp('onnx') / 'tiny.onnx'
    write_onnx(FinalHeatmaps(HourglassNet(config).eval()).eval(), torch.zeros(2, 3, 16, 16),
               ['heatmaps'], json.dumps(meta), path)
    return path


class CountingSession:
    """An ONNX Runtime session that records the batch size of every run."""

    def __init__(self, session):
        self.session = session
        self.batches = []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def run(self, outputs, feed):
        self.batches.append(len(next(iter(feed.values()))))
        return self.session.run(outputs, feed)


def test_tensorrt_gets_a_batch_profile_and_an_engine_cache(tmp_path):
    options = tensorrt_options({'images': (3, 128, 128)}, (1, 4, 32), tmp_path / 'engines')
    assert options['trt_profile_min_shapes'] == 'images:1x3x128x128'
    assert options['trt_profile_opt_shapes'] == 'images:4x3x128x128'
    assert options['trt_profile_max_shapes'] == 'images:32x3x128x128'
    assert options['trt_engine_cache_enable'] == 'True'
    assert options['trt_engine_cache_path'] == str(tmp_path / 'engines')
    assert (tmp_path / 'engines').is_dir()
    assert tensorrt_options() == {}
    providers = execution_providers('cuda:1', GPU, input_shapes={'images': (3, 16, 16)})
    assert [p if isinstance(p, str) else p[0] for p in providers] == GPU
    assert providers[0][1]['device_id'] == 1 and providers[1][1] == {'device_id': 1}
    assert providers[0][1]['trt_profile_max_shapes'] == f'images:{TRT_BATCH[2]}x3x16x16'


def test_providers_can_be_narrowed_to_cuda():
    assert execution_providers('cuda', GPU, only=['CUDAExecutionProvider']) == [
        ('CUDAExecutionProvider', {'device_id': 0}), 'CPUExecutionProvider']
    assert execution_providers('cpu', GPU, only=['CUDAExecutionProvider']) == [
        'CPUExecutionProvider']


def test_cuda_device_asks_for_tensorrt_with_profile_and_warns_when_it_does_not_run(
        tiny_onnx, tmp_path, monkeypatch, caplog):
    asked = []
    real_session = onnxruntime.InferenceSession

    def session(path, options=None, providers=None):
        if providers != ['CPUExecutionProvider']:
            asked.append(providers)
        return real_session(path, options, providers=['CPUExecutionProvider'])

    monkeypatch.setattr(onnxruntime, 'get_available_providers', lambda: list(GPU))
    monkeypatch.setattr(onnxruntime, 'InferenceSession', session)
    monkeypatch.setenv(TRT_CACHE_ENV, str(tmp_path / 'cache'))
    with caplog.at_level(logging.WARNING):
        network, meta = load_onnx_model(tiny_onnx, 'cuda')
    assert meta['keypoint_names'] == NAMES
    (trt, trt_options), (cuda, _), cpu = asked[-1]
    assert (trt, cuda, cpu) == tuple(GPU)
    assert trt_options['trt_profile_min_shapes'] == 'images:1x3x16x16'
    assert trt_options['trt_engine_cache_path'] == str(tmp_path / 'cache')
    assert network.max_batch == TRT_BATCH[2] and network.providers == ['CPUExecutionProvider']
    assert 'TensorrtExecutionProvider could not start' in caplog.text
    assert 'CUDAExecutionProvider could not start' in caplog.text

    monkeypatch.setenv(PROVIDERS_ENV, 'CUDAExecutionProvider')
    network, _ = load_onnx_model(tiny_onnx, 'cuda')
    assert [p[0] if isinstance(p, tuple) else p for p in asked[-1]] == GPU[1:]
    assert network.max_batch is None  # no TensorRT: any batch in one run
    network, _ = load_onnx_model(tiny_onnx, 'cpu')
    assert network.providers == ['CPUExecutionProvider'] and network.max_batch is None


def test_all_crops_go_in_one_run_and_a_larger_batch_than_the_profile_in_chunks(tiny_onnx):
    network, meta = load_onnx_model(tiny_onnx, threads=1)
    network.session = CountingSession(network.session)
    predictor = KeypointPredictor(network, meta)
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 30, 30], [20, 10, 60, 50], [0, 0, 79, 59], [40, 30, 70, 55],
                      [10, 20, 35, 58]], float)
    whole = predictor.predict(image, boxes)
    assert network.session.batches == [5]

    network.max_batch = 2  # as a TensorRT profile of at most 2 images would make it
    network.session.batches.clear()
    chunked = predictor.predict(image, boxes)
    assert network.session.batches == [2, 2, 1]
    np.testing.assert_allclose(chunked.heatmaps, whole.heatmaps, atol=1e-6)
    np.testing.assert_allclose(chunked.keypoints, whole.keypoints, atol=1e-6)


def test_tensors_around_a_session_stay_on_the_cpu(tiny_onnx):
    network, meta = load_onnx_model(tiny_onnx)
    assert isinstance(network, OnnxNetwork)
    assert KeypointPredictor(network, meta, device='cuda').tensor_device == 'cpu'
