"""`pose-kp eval-lmo --object all`: every LM-O object with a model, one pass, one table.

Every LM-O object the pipeline config (default: the shipped one; a config may list several
objects) has a keypoint model for is measured on the LM-O photos showing it (with --dataset: on
a rendered dataset folder labelling them, e.g. held-out multi-object renders), with one pipeline
call per photo for all of them (as the node runs); the others are 'no model' rows, left out of
the mean. Metric per object: ADD, or ADD-S for objects whose YAML declares symmetries (eggbox,
glue), at 0.1 d. Written to --output-dir: `all_[renders_]<boxes>[_tracking]_summary.json` (rows,
mean, the published figures, the CPU model and the time per frame and per stage of the one
pipeline call for all objects), `..._accuracy.png` (bars), `..._mosaic.png`, and per object the
files of a single-object run in the folder `all_[renders_]<boxes>[_tracking]/`. The stage table
is printed below the objects table.
"""

import argparse
import os
from pathlib import Path
import sys
from typing import TypeVar

from tqdm import tqdm

from pose_kp_ros.data.package_data import LMO_OBJECT_IDS, lmo_camera, lmo_objects_frames
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.paths import (
    DEFAULT_PIPELINE_CONFIG,
    data_path,
    default_pipeline_config,
    portable_path,
)
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.pipeline.evaluation import model_points, summarize, write_evaluation
from pose_kp_ros.pipeline.multi_evaluation import (
    OTHER_TRAINING,
    PUBLISHED_LMO,
    SHIPPED_TRAINING,
    EvalFrame,
    error_metric,
    evaluate_frames,
    object_row,
    write_objects_table,
)
from pose_kp_ros.pipeline.stage_timer import StageHistory, cpu_model, stage_table
from pose_kp_ros.pipeline.tracking import PoseTracker, TrackingConfig
from pose_kp_ros.training.posed_images import dataset_scenes

DEFAULT_CONFIG = DEFAULT_PIPELINE_CONFIG
"""The shipped pipeline config, relative to the package data (--object all's default)."""

Frame = TypeVar('Frame')
"""A frame of any kind (an EvalFrame, a package_data.LmoFrame)."""


def select(frames: list[Frame], args: argparse.Namespace) -> list[Frame]:
    """Return the frames the options keep: the first --frames, then every --frame-step-th."""
    if args.frames:
        frames = frames[:args.frames]
    return frames[::max(args.frame_step, 1)]


def video_tracker(estimator: KeypointPoseEstimator,
                  args: argparse.Namespace) -> PoseTracker | None:
    """Return the PoseTracker of --tracking (--verify-interval, --verify-below-score), or None."""
    if not args.tracking:
        return None
    return PoseTracker(estimator, TrackingConfig(verify_interval=args.verify_interval,
                                                 verify_below_score=args.verify_below_score,
                                                 search_overlap_iou=args.search_overlap_iou))


def tracking_settings(args: argparse.Namespace) -> dict:
    """Return the tracking options a summary records (None without --tracking)."""
    return {name: getattr(args, name) if args.tracking else None
            for name in ('verify_interval', 'verify_below_score', 'search_overlap_iou')}


def lmo_photos(object_names: list[str]) -> list[EvalFrame]:
    """Return the LM-O photos showing any of object_names as EvalFrames, in frame order."""
    K, _ = lmo_camera()
    return [EvalFrame(path.stem, path, K, {name: (R, t, float('nan'))
                                           for name, (R, t) in truths.items()})
            for path, truths in lmo_objects_frames(object_names)]


def object_metric(name: str) -> str:
    """Return the metric ('ADD' or 'ADD-S') of an LM-O object from objects/<name>.yaml."""
    return error_metric(ObjectModel.from_yaml(data_path('objects', f'{name}.yaml')))


def main(args: argparse.Namespace) -> int:
    """Evaluate every LM-O object the config has a model for (parsed eval-lmo options)."""
    config = args.pipeline_config or default_pipeline_config()
    estimator = KeypointPoseEstimator.from_config(config, device=args.device)
    names = [name for name in sorted(LMO_OBJECT_IDS) if name in estimator.objects]
    if not names:
        print(f'pose-kp eval-lmo: {config} has no LM-O object (known: '
              f'{", ".join(sorted(LMO_OBJECT_IDS))})', file=sys.stderr)
        return 2
    try:
        frames = select([EvalFrame(*scene) for scene in dataset_scenes(args.dataset, names)]
                        if args.dataset else lmo_photos(names), args)
    except (ValueError, OSError) as error:  # DatasetError, PackageDataError
        print(f'pose-kp eval-lmo: {error}', file=sys.stderr)
        return 2
    points = {name: model_points(estimator.objects[name].model) for name in names}
    tracker = video_tracker(estimator, args)
    stages = StageHistory()
    results, overlays = evaluate_frames(
        estimator, frames, names, points, args.boxes, tracker, args.mosaic_frames,
        lambda items: tqdm(items, desc=f'eval {", ".join(names)}'), stages)
    stem = (f'all_{"renders_" if args.dataset else ""}{args.boxes}'
            f'{"_tracking" if args.tracking else ""}')
    folder = Path(args.output_dir)
    common = {'boxes': args.boxes, 'tracking': args.tracking,
              **tracking_settings(args),
              'frames_source': portable_path(args.dataset) if args.dataset else 'LM-O test photos',
              'pipeline_config': portable_path(config),
              'device': str(estimator.device), 'threads': args.threads}
    stage_times, tallies = stages.summary(), stages.tallies()
    training = SHIPPED_TRAINING if portable_path(config) == DEFAULT_CONFIG else OTHER_TRAINING
    rows = []
    for name in sorted(LMO_OBJECT_IDS):
        if name not in names:
            rows.append(object_row(name, object_metric(name)))
            continue
        model = estimator.objects[name].model
        summary = summarize(results[name], model.diameter)
        summary.update({'object': name, **common, 'model_points': len(points[name]),
                        'metric': error_metric(model)})
        object_stem = f'{name}_{args.boxes}{"_tracking" if args.tracking else ""}'
        write_evaluation(results[name], summary, model.diameter, folder / stem, object_stem,
                         f'{"renders" if args.dataset else "LM-O"} {name} ({args.boxes} '
                         f'boxes, {error_metric(model)})', [])
        rows.append(object_row(name, error_metric(model), summary,
                               f'{stem}/{object_stem}_summary.json'))
    print(write_objects_table(
        rows, len(frames), training, folder, stem,
        f'{common["frames_source"]}, {len(frames)} images ({args.boxes} boxes): ADD(-S) < 0.1 d '
        'per object',
        overlays, () if args.dataset else PUBLISHED_LMO, **common, cpu_model=cpu_model(),
        load_average_1_5_15=list(os.getloadavg()), stages=stage_times,
        tallies_per_frame=tallies))
    print(stage_table(stage_times, tallies))
    print(f'wrote {folder}/{stem}_* and {folder / stem}/')
    return 0
