"""Run the reliability suite and write docs/reliability.md (`make reliability`).

    python benchmarks/reliability_report.py [--soak-duration 600] [--pipeline-config FILE]

Runs, with POSE_KP_RELIABILITY_OUT=results/reliability: the property-based fuzz tests
(test/unit/fuzz, which append {"test", "boundary", "examples", "passed"} lines to fuzz.jsonl),
the process-level fault tests (test/integration/test_node_faults.py, per-test outcome and
duration from --junitxml, figures from faults.jsonl) and the soak (benchmarks/soak_node.py);
then writes the tables. Failing tests are reported in the tables, not as an exit code.
"""

import argparse
import collections
import datetime
import json
import os
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

REPO_ROOT = Path(__file__).resolve().parents[1]
FAULT_CASES = {
    'test_late_camera_info_warns_then_outputs_resume':
        ('camera_info starts 6 frames after the images (4 Hz, until 4 frames are answered)',
         'no output without camera_info (the newest frame before it may be answered with it), '
         'at most one warning per 5 s, diagnostics WARN, then every frame answered and every '
         'frame counted'),
    'test_image_before_first_camera_info_is_held_for_it[processed]':
        ('6 frames (4 Hz) without usable camera_info, then one camera_info',
         'the last frame is answered with it, the others counted without camera_info'),
    'test_image_before_first_camera_info_is_held_for_it[expired]':
        ('6 frames (4 Hz) without usable camera_info, then one camera_info 1.75 s later',
         'the held frame expired (1 s): no output, every frame counted without camera_info'),
    'test_image_before_first_camera_info_is_held_for_it[size_mismatch]':
        ('6 frames 320x240 (4 Hz) without usable camera_info, then one saying 640x480',
         'the held frame skipped by the size check (`frames_size_mismatch` 1), no output'),
    'test_camera_info_never_node_waits_with_throttled_warning':
        ('images without any camera_info (40 frames, 5 Hz)',
         'alive, no output, diagnostics `no usable camera_info` (age `never`), warning at most '
         'once per 5 s'),
    'test_camera_killed_mid_stream_then_restarted':
        ('camera process SIGKILLed mid-stream, a new one started',
         "alive, the new camera's frames answered"),
    'test_image_and_camera_info_size_mismatch':
        ('5 of 12 images 320x240 while camera_info says 640x480',
         'those frames skipped (`frames_size_mismatch`, one warning), frames before and after '
         'answered'),
    'test_burst_of_1000_frames':
        ('1,000 frames as fast as the reliable transport takes them, then 4 at 4 Hz',
         'alive, every frame answered or counted (lost in transport + dropped), RSS < +300 MB, '
         'last burst frame and the later ones answered'),
    'test_node_restarted_while_camera_runs':
        ('node stopped and a new one started while the camera streams at 5 Hz',
         'the new node picks up the stream (>= 5 frames answered)'),
}


