"""Write docs/performance.md from the measured results in results/ (nothing is typed by hand).

    python benchmarks/performance_report.py [--results results] [--out docs/performance.md]
                                            [--evaluate]     # (make accuracy) re-run every
                                                             # accuracy row's command first

Reads the JSON the evaluation and benchmark commands write (each section names its command) and
renders one Markdown page; a missing result is listed as not measured.
test/test_performance_doc.py checks that the committed page equals what this script makes from
the committed results.
"""

import argparse
from pathlib import Path
import shlex
import subprocess
import sys

from report_format import number, read
from speed_sections import (
    comparison_section,
    gpu_section,
    node_section,
    parts_section,
    stages_section,
    threads_section,
)

from pose_kp_ros.pipeline.stage_timer import TOTAL

EVAL_ROWS = (
    ('driller_detector', 'LM-O photos', 'full-image detector',
     'pose-kp eval-lmo --object driller'),
    ('driller_detector_tracking', 'LM-O photos', 'detector + tracking (video order)',
     'pose-kp eval-lmo --object driller --tracking'),
    ('driller_ground-truth', 'LM-O photos', 'ground-truth boxes',
     'pose-kp eval-lmo --object driller --boxes ground-truth'),
    ('driller_renders_detector', 'held-out renders', 'full-image detector',
     'pose-kp eval-lmo --object driller --dataset data/driller_val_v2'),
    ('driller_renders_ground-truth', 'held-out renders', 'ground-truth boxes',
     'pose-kp eval-lmo --object driller --dataset data/driller_val_v2 --boxes ground-truth'),
)

EIGHT_OBJECTS = 'pose-kp eval-lmo --object all --pipeline-config models/lmo_all/pipeline.yaml'
EVAL_ALL_ROWS = (
    ('all_detector', 'LM-O photos', 'full-image detector', EIGHT_OBJECTS),
    ('all_ground-truth', 'LM-O photos', 'ground-truth boxes',
     f'{EIGHT_OBJECTS} --boxes ground-truth'),
    ('all_renders_detector', 'held-out renders', 'full-image detector',
     f'{EIGHT_OBJECTS} --dataset data/lmo_all_val --frame-step 4'),
)
"""The eight LM-O objects (models/lmo_all): eval-lmo --object all summaries in results/eval_lmo."""


