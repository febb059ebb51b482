import json
from pathlib import Path
import sys
import zipfile

import numpy as np
import pytest
import torch

from pose_kp_ros.network.checkpoint import load_checkpoint, load_model, make_meta
from pose_kp_ros.network.checkpoint_format import CheckpointError, save_checkpoint
from pose_kp_ros.network.crops import crop_boxes, low_pass_crops
from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet
from pose_kp_ros.network.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.onnx_runtime import (
    OnnxNetwork,
    execution_providers,
    load_onnx_model,
)
from pose_kp_ros.network.predictor import KeypointPredictor, normalise_crops
from pose_kp_ros.tools.export_model import main as export_main

NAMES = ['tip', 'left', 'tail', 'right']


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('checkpoint')
    torch.manual_seed(0)
    config = HourglassConfig(num_keypoints=4, num_stacks=2, features=16, depth=2,
                             input_size=32, heatmap_stride=2)
    model = HourglassNet(config).eval()
    meta = make_meta(config, 'kite', NAMES, 'tiny', 1.25, 2.0, IMAGENET_MEAN, IMAGENET_STD,
                     training_config={'lr': 0.001}, epoch=3)
    path = tmp_path / 'model.pt'
    save_checkpoint(path, model, meta, training={'epoch': 3})
    return path, model


def export_beside(saved, name):
    """Export the saved checkpoint with `pose-kp export` to `name` beside it; return the path."""
    out = saved[0].parent / name
    assert export_main([str(saved[0]), '--out', str(out)]) == 0
    return out


@pytest.fixture(scope='module')
def exported(saved):
    return export_beside(saved, 'exported.pt2')


@pytest.fixture(scope='module')
def exported_onnx(saved):
    return export_beside(saved, 'exported.onnx')


def test_save_load_round_trip(saved):
    path, model = saved
    checkpoint = load_checkpoint(path, NAMES, 'kite')
    assert checkpoint.meta['keypoint_names'] == NAMES
    assert checkpoint.meta['epoch'] == 3 and checkpoint.training == {'epoch': 3}
    assert checkpoint.meta['code_version'].startswith('0.')
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.model(x)[-1], model(x)[-1])
    assert not list(path.parent.glob('.model.pt.*.tmp'))  # no temporary file left behind


@pytest.mark.parametrize('names, object_name, message', [
    (NAMES[:3], None, r'keypoint count mismatch: checkpoint has 4 .* object model has 3'),
    (['tip', 'tail', 'left', 'right'], None, r"keypoint order mismatch at index 1 \('left'"),
    (['tip', 'left', 'tail', 'nose'], None, r"checkpoint has \['right'\] .* has \['nose'\]"),
    (None, 'driller', "trained for object 'kite', not 'driller'"),
])
def test_mismatch_messages_name_file_and_difference(saved, names, object_name, message):
    path, _ = saved
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path, names, object_name)
    assert str(caught.value).startswith(str(path)) and '\n' not in str(caught.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match='checkpoint file not found'):
        load_checkpoint(tmp_path / 'absent.pt')
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises(CheckpointError, match='not a pose_kp_ros checkpoint') as caught:
        load_checkpoint(garbage)
    assert '\n' not in str(caught.value)
    foreign = tmp_path / 'foreign.pt'
    torch.save({'state_dict': {}}, foreign)
    with pytest.raises(CheckpointError, match='not a pose_kp_ros checkpoint'):
        load_model(foreign)


def test_export_gives_same_heatmaps_and_metadata(saved, exported, tmp_path):
    _, model = saved
    program, meta = load_model(exported, NAMES, 'kite')
    assert meta['keypoint_names'] == NAMES and meta['input_size'] == 32
    assert exported.with_name('exported.pt2.json').exists()
    assert (Path.cwd() / meta['exported_from']).resolve() == saved[0].resolve()
    assert not Path(meta['exported_from']).is_absolute()
    # The archive (its graph's stack traces included) names no absolute path of this machine.
    with zipfile.ZipFile(exported) as archive:
        text = b''.join(archive.read(name) for name in archive.namelist())
    assert str(Path(__file__).resolve().parents[3]).encode() not in text
    assert str(Path(torch.__file__).parent).encode() not in text
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x)[-1], atol=1e-5, rtol=0)
    with pytest.raises(CheckpointError, match='keypoint order mismatch'):
        load_model(exported, NAMES[::-1])
    with pytest.raises(CheckpointError, match='an exported model'):
        load_checkpoint(exported)
    assert export_main([str(tmp_path / 'absent.pt'), '--out', str(tmp_path / 'x.pt2')]) == 2


