"""StageTimer / StageHistory: stages named, nested, counted and summed (no timing assertions)."""

import platform
import shutil
import threading

from pose_kp_ros.pipeline.stage_timer import (
    TOTAL,
    StageHistory,
    StageTimer,
    cpu_model,
    parents_first,
    stage_table,
)


def test_stages_are_named_nested_counted_and_accumulate():
    timer = StageTimer()
    for _ in range(3):
        with timer.stage('network'):
            with timer.stage('crops'):
                pass
    with timer.stage('solver'):
        pass
    assert list(timer.seconds) == ['network', 'network/crops', 'solver']  # in starting order
    assert timer.counts == {'network': 3, 'network/crops': 3, 'solver': 1}
    assert all(seconds >= 0.0 for seconds in timer.seconds.values())
    assert timer.seconds['network'] >= timer.seconds['network/crops']  # the parent holds it
    assert set(timer.milliseconds()) == set(timer.seconds)


def test_a_stage_left_by_an_exception_is_still_recorded():
    timer = StageTimer()
    try:
        with timer.stage('detector'):
            raise ValueError('bad frame')
    except ValueError:
        pass
    with timer.stage('solver'):  # top level again: not nested under 'detector'
        pass
    assert timer.counts == {'detector': 1, 'solver': 1}


def test_add_tally_merge_and_reset():
    node, pipeline = StageTimer(), StageTimer()
    node.add('conversion', 0.002)
    pipeline.add('network', 0.010)
    pipeline.add('network', 0.005)
    pipeline.tally('crops from search', 3)
    node.merge(pipeline)
    assert node.counts == {'conversion': 1, 'network': 2}
    assert abs(node.milliseconds()['network'] - 15.0) < 1e-9
    assert node.tallies == {'crops from search': 3}
    node.reset()
    assert node.seconds == {} and node.counts == {} and node.tallies == {}


def frame(**stages_ms):
    timer = StageTimer()
    for name, ms in stages_ms.items():
        timer.add(name.replace('__', '/'), ms * 1e-3)
    timer.tally('crops from search', 2)
    return timer


def test_history_summary_counts_skipped_stages_as_zero():
    history = StageHistory(maxlen=2)
    history.add(frame(detector=100.0))  # pushed out by maxlen
    history.add(frame(network=10.0, network__crops=1.0))
    history.add(frame(network=20.0, detector=4.0))
    assert len(history) == 2
    summary = history.summary()
    assert list(summary) == ['network', 'network/crops', 'detector']
    assert summary['network'] == {'median_ms': 15.0, 'mean_ms': 15.0, 'frames_run': 2}
    assert summary['detector']['median_ms'] == 2.0 and summary['detector']['frames_run'] == 1
    assert history.tallies() == {'crops from search': 2.0}
    history = StageHistory()
    history.add(frame(network=1.0, detector=1.0))
    history.add(frame(solver=1.0, network__crops__cut=1.0, network__crops=1.0))
    # nested stages seen late still follow their parents
    assert list(history.summary()) == ['network', 'network/crops', 'network/crops/cut',
                                       'detector', 'solver']
    assert parents_first(['a/b/c', 'd', 'a']) == ['d', 'a', 'a/b/c']  # no parent 'a/b'
    assert StageHistory().summary() == {}


def test_history_is_filled_from_several_threads():
    history = StageHistory(maxlen=50)
    threads = [threading.Thread(target=lambda: [history.add(frame(solver=1.0))
                                                for _ in range(100)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(history) == 50 and history.summary()['solver']['frames_run'] == 50


def test_table_indents_nested_stages_and_ends_with_the_total():
    history = StageHistory()
    history.add(frame(network=10.0, network__crops=1.0, solver=2.0, **{TOTAL: 13.0}))
    lines = stage_table(history.summary(), history.tallies()).splitlines()
    assert lines[1].startswith('network') and lines[2].startswith('  crops')
    assert lines[-3].startswith('untimed rest') and lines[-3].split()[-1] == '1.00'
    assert lines[-2].startswith(TOTAL) and 'crops from search' in lines[-1]
    history = StageHistory()  # a stage that ran on another thread is not part of the sum
    history.add(frame(network=10.0, solver=2.0, **{'detector (concurrent)': 6.0, TOTAL: 13.0}))
    lines = stage_table(history.summary()).splitlines()
    assert lines[-2].startswith('untimed rest') and lines[-2].split()[-1] == '1.00'


def test_cpu_model_names_more_than_a_bare_model_name():
    """Timings name their CPU: model name plus lscpu's family / model and vector unit."""
    text = cpu_model()
    assert text.strip()
    if shutil.which('lscpu') and platform.machine() == 'x86_64':
        assert 'model ' in text and text.endswith(')'), text