def run(command, env, log):
    """Run a command from the repository root, appending its output to `log`; return its code."""
    print('$', ' '.join(str(c) for c in command), flush=True)
    with open(log, 'a') as out:
        return subprocess.run([str(c) for c in command], cwd=REPO_ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode


def junit_cases(path):
    """Return [(test name, outcome, seconds)] from a pytest --junitxml file ([] if missing)."""
    if not path.exists():
        return []
    cases = []
    for case in ElementTree.parse(path).getroot().iter('testcase'):
        outcome = 'passed'
        for tag in ('failure', 'error', 'skipped'):
            if case.find(tag) is not None:
                outcome = {'failure': 'FAILED', 'error': 'ERROR', 'skipped': 'skipped'}[tag]
        cases.append((case.get('name'), outcome, float(case.get('time', 0.0))))
    return cases


def json_lines(path):
    """Return the JSON objects of a .jsonl file ([] if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fuzz_section(out):
    """Return the markdown of the fuzz results."""
    cases = junit_cases(out / 'fuzz.xml')
    records = json_lines(out / 'fuzz.jsonl')
    if not cases and not records:
        return ['No fuzz tests were found (test/unit/fuzz) when this was generated.', '']
    by_boundary = collections.defaultdict(lambda: [0, 0, True])
    for record in records:
        entry = by_boundary[record.get('boundary', '?')]
        entry[0] += 1
        entry[1] += int(record.get('examples', 0))
        entry[2] = entry[2] and bool(record.get('passed'))
    lines = [f'{len(cases)} tests, {sum(1 for c in cases if c[1] == "passed")} passed, '
             f'{sum(c[2] for c in cases):.0f} s in all.', '']
    if by_boundary:
        lines += ['| boundary | tests | examples tried | held |', '|---|---|---|---|']
        lines += [f'| {name} | {tests} | {examples} | {"yes" if held else "**no**"} |'
                  for name, (tests, examples, held) in sorted(by_boundary.items())]
        lines.append('')
    failed = [c for c in cases if c[1] not in ('passed', 'skipped')]
    if failed:
        lines += ['Failed: ' + ', '.join(f'`{c[0]}`' for c in failed), '']
    return lines


def faults_section(out):
    """Return the markdown of the fault-test results."""
    cases = junit_cases(out / 'faults.xml')
    if not cases:
        return ['The fault tests did not run (no junit report).', '']
    figures = {record['test']: record for record in json_lines(out / 'faults.jsonl')}
    lines = ['| case | tried | must hold | result | s | figures |', '|---|---|---|---|---|---|']
    for name, outcome, seconds in cases:
        tried, holds = FAULT_CASES.get(name, (name, ''))
        shown = ', '.join(f'{k} {v}' for k, v in figures.get(name, {}).items() if k != 'test')
        lines.append(f'| `{name.removeprefix("test_")}` | {tried} | {holds} | {outcome} | '
                     f'{seconds:.0f} | {shown} |')
    return lines + ['']


def soak_section(path):
    """Return the markdown of the soak figures."""
    if not path.exists():
        return ['The soak did not produce results.', '']
    result = json.loads(path.read_text())
    memory, latency, counters = result['memory'], result['latency_ms'], result['node_counters']
    lines = [f'{result["streamed_s"]:.0f} s of {result["rate_hz"]:g} Hz input '
             f'(`--duration {result["duration_s"]:g}`), pipeline '
             f'`{result.get("pipeline_config", "?")}`, warm-up {result["warmup_s"]:g} s excluded.',
             '', '| figure | value |', '|---|---|',
             f'| node alive at the end / exit code | {result["node_alive"]} / '
             f'{result["node_exit_code"]} |',
             f'| frames sent | {result["frames_sent"]} |',
             f'| frames answered (Detection3DArray received) | {result["frames_answered"]} |',
             f'| frames dropped by the node (a newer frame waiting) | '
             f'{counters["frames_dropped"]} |',
             f'| frames lost in transport (counted by the node) | '
             f'{counters["frames_lost_in_transport"]} |',
             f'| frames skipped (no camera_info, size mismatch) | '
             f'{counters["frames_without_camera_info"] + counters["frames_size_mismatch"]} |',
             f'| **unaccounted frames** (sent - processed - dropped - lost in transport - '
             f'skipped) | **{result["unaccounted_frames"]}** |',
             f'| **lost outputs** (processed by the node - answers received) | '
             f'**{result["lost_outputs"]}** |']
    if memory:
        lines += [f'| node RSS after warm-up -> end (MB) | {memory["rss_mb_after_warmup"]:.1f} -> '
                  f'{memory["rss_mb_end"]:.1f} (max {memory["rss_mb_max"]:.1f}) |',
                  f'| **RSS growth after warm-up** | **{memory["rss_growth_percent"]:+.2f}%** |',
                  f'| node CPU (% of one core) | {memory["cpu_percent_of_one_core"]:.0f} |']
    for part in ('first_third', 'last_third'):
        values = latency[part]
        lines.append(f'| latency {part.replace("_", " ")} p50 / p95 / p99 (ms) | '
                     f'{values["p50"]:.1f} / {values["p95"]:.1f} / {values["p99"]:.1f} |')
    return lines + ['']


def write_report(out, soak_json, soak_duration, doc):
    """Write docs/reliability.md from the results in `out` and the soak JSON."""
    load = ', '.join(f'{v:.1f}' for v in os.getloadavg())
    lines = [
        '# Reliability: fuzzing, faults, soak', '',
        'Generated by `make reliability` (= `python benchmarks/reliability_report.py '
        f'--soak-duration {soak_duration:g}`; the default soak is 600 s) on '
        f'{datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores, load average '
        f'{load} at the end (other jobs were running). Raw results: `results/reliability/`, '
        '`results/soak_node.json`.', '',
        '## Property-based fuzzing (hypothesis, `test/unit/fuzz`)', '',
        'Each boundary either works or gives its documented error; none crashes or returns NaN '
        'as valid.', '', *fuzz_section(out),
        '## Process faults (real node over DDS, `test/integration/test_node_faults.py`)', '',
        'An untrained network: these check that the node stays up, counts and reports what '
        'happened and resumes answering, not pose accuracy.', '', *faults_section(out),
        '## Soak (`benchmarks/soak_node.py`)', '',
        'Camera replay at 30 Hz, node and receiver in separate processes; memory is VmRSS '
        'sampled every second, latency is image stamp -> Detection3DArray received. CI runs a '
        '45 s version (`test/integration/test_soak_short.py`: node alive, no unaccounted '
        'frames or lost outputs, RSS growth < 25%).', '', *soak_section(soak_json),
    ]
    doc.write_text('\n'.join(lines).rstrip() + '\n')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--soak-duration', type=float, default=600.0, help='seconds')
    parser.add_argument('--pipeline-config', default='', help='soak pipeline YAML')
    parser.add_argument('--out', default='results/reliability')
    parser.add_argument('--doc', default='docs/reliability.md')
    args = parser.parse_args()
    out = (REPO_ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in ('fuzz.jsonl', 'faults.jsonl', 'fuzz.xml', 'faults.xml', 'log.txt'):
        (out / name).unlink(missing_ok=True)
    env = {**os.environ, 'POSE_KP_RELIABILITY_OUT': str(out), 'OMP_NUM_THREADS': '1',
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    log = out / 'log.txt'
    if (REPO_ROOT / 'test' / 'unit' / 'fuzz').is_dir():
        run([sys.executable, '-m', 'pytest', 'test/unit/fuzz', '-q', '-p', 'no:cacheprovider',
             f'--junitxml={out / "fuzz.xml"}'], env, log)
    run([sys.executable, '-m', 'pytest', 'test/integration/test_node_faults.py', '-q',
         '-p', 'no:cacheprovider', f'--junitxml={out / "faults.xml"}'], env, log)
    soak_json = REPO_ROOT / 'results' / 'soak_node.json'
    soak_json.unlink(missing_ok=True)
    run([sys.executable, REPO_ROOT / 'benchmarks' / 'soak_node.py',
         '--duration', args.soak_duration, '--output', soak_json,
         *(['--pipeline-config', args.pipeline_config] if args.pipeline_config else [])],
        env, log)
    write_report(out, soak_json, args.soak_duration, REPO_ROOT / args.doc)
    print(f'wrote {args.doc} (logs: {log})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
