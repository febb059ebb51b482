"""Choose the node's tracking settings on held-out rendered videos (never on the LM-O photos).

    python benchmarks/tracking_settings.py [--videos data/driller_video] [--frames N]
        [--frame-step N] [--out results/tracking_settings.json]

Each setting is one `pose-kp eval-lmo --object driller --dataset VIDEOS` run (its own process,
one thread, the default pipeline, the full-image detector): once without tracking, then with
tracking at each (`verify_interval`, `verify_below_score`) pair of SETTINGS. The videos come from
`pose-kp render --settings config/render_driller_video.yaml` (docs/custom_object.md, "Videos");
tracking restarts with each video. `--frame-step` N keeps every Nth frame: a node that answers
one frame in N of a 30 Hz camera sees that video. Writes the JSON (per setting: ADD < 0.1 d,
detection rate, runtime median / p95, frame-to-frame jitter, crops per frame; CPU model, load)
and a plot of ADD against the median time per frame (the .png beside it).
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from pose_kp_ros import strict_json  # noqa: E402
from pose_kp_ros.paths import portable_path  # noqa: E402
from pose_kp_ros.pipeline.stage_timer import cpu_model  # noqa: E402

SETTINGS = ((None, None), (1, 0.0), (0, 0.0), (10, 0.0), (0, 0.3), (0, 0.4), (0, 0.5),
            (0, 0.6), (30, 0.5))
"""(verify_interval, verify_below_score); (None, None): no tracking."""
KEPT = ('frames', 'detection_rate', 'add_0.1d_accuracy', 'runtime_median_ms', 'runtime_p95_ms',
        'jitter_median_deg', 'jitter_p95_deg', 'jitter_median_mm', 'jitter_p95_mm',
        'tallies_per_frame')


def evaluate(videos: str, frames: int, frame_step: int, verify: int | None,
             below: float | None, folder: Path) -> dict:
    """Return the eval-lmo summary of one setting (its output goes to folder)."""
    argv = ['--object', 'driller', '--dataset', videos, '--frames', str(frames),
            '--frame-step', str(frame_step), '--mosaic-frames', '0', '--output-dir',
            str(folder)]
    if verify is not None:
        argv += ['--tracking', '--verify-interval', str(verify), '--verify-below-score',
                 str(below)]
    subprocess.run([sys.executable, '-m', 'pose_kp_ros.tools.cli', 'eval-lmo', *argv],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(next(folder.glob('*_summary.json')).read_text())


def plot(rows: list[dict], path: Path) -> None:
    """Draw ADD < 0.1 d against the median ms per frame, one labelled point per setting."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for row in rows:
        verify, below = row['verify_interval'], row['verify_below_score']
        name = 'no tracking' if verify is None else \
            f'v{verify}' + (f' s{below:g}' if below else '')
        axes.scatter(row['runtime_median_ms'], 100 * row['add_0.1d_accuracy'],
                     color='C1' if verify is None else 'C0')
        axes.annotate(name, (row['runtime_median_ms'], 100 * row['add_0.1d_accuracy']),
                      fontsize=8, xytext=(3, 3), textcoords='offset points')
    axes.set_xlabel('median ms per frame (one thread); vN: verify_interval N, '
                    'sX: verify_below_score X', fontsize=8)
    axes.set_ylabel('ADD < 0.1 d (%)')
    axes.set_title('Tracking settings on held-out rendered videos')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def label(verify: int | None, below: float | None) -> str:
    """Return a setting's short name."""
    if verify is None:
        return 'no tracking'
    return f'verify_interval {verify}, verify_below_score {below:g}'


def main(argv: list[str] | None = None) -> int:
    """Run every setting; write the JSON and the plot; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--videos', default='data/driller_video')
    parser.add_argument('--frames', type=int, default=0, help='first N frames (0: all)')
    parser.add_argument('--frame-step', type=int, default=1,
                        help='keep every Nth frame (a node answering one frame in N)')
    parser.add_argument('--out', default='results/tracking_settings.json')
    args = parser.parse_args(argv)
    if not Path(args.videos).is_dir():
        print(f'{args.videos}: no such folder; render it first (docs/custom_object.md, '
              '"Videos")', file=sys.stderr)
        return 2
    rows = []
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as temporary:
        for number, (verify, below) in enumerate(SETTINGS):
            summary = evaluate(args.videos, args.frames, args.frame_step, verify, below,
                               Path(temporary) / str(number))
            row = {'setting': label(verify, below), 'tracking': verify is not None,
                   'verify_interval': verify, 'verify_below_score': below,
                   **{key: summary.get(key) for key in KEPT}}
            rows.append(row)
            print(f"{row['setting']:<42} ADD {row['add_0.1d_accuracy']:.1%}  detected "
                  f"{row['detection_rate']:.1%}  {row['runtime_median_ms']:.0f} / "
                  f"{row['runtime_p95_ms']:.0f} ms", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(strict_json.dumps({
        'benchmark': 'tracking_settings', 'videos': portable_path(args.videos),
        'frames': args.frames, 'frame_step': args.frame_step,
        'cpu_model': cpu_model(), 'load_average_1_5_15': {'start': load_start,
                                                           'end': list(os.getloadavg())},
        'rows': rows}, indent=1))
    plot(rows, out.with_suffix('.png'))
    print(f'wrote {out} and {out.with_suffix(".png")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
