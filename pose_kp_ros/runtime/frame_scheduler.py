"""Which frame the pose worker processes next, and what changes before it; plain Python, no ROS.

Callbacks offer frames, camera intrinsics, parameter changes and detections; one worker thread
takes work. Only the newest unprocessed frame is kept (the slot): an older one is dropped and
counted, so latency and memory stay bounded when the worker is slower than the camera. Until the
first usable camera_info the newest frame is held (at most `held_max_age_s`) and moves to the slot
when one arrives. Whatever changes how frames are processed (intrinsics, parameters) reaches the
worker through one queue, handed out together with the next frame: it applies between frames,
never during one. Detections are kept to be matched to frames by stamp. The counters account for
every image received.
"""

import collections
from collections.abc import Callable
from dataclasses import dataclass
import threading
import time

# The counters, in the order /diagnostics lists them.
COUNTERS = ('images_received', 'frames_lost_in_transport', 'frames_processed', 'frames_dropped',
            'frames_without_camera_info', 'frames_without_detections', 'frames_size_mismatch',
            'camera_info_rejected', 'errors')
PUBLISHERS_KEPT = 16  # publishers whose sequence numbers are remembered (cameras restart)


@dataclass(frozen=True)
class Frame:
    """An image for the worker: its message (passed through), stamp and arrival time."""

    message: object
    stamp_s: float     # the message's header stamp, seconds
    received_s: float  # arrival on the scheduler's clock, seconds


@dataclass(frozen=True)
class CameraChange:
    """A usable camera_info: the intrinsics of the frames that follow."""

    camera: object


@dataclass(frozen=True)
class ParameterChange:
    """Parameter values set at run time, already validated: {name: value}."""

    values: dict


@dataclass(frozen=True)
class Work:
    """The worker's next step: apply `changes` in order, then process `frame` (None: no frame)."""

    changes: tuple
    frame: Frame | None


@dataclass(frozen=True)
class Snapshot:
    """What /diagnostics reports."""

    counters: dict              # {name: count} for every name of COUNTERS
    latencies_ms: tuple         # arrival to answer of the newest answered frames, milliseconds
    input_rate_hz: float
    output_rate_hz: float
    camera_age_s: float | None  # since the newest usable camera_info, seconds; None: never
    last_error: str