def test_predictor_returns_image_pixels_from_any_file(saved, exported, exported_onnx):
    path, _ = saved
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = [[10, 10, 40, 30], [50, 20, 70, 55]]
    results = [KeypointPredictor.from_file(p, NAMES, 'kite').predict(image, boxes)
               for p in (path, exported, exported_onnx)]
    for result in results:
        assert result.keypoints.shape == (2, 4, 2) and result.confidence.shape == (2, 4)
        assert result.heatmaps.shape == (2, 4, 16, 16)
        assert np.isfinite(result.keypoints).all()
        # Keypoints lie in the padded square around each box (heatmaps cover only the crop).
        for box, points in zip(boxes, result.keypoints):
            half = 1.25 * max(box[2] - box[0], box[3] - box[1]) / 2
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            assert (np.abs(points - centre) <= half + 1e-6).all()
    for result in results[1:]:
        torch.testing.assert_close(result.heatmaps, results[0].heatmaps, atol=1e-5, rtol=0)
        np.testing.assert_allclose(result.keypoints, results[0].keypoints, atol=1e-4)
        np.testing.assert_allclose(result.confidence, results[0].confidence, atol=1e-5)


def test_onnx_export_gives_same_heatmaps_and_metadata(saved, exported_onnx):
    path, model = saved
    network, meta = load_model(exported_onnx, NAMES, 'kite')
    assert isinstance(network, OnnxNetwork)
    assert meta == {**load_checkpoint(path).meta, 'export': 'onnx',
                    'exported_from': meta['exported_from']}
    assert json.loads(exported_onnx.with_name('exported.onnx.json').read_text()) == meta
    assert (Path.cwd() / meta['exported_from']).resolve() == path.resolve()
    assert not Path(meta['exported_from']).is_absolute()
    # The model (the exporter's stack traces removed) names no absolute path of this machine.
    data = exported_onnx.read_bytes()
    assert str(Path(__file__).resolve().parents[3]).encode() not in data
    assert str(Path(torch.__file__).parent.parent).encode() not in data
    for batch in (1, 3, 8):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(network(x), model(x)[-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize('names, object_name, message', [
    (NAMES[::-1], None, 'keypoint order mismatch at index 0'),
    (['tip', 'left', 'tail', 'nose'], None, 'keypoint name mismatch'),
    (None, 'driller', "trained for object 'kite', not 'driller'"),
])
def test_onnx_model_for_other_keypoints_fails_in_one_line(exported_onnx, names, object_name,
                                                          message):
    with pytest.raises(CheckpointError, match=message) as caught:
        load_model(exported_onnx, names, object_name)
    assert str(caught.value).startswith(str(exported_onnx)) and '\n' not in str(caught.value)


def test_onnx_loading_errors_are_one_line(saved, exported_onnx, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match=r'an exported model \(\.onnx\), not a training'):
        load_checkpoint(exported_onnx)
    with pytest.raises(CheckpointError, match='absent.onnx: model file not found'):
        load_model(tmp_path / 'absent.onnx')
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a model at all' * 10)
    with pytest.raises(CheckpointError, match='garbage.onnx: unreadable ONNX model'):
        load_model(garbage)
    assert export_main([str(exported_onnx), '--out', str(tmp_path / 'x.onnx')]) == 2
    assert export_main([str(saved[0]), '--out', str(tmp_path / 'x.ts')]) == 2
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # as if not installed
    with pytest.raises(CheckpointError, match='onnxruntime is not installed') as caught:
        load_model(exported_onnx, NAMES)
    assert '\n' not in str(caught.value)


def test_onnx_runtime_threads_and_providers(exported_onnx):
    network, _ = load_onnx_model(exported_onnx)
    assert network.session.get_providers() == ['CPUExecutionProvider']
    assert network.session.get_session_options().intra_op_num_threads == torch.get_num_threads()
    network, _ = load_onnx_model(exported_onnx, threads=2)
    assert network.session.get_session_options().intra_op_num_threads == 2
    gpu = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert execution_providers('cpu', gpu) == ['CPUExecutionProvider']
    assert execution_providers('cuda:1', gpu) == [
        ('TensorrtExecutionProvider', {'device_id': 1}),
        ('CUDAExecutionProvider', {'device_id': 1}), 'CPUExecutionProvider']
    assert execution_providers('cuda', ['CPUExecutionProvider']) == ['CPUExecutionProvider']


def test_predictor_low_pass_filters_its_crops_as_the_checkpoint_says(saved, tmp_path):
    path, model = saved
    meta = load_checkpoint(path).meta
    assert meta['low_pass_px'] == 0.0
    blurred_path = tmp_path / 'low_pass.pt'
    save_checkpoint(blurred_path, model, dict(meta, low_pass_px=1.5))
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = [[10, 10, 40, 30], [50, 20, 70, 55]]
    plain = KeypointPredictor.from_file(path, NAMES, 'kite')
    filtered = KeypointPredictor.from_file(blurred_path, NAMES, 'kite')
    assert filtered.low_pass_px == 1.5
    crops, affines = crop_boxes(image, boxes, plain.input_size, plain.padding)
    expected = model(normalise_crops(low_pass_crops(crops, affines, 1.5), meta['mean'],
                                     meta['std']))[-1]
    torch.testing.assert_close(filtered.predict(image, boxes).heatmaps, expected.detach())
    assert not torch.allclose(plain.predict(image, boxes).heatmaps, expected.detach())
    del meta['low_pass_px']  # checkpoints from before the option: no filter
    save_checkpoint(blurred_path, model, meta)
    assert KeypointPredictor.from_file(blurred_path, NAMES, 'kite').low_pass_px == 0.0


