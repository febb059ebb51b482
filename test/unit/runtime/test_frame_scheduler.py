"""The frame scheduler without ROS: newest frame, held frame, changes, detections, counters.

Workers are real threads that step through frames on events (no sleeps decide an outcome);
messages and cameras are plain strings, which the scheduler passes through untouched.
"""

import threading

import pytest

from pose_kp_ros.runtime.frame_scheduler import (
    COUNTERS,
    CameraChange,
    FrameScheduler,
    ParameterChange,
)
from pose_kp_ros.runtime.throttle import Throttle

JOIN_S = 60.0  # guards against a hang only


class Clock:
    """A clock the test moves by hand, seconds."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def ready_scheduler(**kwargs):
    """Return a scheduler that has had a usable camera_info ('camera A'), already handed out."""
    scheduler = FrameScheduler(**kwargs)
    scheduler.camera_received('camera A')
    assert scheduler.next_work().changes == (CameraChange('camera A'),)
    return scheduler


class Worker:
    """A worker thread: records what it applies and processes; pauses inside `pause_in` frames."""

    def __init__(self, scheduler, pause_in=()):
        self.scheduler, self.pause_in = scheduler, set(pause_in)
        self.events = []
        self.inside = {name: threading.Event() for name in self.pause_in}
        self.release = {name: threading.Event() for name in self.pause_in}
        self.answered = threading.Condition()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while (work := self.scheduler.next_work()) is not None:
            self.events += [('apply', change) for change in work.changes]
            if work.frame is None:
                continue
            name = work.frame.message
            self.events.append(('start', name))
            if name in self.pause_in:
                self.inside[name].set()
                self.release[name].wait(timeout=JOIN_S)
            self.events.append(('end', name))
            self.scheduler.frame_answered(work.frame)
            with self.answered:
                self.answered.notify_all()

    def wait_answered(self, name):
        """Wait until the worker has answered the frame `name`."""
        with self.answered:
            assert self.answered.wait_for(lambda: ('end', name) in self.events, timeout=JOIN_S)

    def stop(self):
        self.scheduler.stop()
        self.thread.join(timeout=JOIN_S)
        assert not self.thread.is_alive()


def test_the_worker_gets_the_newest_frame_and_older_ones_count_as_dropped():
    scheduler = ready_scheduler()
    for index in range(3):
        assert scheduler.offer_frame(f'image {index}', float(index)) is None
    work = scheduler.next_work()
    assert work.frame.message == 'image 2' and work.frame.stamp_s == 2.0 and work.changes == ()
    assert scheduler.counters()['frames_dropped'] == 2


def test_frames_arriving_while_the_worker_runs_leave_only_the_newest_for_it():
    scheduler = ready_scheduler()
    worker = Worker(scheduler, pause_in=['image 0'])
    scheduler.offer_frame('image 0', 0.0)
    assert worker.inside['image 0'].wait(timeout=JOIN_S)
    for index in (1, 2, 3):
        scheduler.offer_frame(f'image {index}', float(index))
    worker.release['image 0'].set()
    worker.wait_answered('image 3')
    worker.stop()
    assert [name for kind, name in worker.events if kind == 'start'] == ['image 0', 'image 3']
    counters = scheduler.counters()
    assert (counters['images_received'], counters['frames_processed'],
            counters['frames_dropped']) == (4, 2, 2)


def test_changes_reach_the_worker_between_frames_never_during_one():
    scheduler = ready_scheduler()
    worker = Worker(scheduler, pause_in=['image 0'])
    scheduler.offer_frame('image 0', 0.0)
    assert worker.inside['image 0'].wait(timeout=JOIN_S)
    scheduler.camera_received('camera B')  # new intrinsics (a tracker reset) mid-frame
    scheduler.submit(ParameterChange({'min_score': 0.5}))
    scheduler.offer_frame('image 1', 1.0)
    worker.release['image 0'].set()
    worker.wait_answered('image 1')
    worker.stop()
    assert worker.events == [
        ('start', 'image 0'), ('end', 'image 0'),
        ('apply', CameraChange('camera B')), ('apply', ParameterChange({'min_score': 0.5})),
        ('start', 'image 1'), ('end', 'image 1')]


def test_changes_without_frames_still_reach_the_worker():
    scheduler = ready_scheduler()
    worker = Worker(scheduler)
    scheduler.submit(ParameterChange({'publish_tf': False}))
    scheduler.camera_received('camera B')
    scheduler.offer_frame('image 0', 0.0)
    worker.wait_answered('image 0')
    worker.stop()
    assert worker.events == [('apply', ParameterChange({'publish_tf': False})),
                             ('apply', CameraChange('camera B')),
                             ('start', 'image 0'), ('end', 'image 0')]


def test_stop_ends_a_worker_waiting_for_work():
    scheduler = ready_scheduler()
    worker = Worker(scheduler)
    worker.stop()
    assert worker.events == []


def test_before_camera_info_the_newest_frame_is_held_and_processed_with_the_first_one():
    clock = Clock()
    scheduler = FrameScheduler(held_max_age_s=1.0, clock=clock)
    assert scheduler.offer_frame('image 0', 0.0) == 'none received yet'
    scheduler.camera_rejected('K is zero')
    clock.now += 0.3
    assert scheduler.offer_frame('image 1', 0.1) == 'K is zero'  # replaces the held frame
    clock.now += 0.5
    scheduler.camera_received('camera A')
    work = scheduler.next_work()
    assert work.changes == (CameraChange('camera A'),)  # applied before the frame
    assert work.frame.message == 'image 1'
    clock.now += 0.25
    scheduler.frame_answered(work.frame)
    snapshot = scheduler.snapshot()
    assert snapshot.latencies_ms == pytest.approx((750.0,))  # the wait for camera_info included
    assert snapshot.counters['frames_without_camera_info'] == 1  # image 0, replaced
    assert snapshot.counters['camera_info_rejected'] == 1
    assert scheduler.offer_frame('image 2', 0.2) is None  # straight to the slot now


def test_a_held_frame_expires_counted_at_camera_info_or_at_the_next_snapshot():
    clock = Clock()
    scheduler = FrameScheduler(held_max_age_s=1.0, clock=clock)
    scheduler.offer_frame('image 0', 0.0)
    clock.now += 1.5
    assert scheduler.snapshot().counters['frames_without_camera_info'] == 1
    scheduler.offer_frame('image 1', 1.5)
    clock.now += 1.5
    scheduler.camera_received('camera A')
    work = scheduler.next_work()
    assert work.frame is None and work.changes == (CameraChange('camera A'),)
    assert scheduler.counters()['frames_without_camera_info'] == 2


def test_detections_are_matched_by_the_nearest_stamp_within_the_tolerance():
    scheduler = FrameScheduler(detections_kept=3)
    for stamp in (1.0, 1.1, 1.2):
        scheduler.add_detections(stamp, f'detections {stamp}')
    assert scheduler.detections_for(1.105, tolerance_s=0.02, wait_s=0.0) == 'detections 1.1'
    assert scheduler.detections_for(1.17, tolerance_s=0.05, wait_s=0.0) == 'detections 1.2'
    assert scheduler.detections_for(1.15, tolerance_s=0.02, wait_s=0.0) is None
    scheduler.add_detections(1.3, 'detections 1.3')  # the oldest (1.0) is forgotten
    assert scheduler.detections_for(1.0, tolerance_s=0.02, wait_s=0.0) is None
    assert scheduler.counters()['frames_without_detections'] == 2


def wait_for_detections(scheduler, then):
    """Run `then()` while another thread waits (up to 600 s) for detections stamped 2.0 s.

    Return what that wait found.
    """
    found = []
    thread = threading.Thread(target=lambda: found.append(
        scheduler.detections_for(2.0, tolerance_s=0.02, wait_s=600.0)))
    thread.start()
    then()
    thread.join(timeout=JOIN_S)
    assert not thread.is_alive()
    return found[0]


def test_detections_published_after_the_frame_are_waited_for():
    scheduler = FrameScheduler()

    def publish():
        scheduler.add_detections(5.0, 'detections of another frame')  # keeps waiting
        scheduler.add_detections(2.01, 'detections of this frame')

    assert wait_for_detections(scheduler, publish) == 'detections of this frame'
    assert scheduler.counters()['frames_without_detections'] == 0


def test_stop_ends_a_wait_for_detections():
    scheduler = FrameScheduler()
    assert wait_for_detections(scheduler, scheduler.stop) is None


def test_gaps_in_each_publishers_sequence_numbers_count_as_lost_in_transport():
    scheduler = ready_scheduler()
    for publisher, sequence in [(b'a', 1), (b'a', 2), (b'b', 7), (b'a', 5), (b'b', 9),
                                (None, 40), (b'a', None)]:
        scheduler.offer_frame('image', 0.0, publisher, sequence)
    assert scheduler.counters()['frames_lost_in_transport'] == 2 + 1


def test_snapshot_reports_every_counter_rates_latency_camera_age_and_last_error():
    clock = Clock()
    scheduler = FrameScheduler(clock=clock)
    snapshot = scheduler.snapshot()
    assert snapshot.camera_age_s is None and snapshot.last_error == ''
    assert snapshot.counters == dict.fromkeys(COUNTERS, 0)
    scheduler.camera_received('camera A')
    scheduler.next_work()
    scheduler.offer_frame('image 0', 0.0)
    frame = scheduler.next_work().frame
    clock.now += 0.1
    scheduler.count('frames_size_mismatch')
    scheduler.record_error('image is 320x240 but camera_info says 640x480: frame skipped')
    scheduler.frame_answered(frame)
    clock.now += 2.0
    snapshot = scheduler.snapshot()
    assert snapshot.camera_age_s == pytest.approx(2.1)
    assert snapshot.latencies_ms == pytest.approx((100.0,))
    assert snapshot.input_rate_hz == snapshot.output_rate_hz == 1 / 5.0  # 5 s window
    assert snapshot.last_error.startswith('image is 320x240')
    assert (snapshot.counters['errors'], snapshot.counters['frames_size_mismatch']) == (1, 1)


def test_throttle_lets_one_event_of_each_kind_through_per_period():
    clock = Clock()
    throttle = Throttle(5.0, clock=clock)
    assert throttle.ready('size') and not throttle.ready('size')
    assert throttle.ready('camera_info')
    clock.now += 4.9
    assert not throttle.ready('size')
    clock.now += 0.1
    assert throttle.ready('size')
