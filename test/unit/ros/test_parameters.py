"""The node's parameter table: validation, the shipped YAML and the docs agree with it."""

import yaml

from pose_kp_ros.ros.parameters import (
    NODE_PARAMETERS,
    SPECS,
    THRESHOLD_PARAMETERS,
    parameter_table_markdown,
)


def test_checks_types_ranges_choices_and_patterns():
    assert SPECS['max_misses'].check(3) is None
    assert 'expected int' in SPECS['max_misses'].check(2.5)
    assert 'expected int' in SPECS['max_misses'].check(True)
    assert 'below the minimum' in SPECS['search_interval'].check(0)
    assert SPECS['min_score'].check(1) is None  # an int is fine for a float
    assert 'above the maximum' in SPECS['min_score'].check(1.5)
    assert 'not one of' in SPECS['image_transport'].check('theora')
    assert SPECS['device'].check('cuda:1') is None
    assert 'does not match' in SPECS['device'].check('tpu')
    assert 'below the minimum' in SPECS['min_score'].check(-1.0)  # no 'from the config' value


def test_defaults_pass_their_own_checks():
    assert all(spec.check(spec.default) is None for spec in NODE_PARAMETERS)


def test_shipped_yaml_sets_every_parameter_to_its_default(repo_root):
    values = yaml.safe_load((repo_root / 'config' / 'pose_kp_node.yaml').read_text())
    params = values['/**']['ros__parameters']
    # The thresholds are left out: they start at the pipeline config's values.
    assert set(params) == set(SPECS) - set(THRESHOLD_PARAMETERS)
    for name, value in params.items():
        assert value == SPECS[name].default, name


def test_docs_table_is_current(repo_root):
    assert parameter_table_markdown() in (repo_root / 'docs' / 'node.md').read_text(), \
        'regenerate the table in docs/node.md from parameter_table_markdown()'