class RateMeter:
    """Counts events and reports their rate over a sliding window of `window_s` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.times = collections.deque()

    def tick(self, now: float) -> None:
        """Record one event at `now` (seconds)."""
        self.times.append(now)
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()

    def rate(self, now: float) -> float:
        """Return events per second over the window ending at `now`."""
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        return len(self.times) / self.window_s


class FrameScheduler:
    """Frames, changes, detections and counters between callbacks and one worker (thread-safe).

    `held_max_age_s`: how long a frame waits for the first usable camera_info, seconds;
    `detections_kept`: detection messages kept for matching; `latencies_kept`: answered frames
    whose latency /diagnostics summarises; `clock`: seconds, time.monotonic unless a test gives
    its own.
    """

    def __init__(self, held_max_age_s: float = 1.0, detections_kept: int = 30,
                 latencies_kept: int = 300,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.held_max_age_s = held_max_age_s
        self._clock = clock
        self._lock = threading.Condition()
        self._slot = None             # newest unprocessed Frame
        self._held = None             # the same, received before any usable camera_info
        self._changes = []            # CameraChange / ParameterChange not yet handed out
        self._camera_ready = False
        self._camera_error = None     # why the newest camera_info was rejected
        self._last_camera_s = None
        self._last_sequence = {}      # publisher id -> its last publication sequence number
        self._detections = collections.deque(maxlen=detections_kept)  # (stamp_s, message)
        self._counters = collections.Counter()
        self._latencies_ms = collections.deque(maxlen=latencies_kept)
        self._input_rate, self._output_rate = RateMeter(), RateMeter()
        self._last_error = ''
        self._running = True

    # ------------------------------------------------------------ callbacks
    def offer_frame(self, message: object, stamp_s: float, publisher: bytes | None = None,
                    sequence: int | None = None) -> str | None:
        """Take a received image; return why it is held (no usable camera_info yet), else None.

        It replaces the frame in the slot (counted in frames_dropped) or, before the first usable
        camera_info, the held one (frames_without_camera_info). `publisher` and `sequence` (its
        publication sequence number, where the middleware reports them) count the images that
        publisher sent and that never arrived (frames_lost_in_transport).
        """
        with self._lock:
            now = self._clock()
            frame = Frame(message, stamp_s, now)
            self._counters['images_received'] += 1
            self._count_transport_losses(publisher, sequence)
            self._input_rate.tick(now)
            if not self._camera_ready:
                if self._held is not None:
                    self._counters['frames_without_camera_info'] += 1
                self._held = frame
                return self._camera_error or 'none received yet'
            if self._slot is not None:
                self._counters['frames_dropped'] += 1
            self._slot = frame
            self._lock.notify_all()
            return None

    def _count_transport_losses(self, publisher, sequence):
        """Count gaps in a publisher's sequence numbers (the caller holds the lock)."""
        if not sequence or publisher is None:
            return  # the middleware does not report sequence numbers
        last = self._last_sequence.pop(publisher, None)
        if last is not None and sequence > last + 1:
            self._counters['frames_lost_in_transport'] += sequence - last - 1
        self._last_sequence[publisher] = sequence
        while len(self._last_sequence) > PUBLISHERS_KEPT:  # the least recently seen goes
            self._last_sequence.pop(next(iter(self._last_sequence)))

    def camera_received(self, camera: object) -> None:
        """Queue usable intrinsics for the worker; a held frame moves to the slot to use them."""
        with self._lock:
            now = self._clock()
            self._changes.append(CameraChange(camera))
            self._camera_ready, self._camera_error, self._last_camera_s = True, None, now
            self._expire_held(now)
            if self._held is not None:  # the first usable camera_info: the slot is empty
                self._slot, self._held = self._held, None
            self._lock.notify_all()

    def camera_rejected(self, reason: str) -> None:
        """Count an unusable camera_info; `reason` is reported while frames wait for one."""
        with self._lock:
            self._camera_error = reason
            self._counters['camera_info_rejected'] += 1

    def submit(self, change: object) -> None:
        """Queue a change (e.g. a ParameterChange); the worker applies it before its next frame."""
        with self._lock:
            self._changes.append(change)
            self._lock.notify_all()

    def add_detections(self, stamp_s: float, detections: object) -> None:
        """Keep a detection message (stamp in seconds) for the frame with the same stamp."""
        with self._lock:
            self._detections.append((stamp_s, detections))
            self._lock.notify_all()

    # ------------------------------------------------------------ worker
    def next_work(self) -> Work | None:
        """Wait until a frame or a change is there and hand them out; None once stopped."""
        with self._lock:
            while self._running and self._slot is None and not self._changes:
                self._lock.wait()
            if not self._running:
                return None
            work = Work(tuple(self._changes), self._slot)
            self._changes, self._slot = [], None
            return work

    def detections_for(self, stamp_s: float, tolerance_s: float, wait_s: float) -> object | None:
        """Return the detections stamped nearest `stamp_s` (seconds), within `tolerance_s`.

        A detector publishes after the image it ran on: wait up to `wait_s` seconds for them.
        None (counted in frames_without_detections) when none come.
        """
        def nearest():
            return min(self._detections, default=None, key=lambda d: abs(d[0] - stamp_s))

        def matches(found):
            return found is not None and abs(found[0] - stamp_s) <= tolerance_s

        with self._lock:
            deadline = self._clock() + wait_s
            found = nearest()
            while not matches(found) and self._running and self._clock() < deadline:
                self._lock.wait(timeout=max(0.0, deadline - self._clock()))
                found = nearest()
            if not matches(found):
                self._counters['frames_without_detections'] += 1
                return None
            return found[1]

    def frame_answered(self, frame: Frame) -> None:
        """Count a frame whose outputs went out, with its latency since arrival."""
        with self._lock:
            now = self._clock()
            self._counters['frames_processed'] += 1
            self._output_rate.tick(now)
            self._latencies_ms.append((now - frame.received_s) * 1e3)

    def count(self, name: str) -> None:
        """Add one to the counter `name` (one of COUNTERS)."""
        with self._lock:
            self._counters[name] += 1

    def record_error(self, message: str) -> None:
        """Count an error; `message` becomes the last error /diagnostics shows."""
        with self._lock:
            self._counters['errors'] += 1
            self._last_error = message

    def stop(self) -> None:
        """Make next_work return None and end waits for detections."""
        with self._lock:
            self._running = False
            self._lock.notify_all()

    # ------------------------------------------------------------ diagnostics
    def _expire_held(self, now):
        """Count the held frame as without camera_info once older than held_max_age_s.

        The caller holds the lock; `now` is the scheduler's clock, seconds.
        """
        if self._held is not None and now - self._held.received_s > self.held_max_age_s:
            self._held = None
            self._counters['frames_without_camera_info'] += 1

    def snapshot(self) -> Snapshot:
        """Return the counters, latencies, rates, camera age and last error as of now."""
        with self._lock:
            now = self._clock()
            self._expire_held(now)  # so that the counters account for every expired frame
            return Snapshot(
                counters={name: self._counters[name] for name in COUNTERS},
                latencies_ms=tuple(self._latencies_ms),
                input_rate_hz=self._input_rate.rate(now),
                output_rate_hz=self._output_rate.rate(now),
                camera_age_s=None if self._last_camera_s is None else now - self._last_camera_s,
                last_error=self._last_error)

    def counters(self) -> dict:
        """Return a copy of the counters: {name: count} for every name of COUNTERS."""
        with self._lock:
            return {name: self._counters[name] for name in COUNTERS}
