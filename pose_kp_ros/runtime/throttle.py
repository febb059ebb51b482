"""Lets through at most one event of each kind per period (throttled warnings); no ROS."""

from collections.abc import Callable
import threading
import time


class Throttle:
    """At most one event of each kind (any hashable key) per `period_s` seconds; thread-safe.

    `clock` returns seconds (time.monotonic unless a test gives its own).
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last = {}

    def ready(self, key: object) -> bool:
        """Return True (and start a new period for `key`) if its last event is a period old."""
        now = self._clock()
        with self._lock:
            if key in self._last and now - self._last[key] < self.period_s:
                return False
            self._last[key] = now
            return True
