"""`pose-kp eval-lmo`: the whole image pipeline on the 200 real LM-O photos, against ground truth.

    pose-kp eval-lmo --object driller [--pipeline-config models/driller/pipeline.yaml]
                     [--boxes detector|ground-truth] [--tracking [--verify-interval N]]
                     [--frames N] [--frame-step K] [--device cpu]
                     [--dataset DIR]
    pose-kp eval-lmo --object all [--pipeline-config CONFIG] [the options above]

Runs find (the pipeline's detector, or ground-truth boxes to isolate keypoints + solver), crop,
network and solver on every frame showing the object (with --dataset: on the images of a
rendered dataset folder with poses, e.g. held-out renders, instead), and writes to --output-dir:
`<stem>_summary.json` (ADD < 0.1 d, ADD AUC, median rotation/translation errors, 2D projection
< 5 px, detection rate, runtime per frame and per stage: 'stages', median/mean ms, with crops per
frame in 'tallies_per_frame'), `<stem>_frames.{csv,json}`, `<stem>_accuracy.png`
(accuracy vs threshold) and `<stem>_mosaic.png` (overlays). The photos are never used for training.
`--object all`: every LM-O object with a model, one table beside the published figures
(tools/eval_lmo_all.py).
"""

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import sys

from tqdm import tqdm

from pose_kp_ros import strict_json
from pose_kp_ros.data.package_data import LMO_OBJECT_IDS, lmo_frames
from pose_kp_ros.paths import data_path, portable_path
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.pipeline.evaluation import (
    model_points,
    summarize,
    summary_table,
    write_evaluation,
)
from pose_kp_ros.pipeline.multi_evaluation import EvalFrame, evaluate_frames
from pose_kp_ros.pipeline.stage_timer import StageHistory, cpu_model, stage_table
from pose_kp_ros.pipeline.tracking import TrackingConfig
from pose_kp_ros.tools import eval_lmo_all
from pose_kp_ros.tools.eval_lmo_all import select
from pose_kp_ros.training.posed_images import dataset_scenes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the parsed command-line options."""
    parser = argparse.ArgumentParser(prog='pose-kp eval-lmo', description=__doc__.split('\n')[0])
    parser.add_argument('--object', default='driller', choices=sorted(LMO_OBJECT_IDS) + ['all'],
                        help='an LM-O object, or all: every LM-O object the pipeline config '
                             'has a model for, in one pass over the photos, in one table')
    parser.add_argument('--pipeline-config', default='',
                        help='pipeline YAML (default: models/<object>/pipeline.yaml; with '
                             f'--object all: {eval_lmo_all.DEFAULT_CONFIG})')
    parser.add_argument('--boxes', default='detector', choices=('detector', 'ground-truth'),
                        help='where crops come from (ground-truth: isolates keypoints + solver)')
    parser.add_argument('--tracking', action='store_true',
                        help='treat the frames as a video (warm starts, track crops)')
    parser.add_argument('--verify-interval', type=int, default=TrackingConfig.verify_interval,
                        help='with --tracking: full-image search every N frames while the '
                             'object is tracked (0: never; the node parameter verify_interval)')
    parser.add_argument('--verify-below-score', type=float,
                        default=TrackingConfig.verify_below_score,
                        help='with --tracking: also search on every frame after a tracked pose '
                             'scored below this (0: never; the node parameter '
                             'verify_below_score)')
    parser.add_argument('--search-overlap-iou', type=float,
                        default=TrackingConfig.search_overlap_iou,
                        help="with --tracking: search boxes overlapping a track's crop by this "
                             'IoU or more are not cropped (the node parameter '
                             'search_overlap_iou)')
    parser.add_argument('--frames', type=int, default=0, help='evaluate the first N (0: all)')
    parser.add_argument('--frame-step', type=int, default=1,
                        help='evaluate every Nth of those frames (a fixed spread-out subset)')
    parser.add_argument('--device', default=None, help='override the config device')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--output-dir', default='results/eval_lmo')
    parser.add_argument('--mosaic-frames', type=int, default=16)
    parser.add_argument('--dataset', default='',
                        help='evaluate on this rendered dataset folder (annotations with K, R, '
                             't) instead of the LM-O photos, e.g. held-out renders')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate and write the results; return 0 (2: a bad option or missing data)."""
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    if args.object == 'all':
        return eval_lmo_all.main(args)
    config = args.pipeline_config or str(data_path('models', args.object, 'pipeline.yaml'))
    estimator = KeypointPoseEstimator.from_config(config, device=args.device)
    if args.object not in estimator.objects:
        print(f'pose-kp eval-lmo: {config} has no object {args.object!r}', file=sys.stderr)
        return 2
    model = estimator.objects[args.object].model
    points = model_points(model)
    try:
        if args.dataset:
            frames = [EvalFrame(name, path, K, {args.object: truths[args.object]}, sequence)
                      for name, path, K, truths, sequence
                      in dataset_scenes(args.dataset, [args.object])]
        else:
            frames = [EvalFrame(name, path, K, {args.object: (R, t, visible)})
                      for name, path, K, R, t, visible in lmo_frames(args.object)]
    except (ValueError, OSError) as error:  # DatasetError, PackageDataError
        print(f'pose-kp eval-lmo: {error}', file=sys.stderr)
        return 2
    frames = select(frames, args)
    tracker = eval_lmo_all.video_tracker(estimator, args)
    stages = StageHistory()
    results, overlays = evaluate_frames(
        estimator, frames, [args.object], {args.object: points}, args.boxes, tracker,
        args.mosaic_frames, lambda items: tqdm(items, desc=f'eval {args.object}'), stages)
    results = results[args.object]
    summary = summarize(results, model.diameter)
    summary.update({'object': args.object, 'boxes': args.boxes, 'tracking': args.tracking,
                    **eval_lmo_all.tracking_settings(args),
                    'frames_source': portable_path(args.dataset) if args.dataset
                    else 'LM-O test photos',
                    'pipeline_config': portable_path(config), 'device': str(estimator.device),
                    'threads': args.threads, 'cpu_model': cpu_model(),
                    'load_average_1_5_15': list(os.getloadavg()),
                    'model_points': len(points),
                    'stages': stages.summary(), 'tallies_per_frame': stages.tallies()})
    folder = Path(args.output_dir)
    source = 'LM-O' if not args.dataset else \
        'videos' if any(frame.sequence is not None for frame in frames) else 'renders'
    stem = (f'{args.object}_{"" if source == "LM-O" else source + "_"}{args.boxes}'
            f'{"_tracking" if args.tracking else ""}')
    write_evaluation(results, summary, model.diameter, folder, stem,
                     f'{source} {args.object} ({args.boxes} boxes)', overlays)
    print(summary_table(summary))
    print(stage_table(summary['stages'], summary['tallies_per_frame']))
    print(strict_json.dumps({k: v for k, v in summary.items() if isinstance(v, (int, float))}))
    print(f'wrote {folder}/{stem}_*')
    return 0


if __name__ == '__main__':
    sys.exit(main())
