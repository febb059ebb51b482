"""Where a frame's time goes: wall time per named stage, and medians over many frames.

    >>> timer = StageTimer()
    >>> with timer.stage('network'):
    ...     with timer.stage('crops'):  # nested: recorded as 'network/crops'
    ...         pass
    >>> sorted(timer.milliseconds())
    ['network', 'network/crops']

A stage entered again in the same frame accumulates (its count says how often it ran). Nested
stages are named after their parents ('second pass/network'), so the stages without a '/' never
overlap and their sum is the timed part of the frame, except stages named '... (concurrent)':
they ran on another thread beside the frame's stages and are left out of the sum. `reset`
starts a new frame. No global state: each estimator owns its timer; one thread uses a timer at
a time. `StageHistory` keeps frames' stage times (thread-safe) for medians and means.
"""

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
import platform
import subprocess
import threading
import time

import numpy as np


class StageTimer:
    """Accumulates time.perf_counter() seconds and entry counts per named stage."""

    def __init__(self):
        self.seconds = {}
        self.counts = {}
        self.tallies = {}
        self._open = []

    def reset(self) -> None:
        """Forget the stages timed so far (a new frame starts)."""
        self.seconds, self.counts, self.tallies, self._open = {}, {}, {}, []

    def tally(self, name: str, number: int) -> None:
        """Add `number` to the count `name` of this frame (e.g. crops from tracks)."""
        self.tallies[name] = self.tallies.get(name, 0) + int(number)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage `name` (inside another stage: 'parent/name')."""
        full = '/'.join([*self._open[-1:], name])
        self.seconds.setdefault(full, 0.0)  # listed in the order the stages start
        self.counts.setdefault(full, 0)
        self._open.append(full)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(full, time.perf_counter() - start)
            self._open.pop()

    def add(self, name: str, seconds: float, count: int = 1) -> None:
        """Add `seconds` (and `count` entries) to stage `name` as it is (no parent prefix)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)
        self.counts[name] = self.counts.get(name, 0) + int(count)

    def merge(self, other: 'StageTimer') -> None:
        """Add every stage of another StageTimer to this one."""
        for name, seconds in other.seconds.items():
            self.add(name, seconds, other.counts[name])
        for name, number in other.tallies.items():
            self.tally(name, number)

    def milliseconds(self) -> dict[str, float]:
        """Return {stage: milliseconds} of the stages timed since the last reset."""
        return {name: seconds * 1e3 for name, seconds in self.seconds.items()}


class StageHistory:
    """The stage times of the last `maxlen` frames (None: all), for medians and means.

    A stage a frame did not run counts as 0 ms in that frame (e.g. the detector on a tracked
    frame), so the medians of the top-level stages are comparable with the frame's total.
    """

    def __init__(self, maxlen: int | None = None) -> None:
        self._frames = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, timer: StageTimer) -> None:
        """Record one frame: the stages and tallies of a StageTimer."""
        with self._lock:
            self._frames.append((timer.milliseconds(), dict(timer.tallies)))

    def __len__(self) -> int:
        """Return how many frames are recorded."""
        with self._lock:
            return len(self._frames)

    def summary(self) -> dict[str, dict[str, float]]:
        """Return {stage: {'median_ms', 'mean_ms', 'frames_run'}} over the recorded frames.

        'frames_run' counts the frames in which the stage ran. Stages are in first-seen order,
        each followed by its nested stages.
        """
        with self._lock:
            frames = [stages for stages, _ in self._frames]
        table = {}
        for name in parents_first(dict.fromkeys(name for frame in frames for name in frame)):
            values = np.array([frame.get(name, 0.0) for frame in frames])
            table[name] = {'median_ms': float(np.median(values)),
                           'mean_ms': float(values.mean()),
                           'frames_run': int(sum(name in frame for frame in frames))}
        return table

    def tallies(self) -> dict[str, float]:
        """Return {tally: mean per frame} over the recorded frames (0 where not tallied)."""
        with self._lock:
            frames = [tallies for _, tallies in self._frames]
        names = list(dict.fromkeys(name for frame in frames for name in frame))
        return {name: float(np.mean([frame.get(name, 0) for frame in frames]))
                for name in names}


def parents_first(names: Iterable[str]) -> list[str]:
    """Return stage names in their order, each parent followed by its nested stages."""
    order = {name: index for index, name in enumerate(names)}

    def key(name):
        parts = name.split('/')
        return tuple(order.get('/'.join(parts[:depth]), order[name])
                     for depth in range(1, len(parts) + 1))

    return sorted(order, key=key)


TOTAL = 'frame total'  # the stage name under which callers record a frame's whole time
CONCURRENT = ' (concurrent)'  # the suffix of stages that ran on another thread (not summed)


def top_level_sum(summary: Mapping[str, Mapping[str, float]], key: str = 'median_ms') -> float:
    """Return the sum of `key` over the top-level stages (no '/') of a summary.

    TOTAL and the concurrent stages are left out.
    """
    return sum(row[key] for name, row in summary.items()
               if '/' not in name and name != TOTAL and not name.endswith(CONCURRENT))


def stage_table(summary: Mapping[str, Mapping[str, float]],
                tallies: Mapping[str, float] | None = None) -> str:
    """Return the text table of a StageHistory.summary() (nested stages indented).

    The TOTAL row, when recorded, comes last with the untimed rest above it; `tallies`
    (StageHistory.tallies()) are listed below as means per frame.
    """
    lines = [f'{"stage":<44} {"median ms":>10} {"mean ms":>10} {"frames":>7}']
    for name, row in summary.items():
        if name == TOTAL:
            continue
        label = '  ' * name.count('/') + name.rsplit('/', 1)[-1]
        lines.append(f'{label:<44} {row["median_ms"]:>10.2f} {row["mean_ms"]:>10.2f} '
                     f'{row["frames_run"]:>7}')
    if TOTAL in summary:
        row = summary[TOTAL]
        lines.append(f'{"untimed rest (mean)":<44} {"":>10} '
                     f'{row["mean_ms"] - top_level_sum(summary, "mean_ms"):>10.2f}')
        lines.append(f'{TOTAL:<44} {row["median_ms"]:>10.2f} {row["mean_ms"]:>10.2f} '
                     f'{row["frames_run"]:>7}')
    for name, mean in (tallies or {}).items():
        lines.append(f'{name + " per frame (mean)":<44} {"":>10} {mean:>10.2f}')
    return '\n'.join(lines)


def cpu_model() -> str:
    """Return the timings' machine: lscpu's model name, family, model and widest vector unit.

    e.g. 'AMD EPYC (family 25, model 17, AVX-512)': virtual machines often report a bare
    'AMD EPYC' for CPUs three times apart in speed. Without lscpu: the platform's processor.
    """
    try:
        lines = subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        lines = []
    fields = dict(line.split(':', 1) for line in lines if ':' in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get('Model name') or platform.processor() or platform.machine()
    flags = fields.get('Flags', '').split()
    vector = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else None
    details = [f'family {fields["CPU family"]}' if 'CPU family' in fields else None,
               f'model {fields["Model"]}' if 'Model' in fields else None, vector]
    details = [detail for detail in details if detail]
    return f'{name} ({", ".join(details)})' if details else name