def accuracy_section(results):
    """Return the accuracy table of the eval-lmo summaries."""
    lines = ['## Accuracy (`pose-kp eval-lmo`)', '',
             'The whole pipeline (find, crop, network, solver) per frame, one CPU thread. '
             'ADD < 0.1 d: mean model-point distance under 10% of the diameter (26.1 mm for the '
             'driller). '
             'Detection rate: frames with a pose for the object. The LM-O photos are never used '
             'for training; the held-out renders are a validation set rendered with another '
             'seed.', '',
             '| images | crops from | frames | detection rate | ADD < 0.1 d | ADD AUC | 2D < 5 px '
             '| median rotation | median translation | runtime median / p95 | command |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for stem, source, boxes, command in EVAL_ROWS:
        summary = read(results / 'eval_lmo' / f'{stem}_summary.json')
        if summary is None:
            lines.append(f'| {source} | {boxes} | not measured | | | | | | | | `{command}` |')
            continue
        lines.append(
            f"| {source} | {boxes} | {summary['frames']} "
            f"| {number(summary['detection_rate'], 1, 100, '%')} "
            f"| **{number(summary['add_0.1d_accuracy'], 1, 100, '%')}** "
            f"| {number(summary['add_auc_0.1d'], 3)} "
            f"| {number(summary['projection_5px_accuracy'], 1, 100, '%')} "
            f"| {number(summary['median_rotation_deg'], 1, suffix=' deg')} "
            f"| {number(summary['median_translation_mm'], 0, suffix=' mm')} "
            f"| {number(summary['runtime_median_ms'], 0)} / "
            f"{number(summary['runtime_p95_ms'], 0)} ms | `{command}` |")
    lines += ['', 'Per-frame CSV/JSON, accuracy-vs-threshold plots and overlay mosaics are '
              'written next to each summary in `results/eval_lmo/`.', '']
    return lines + visibility_lines(results)


def objects_section(results):
    """Return the eight-object table: ADD(-S) per object and the mean, beside published means."""
    lines = ['## Eight LM-O objects (`pose-kp eval-lmo --object all`)', '',
             'models/lmo_all: one keypoint network and one detector for the eight LM-O objects, '
             'trained on multi-object renders only (models/lmo_all/README.md); one pipeline call '
             'per frame for all of them, one CPU thread. ADD < 0.1 d, ADD-S for the symmetric '
             'eggbox and glue; each object on the frames that annotate it.', '']
    summaries = [(row, read(results / 'eval_lmo' / f'{row[0]}_summary.json'))
                 for row in EVAL_ALL_ROWS]
    measured = [(row, summary) for row, summary in summaries if summary is not None]
    if not measured:
        return lines + ['Not measured yet: `' + EIGHT_OBJECTS + '`.', '']
    lines += ['| object | ' + ' | '.join(f'{source}, {boxes}' for (_, source, boxes, _), _
                                          in measured) + ' |',
              '|---' * (len(measured) + 1) + '|']
    names = [row['object'] for row in measured[0][1]['rows']]
    for index, name in enumerate(names):
        cells = []
        for _, summary in measured:
            row = summary['rows'][index]
            cells.append(f"{number(row['accuracy_0.1d'], 1, 100, '%')} ({row['metric']}, "
                         f"{row['frames']} frames, detected "
                         f"{number(row['detection_rate'], 0, 100, '%')})")
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines.append('| **mean** | ' + ' | '.join(
        f"**{number(summary['mean']['accuracy_0.1d'], 1, 100, '%')}**" for _, summary
        in measured) + ' |')
    lines.append('| ms per frame (median) | ' + ' | '.join(
        number(summary['stages'][TOTAL]['median_ms'], 0) for _, summary in measured) + ' |')
    published = next((summary['published'] for _, summary in measured if summary['published']),
                     [])
    lines += ['', 'Commands: ' + '; '.join(f'`{command}`' for (_, _, _, command), _
                                          in measured) + f". CPU: {measured[0][1]['cpu_model']}.",
              '', 'Published means on LM-O (ADD(-S) < 0.1 d, all eight objects, whole test '
              'set), each trained with real LINEMOD photos: ' + ', '.join(
                  f"{entry['method']} ({entry['paper']}) "
                  f"{number(entry['add_s_0.1d_accuracy'], 1, 100, '%')}"
                  for entry in published) + '.', '']
    node = read(results / 'bench_node_lmo_all.json')
    if node is not None:
        lines += [f"The node with the eight objects (`python benchmarks/bench_node.py --rate "
                  f"{node['input_rate_hz']:g} --seconds {node['seconds']:g} --pipeline-config "
                  f"models/lmo_all/pipeline.yaml --output results/bench_node_lmo_all.json`, the "
                  f"LM-O replay over DDS): {number(node['frames_answered_per_s'], 1)} frames "
                  f"answered per second, latency median / p95 "
                  f"{number(node['frame_latency_median_ms'], 0)} / "
                  f"{number(node['frame_latency_p95_ms'], 0)} ms ({node['cpu_model']}).", '']
    return lines


def visibility_lines(results):
    """Return the renders' ADD accuracy by visible fraction (the renders annotate it)."""
    lines = []
    for stem, source, boxes, _ in EVAL_ROWS:
        summary = read(results / 'eval_lmo' / f'{stem}_summary.json')
        parts = (summary or {}).get('by_visible_fraction') or []
        if not parts:
            continue
        if not lines:
            ranges = [f'{p["visible_fraction"][0]:.0%}-{p["visible_fraction"][1]:.0%}'
                      for p in parts]
            lines = ['ADD < 0.1 d by the fraction of the object that is visible (frames with '
                     'a pose / all frames in the range; the LM-O photos carry no visibility '
                     'annotation here):', '',
                     '| images | crops from | ' + ' | '.join(f'{r} visible' for r in ranges)
                     + ' |', '|---|---|' + '---|' * len(parts)]
        lines.append(f'| {source} | {boxes} | ' + ' | '.join(
            f"{number(p['add_0.1d_accuracy'], 1, 100, '%')} (found "
            f"{number(p['detection_rate'], 0, 100, '%')}, {p['frames']} frames)" for p in parts)
            + ' |')
    return lines + [''] if lines else []


def tracking_section(results):
    """Return the tables of tracking settings measured on held-out rendered videos."""
    command = 'python benchmarks/tracking_settings.py'
    lines = [f'## Tracking settings on held-out videos (`{command}`)', '']
    runs = sorted((read(path) for path in results.glob('tracking_settings*.json')),
                  key=lambda data: data.get('frame_step', 1))
    if not runs:
        return lines + ['Not measured.', '']
    lines += [f"`pose-kp eval-lmo --object driller --dataset {runs[0]['videos']}` per setting: "
              '10 rendered videos of 60 frames (`config/render_driller_video.yaml`: the camera '
              'orbits the drill by 10-30 degrees in 2 s at 30 Hz; tracking restarts with each '
              'video), the default pipeline with its detector, one thread; every frame, and '
              'every fourth (`--frame-step 4`: what a node answering 7.5 of 30 frames a second '
              "sees). The node's tracking defaults (verify_interval 1, verify_below_score 0) "
              'tie for the most accurate row on every frame (with verify_below_score 0.5-0.6, '
              'which is no cheaper: the pose scores are mostly below 0.5); on every fourth frame '
              'verify_below_score 0.4 and no tracking are 1.3 points ahead (2 of 150 frames); '
              'never verifying saves about a quarter of the time for 1-4.5 points. No tracking is '
              'within what 600 frames resolve (two points) and finds fewer poses. Tracking is '
              'chosen again whenever the network or pipeline '
              'changes, never on LM-O. Jitter: how much the pose error changes from one frame to '
              'the next (same object, consecutive frames with poses); with tracking its median '
              'comes from the frames where a search pose replaces a track or starts one: '
              'between two frames whose poses both come from the track it is about 0.7 degrees '
              '(a scratch analysis of the every-frame run).', '']
    for data in runs:
        step = data.get('frame_step', 1)
        lines += [f"{'Every frame' if step == 1 else f'Every {step}th frame'} "
                  f"(`{command}{'' if step == 1 else f' --frame-step {step}'}`; CPU: "
                  f"{data['cpu_model']}; 1-minute load average "
                  f"{number(data['load_average_1_5_15']['start'][0])} at the start, "
                  f"{number(data['load_average_1_5_15']['end'][0])} at the end):", '',
                  '| setting | frames | ADD < 0.1 d | detection rate | ms per frame median / p95 '
                  '| jitter median / p95 | crops per frame: search / track |',
                  '|---|---|---|---|---|---|---|']
        for row in data['rows']:
            tallies = row.get('tallies_per_frame') or {}
            lines.append(
                f"| {row['setting']} | {row['frames']} "
                f"| {number(row['add_0.1d_accuracy'], 1, 100, '%')} "
                f"| {number(row['detection_rate'], 1, 100, '%')} "
                f"| {number(row['runtime_median_ms'], 0)} / "
                f"{number(row['runtime_p95_ms'], 0)} "
                f"| {number(row.get('jitter_median_deg'), 2)} / "
                f"{number(row.get('jitter_p95_deg'), 1)} deg, "
                f"{number(row.get('jitter_median_mm'), 1)} / "
                f"{number(row.get('jitter_p95_mm'), 0)} mm "
                f"| {number(tallies.get('crops from search', 0.0), 2)} / "
                f"{number(tallies.get('crops from track', 0.0), 2)} |")
        lines.append('')
    return lines + ['![ADD against time per frame, every frame](../results/tracking_settings.png)',
                    '']


def render(results):
    """Return the Markdown page for the results folder."""
    lines = ['# Performance and accuracy', '',
             'Generated by `python benchmarks/performance_report.py` from the JSON in `results/`; '
             'every figure names the command that measured it. Machine: 2 CPU cores, no GPU, '
             'often shared with training jobs (load averages are in the JSON files); numbers on a '
             'quiet machine or a GPU are better.', '']
    lines += accuracy_section(results) + objects_section(results) + tracking_section(results) \
        + stages_section(results) \
        + node_section(results) \
        + threads_section(results) + comparison_section(results) + parts_section(results) \
        + gpu_section(results)
    return '\n'.join(lines).rstrip() + '\n'


def evaluate(output_dir):
    """Run the eval-lmo command of every EVAL_ROWS and EVAL_ALL_ROWS entry into output_dir."""
    for _, _, _, command in EVAL_ROWS + EVAL_ALL_ROWS:
        words = shlex.split(command)
        if '--dataset' in words and not Path(words[words.index('--dataset') + 1]).is_dir():
            print(f'skipped (no dataset folder): {command}')
            continue
        print(f'== {command}', flush=True)
        subprocess.run([sys.executable, '-m', 'pose_kp_ros.tools.cli', *words[1:],
                        '--output-dir', str(output_dir)], check=True)


def main(argv=None):
    """Write the page; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--results', default='results')
    parser.add_argument('--out', default='docs/performance.md')
    parser.add_argument('--evaluate', action='store_true',
                        help="first run every accuracy row's eval-lmo command (into "
                             '<results>/eval_lmo); rows whose --dataset folder is missing are '
                             'skipped')
    args = parser.parse_args(argv)
    if args.evaluate:
        evaluate(Path(args.results) / 'eval_lmo')
    Path(args.out).write_text(render(Path(args.results)))
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
