"""`pose-kp demo`: its LM-O objects (one by name, or all with a model) and the graph it starts."""

import pytest

from pose_kp_ros.data.package_data import (
    LMO_OBJECT_IDS,
    lmo_ground_truth,
    lmo_object_id,
    lmo_object_names,
    lmo_objects_frames,
)
from pose_kp_ros.launch_graph import DemoObjects, demo_graph, demo_objects
from pose_kp_ros.paths import data_path
from pose_kp_ros.tools.demo import main, parse_args


def test_the_object_name_is_the_only_object_option(capsys):
    assert parse_args(['--object', 'ape']).object == 'ape'
    with pytest.raises(SystemExit):
        parse_args(['--object', 'ape', '--object-id', '1'])
    with pytest.raises(SystemExit):
        parse_args(['--object', 'widget'])
    assert 'invalid choice' in capsys.readouterr().err


def test_lmo_ids_come_from_one_table():
    assert lmo_object_id('ape') == 1 and lmo_object_id('driller') == 8
    assert sorted(LMO_OBJECT_IDS.values()) == [1, 5, 6, 8, 9, 10, 11, 12]
    with pytest.raises(ValueError, match="'widget' is not an LM-O object"):
        lmo_object_id('widget')


def test_all_is_an_object_choice():
    assert parse_args(['--object', 'all']).object == 'all'
    assert parse_args([]).object == 'driller'


def test_lmo_object_names_take_all_a_list_or_a_comma_separated_string():
    assert lmo_object_names('all') == sorted(LMO_OBJECT_IDS)
    assert lmo_object_names('driller, ape') == lmo_object_names(['driller', 'ape', 'driller'])
    assert lmo_object_names('ape') == ['ape']
    with pytest.raises(ValueError, match="'widget' is not an LM-O object"):
        lmo_object_names(['ape', 'widget'])


def test_photos_of_several_objects_name_only_the_annotated_ones():
    photos = lmo_objects_frames(['driller', 'ape'])
    assert len(photos) == 200  # the driller is in every photo, the ape in 187
    assert sum('ape' in truths for _, truths in photos) == len(lmo_ground_truth(1))
    first = photos[:20]
    assert [path.stem for path, truths in first if 'ape' not in truths] == ['000039', '000064']
    path, truths = photos[0]
    R, t = truths['driller']
    assert R.shape == (3, 3) and t.shape == (3,)


def write_config(folder, names):
    """Write a pipeline YAML listing objects/<name>.yaml (model files need not exist)."""
    lines = ['objects:'] + [f'  - object: {data_path("objects", f"{name}.yaml")}\n'
                            f'    keypoint_model: {folder / f"{name}.onnx"}' for name in names]
    path = folder / 'pipeline.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def test_all_is_every_lmo_object_the_pipeline_config_has_a_model_for(tmp_path):
    shipped = demo_objects('all')
    assert shipped.evaluated == ('driller',) and len(shipped.skipped) == 7
    assert shipped.table == tuple(sorted(LMO_OBJECT_IDS))
    two = demo_objects('all', write_config(tmp_path, ['driller', 'box_tea', 'eggbox']))
    assert two.evaluated == ('driller', 'eggbox')  # box_tea is not an LM-O object
    assert 'eggbox' not in two.skipped and len(two.skipped) == 6
    assert demo_objects('ape') == DemoObjects(('ape',))  # one object: no table
    with pytest.raises(ValueError, match='has no model for an LM-O object'):
        demo_objects('all', write_config(tmp_path, ['box_tea']))


def test_demo_graph_of_several_objects_remaps_each_one_and_asks_for_the_table(tmp_path):
    config = write_config(tmp_path, ['driller', 'ape'])
    pose, evaluator, camera = demo_graph(objects='all', frames=20, pipeline_config=config)
    parameters, remappings = dict(evaluator.parameters), dict(evaluator.remappings)
    assert dict(camera.parameters)['object_names'] == ['ape', 'driller']
    assert parameters['objects'] == ['ape', 'driller'] and parameters['stem'] == 'demo'
    assert parameters['table_objects'] == sorted(LMO_OBJECT_IDS)
    assert "pipeline config's models" in parameters['training_data']
    for name in ('ape', 'driller'):
        assert remappings[f'pose/{name}'] == f'/pose_kp/pose/{name}'
        assert remappings[f'ground_truth/{name}'] == f'/lmo_camera/ground_truth/{name}'
    assert ('pipeline_config', config) in pose.parameters
    _, single, _ = demo_graph(frames=5)  # the default demo: as before
    assert dict(single.parameters)['stem'] == 'demo_driller'
    assert 'table_objects' not in dict(single.parameters)


def test_demo_refuses_a_config_without_lmo_objects_before_starting_anything(tmp_path, capsys):
    assert main(['--object', 'all', '--pipeline-config',
                 write_config(tmp_path, ['box_tea'])]) == 2
    assert 'has no model for an LM-O object' in capsys.readouterr().err
