"""Two evaluations of the same frames, object by object: the frames gained and lost, a sign test.

    python benchmarks/paired_comparison.py BEFORE AFTER [--output results/paired.json]

BEFORE and AFTER are folders `pose-kp eval-lmo` wrote its per-object files into (with
`--object all`: <output-dir>/all_detector, all_ground-truth, all_renders_detector, ...), from
two models or settings run on the same photos or renders with the same boxes. For every object
in both, frames are matched by name; a frame is right when its ADD (ADD-S for symmetric objects,
as eval-lmo scored it) is at most 0.1 of the object's diameter, and a frame without a pose is
wrong. Gained: right after, wrong before; lost: the reverse. The exact two-sided sign test on
gained against lost (frames right or wrong in both carry no information) gives p: how likely a
split at least this uneven is when both are equally good. The model cards' choices between
candidates use the totals (the frames of all objects pooled). Prints the table; writes JSON.
Figures only.
"""

import argparse
import json
from math import comb
from pathlib import Path
import sys

import numpy as np

from pose_kp_ros import strict_json
from pose_kp_ros.geometry.metrics import accuracy_under

FRAMES_SUFFIX = '_frames.json'
SUMMARY_SUFFIX = '_summary.json'


def sign_test_p(gained: int, lost: int) -> float:
    """Return the exact two-sided sign test p-value of `gained` against `lost` (1.0 if none)."""
    count = gained + lost
    if count == 0:
        return 1.0
    tail = sum(comb(count, k) for k in range(min(gained, lost) + 1)) / 2 ** count
    return min(1.0, 2 * tail)


def right_frames(folder: Path, stem: str) -> dict[str, bool]:
    """Return {frame: ADD(-S) <= 0.1 d} of one object's evaluation files in `folder`.

    stem: the files' common start, '<object>_<boxes>' (e.g. 'driller_detector').
    """
    rows = json.loads((folder / f'{stem}{FRAMES_SUFFIX}').read_text())
    summary = json.loads((folder / f'{stem}{SUMMARY_SUFFIX}').read_text())
    diameter = float(summary['diameter_m'])
    errors = np.array([np.nan if row['add_m'] is None else row['add_m'] for row in rows], float)
    return {str(row['frame']): accuracy_under(error[None], 0.1 * diameter) == 1.0
            for row, error in zip(rows, errors)}


def evaluated(folder: Path) -> set[str]:
    """Return the stems ('<object>_<boxes>') of the evaluations in `folder`."""
    return {path.name[:-len(FRAMES_SUFFIX)] for path in folder.glob(f'*{FRAMES_SUFFIX}')}


def compare(before: Path, after: Path) -> dict:
    """Return per-object and total frames, right before / after, gained, lost and p.

    Objects are the stems with frames files in both folders; frames those in both evaluations.
    Raises FileNotFoundError when the folders share no object.
    """
    stems = sorted(evaluated(before) & evaluated(after))
    if not stems:
        raise FileNotFoundError(f'{before} and {after} have no *{FRAMES_SUFFIX} of the same '
                                'object')
    rows = []
    for stem in stems:
        old, new = right_frames(before, stem), right_frames(after, stem)
        frames = [frame for frame in old if frame in new]
        rows.append({
            'evaluation': stem,
            'frames': len(frames),
            'right_before': sum(old[f] for f in frames),
            'right_after': sum(new[f] for f in frames),
            'gained': sum(new[f] and not old[f] for f in frames),
            'lost': sum(old[f] and not new[f] for f in frames),
        })
    total = {key: sum(row[key] for row in rows) for key in
             ('frames', 'right_before', 'right_after', 'gained', 'lost')}
    for row in [*rows, total]:
        row['sign_test_p'] = sign_test_p(row['gained'], row['lost'])
    return {'before': str(before), 'after': str(after), 'objects': rows, 'total': total}


def table(result: dict) -> str:
    """Return the comparison as a text table (one line per object, then the total)."""
    lines = [f"{'evaluation':28s} {'frames':>6s} {'before':>7s} {'after':>7s} {'gained':>7s} "
             f"{'lost':>5s} {'p':>6s}"]
    for name, row in [(row['evaluation'], row) for row in result['objects']] + [
            ('total', result['total'])]:
        frames = max(row['frames'], 1)
        lines.append(f"{name:28s} {row['frames']:6d} {row['right_before'] / frames:7.1%} "
                     f"{row['right_after'] / frames:7.1%} {row['gained']:7d} {row['lost']:5d} "
                     f"{row['sign_test_p']:6.3f}")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Compare two evaluation folders; print the table, write --output (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('before', type=Path, help='eval-lmo files of the baseline')
    parser.add_argument('after', type=Path, help='eval-lmo files of the candidate')
    parser.add_argument('--output', type=Path, help='write the comparison here (JSON)')
    args = parser.parse_args(argv)
    try:
        result = compare(args.before, args.after)
    except FileNotFoundError as error:
        print(f'paired_comparison: {error}', file=sys.stderr)
        return 2
    print(table(result))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        strict_json.write(args.output, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
