"""`pose-kp demo` names its LM-O object once: the LM-O id follows from the name."""

import pytest

from pose_kp_ros.data.package_data import LMO_OBJECT_IDS, lmo_object_id
from pose_kp_ros.tools.demo import parse_args


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
