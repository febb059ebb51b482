"""Fuzz-test settings and the per-test record read by the reliability report.

Every test module here sets BOUNDARY (the input boundary it fuzzes). When the environment variable
POSE_KP_RELIABILITY_OUT names a folder, each fuzz test appends one JSON line to
$POSE_KP_RELIABILITY_OUT/fuzz.jsonl:
{"test": str, "boundary": str, "examples": int, "passed": bool}, examples being the number of
inputs hypothesis ran (generation, shrinking and replay included).
With CI=true the 'ci' hypothesis profile makes the runs deterministic (derandomize, no example
database).
"""

import functools
import json
import os
from pathlib import Path

from hypothesis import settings
import pytest

RECORD_ENV = 'POSE_KP_RELIABILITY_OUT'

settings.register_profile('ci', derandomize=True, database=None, deadline=None,
                          print_blob=True)
if os.environ.get('CI') == 'true':
    settings.load_profile('ci')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Count the examples a hypothesis test runs (in item.fuzz_examples)."""
    handle = getattr(item.obj, 'hypothesis', None)
    item.fuzz_examples = 0
    if handle is None:
        yield
        return
    inner = handle.inner_test

    @functools.wraps(inner)
    def counted(*args, **kwargs):
        item.fuzz_examples += 1
        return inner(*args, **kwargs)

    handle.inner_test = counted
    try:
        yield
    finally:
        handle.inner_test = inner


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Append the test's record to fuzz.jsonl after its call (or a failed set-up)."""
    outcome = yield
    report = outcome.get_result()
    folder = os.environ.get(RECORD_ENV)
    if not folder or not (report.when == 'call' or (report.when == 'setup' and report.failed)):
        return
    boundary = getattr(item.module, 'BOUNDARY', item.module.__name__)
    record = {'test': item.nodeid, 'boundary': boundary,
              'examples': int(getattr(item, 'fuzz_examples', 0)), 'passed': bool(report.passed)}
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / 'fuzz.jsonl', 'a') as stream:
        stream.write(json.dumps(record) + '\n')
