"""Pose accuracy of a run against ground truth: per-frame errors, summary, plots.

One code path for `pose-kp eval-lmo` (offline pipeline) and the live demo's evaluator node.
A frame without an estimate counts as a failure (its errors are NaN).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros import strict_json
from pose_kp_ros.geometry.mesh import object_mesh
from pose_kp_ros.geometry.metrics import (
    accuracy_auc,
    accuracy_under,
    add,
    add_s,
    projection_error_2d,
    rotation_error_deg,
    translation_error,
)
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.symmetry import Symmetry, canonical_pose, symmetry_group
from pose_kp_ros.pipeline.overlay import mosaic


@dataclass
class FrameResult:
    """Errors of one frame (NaN when there was no estimate).

    Attributes: frame (name or index), detected, add_m (ADD or ADD-S, metres), rotation_deg,
    translation_m, projection_px, latency_ms (stamp to result, NaN if unknown), runtime_ms,
    visible_fraction (of the object's silhouette, from the annotation; NaN if unknown),
    jitter_deg, jitter_mm (in a video, how much the pose error changed since the previous
    frame: `pose_error_change`; NaN unless both frames have a pose).
    """

    frame: str
    detected: bool
    add_m: float
    rotation_deg: float
    translation_m: float
    projection_px: float
    latency_ms: float = float('nan')
    runtime_ms: float = float('nan')
    visible_fraction: float = float('nan')
    jitter_deg: float = float('nan')
    jitter_mm: float = float('nan')


def pose_error_change(before: tuple[np.ndarray, np.ndarray],
                      after: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Return how much a pose error changed between two frames: (degrees, millimetres).

    before, after: pose errors (R_est R_gt^T (3, 3), t_est - t_gt (3,) metres) of consecutive
    frames. A pose that is off by the same amount in both frames changes by 0 (no jitter); a
    flip between equivalent poses of a symmetric object counts (the raw ground truth is used).
    """
    degrees = float(rotation_error_deg(after[0][None], before[0][None])[0])
    return degrees, float(np.linalg.norm(after[1] - before[1]) * 1000.0)


MAX_MODEL_POINTS = 30_000
"""Meshes with more vertices are measured on a fixed subset of this many (ADD costs O(N))."""


def model_points(model: ObjectModel, max_points: int = MAX_MODEL_POINTS) -> np.ndarray:
    """Return the (P, 3) metres points ADD, ADD-S and the 2D projection error are measured on.

    As in the BOP toolkit: the vertices of the object's mesh, every one of them up to
    max_points (a larger mesh gives a fixed, seeded subset). One point set for `pose-kp
    eval-lmo` and the live evaluator. Raises ValueError when the model has no usable mesh.
    """
    mesh = object_mesh(model)
    if mesh is None:
        raise ValueError(f'{model.name}: no mesh (or an unreadable one): ADD is measured on the '
                         'mesh vertices')
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) > max_points:
        chosen = np.random.default_rng(0).choice(len(vertices), max_points, replace=False)
        vertices = vertices[np.sort(chosen)]
    return vertices


VISIBILITY_BINS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))
"""Visible-fraction ranges [low, high) of the summary's breakdown (the last one includes 1)."""


def frame_errors(frame: str | int, R_est: ArrayLike | None, t_est: ArrayLike | None,
                 R_gt: ArrayLike, t_gt: ArrayLike, model_points: np.ndarray, K: ArrayLike,
                 symmetric: bool = False, latency_ms: float = float('nan'),
                 runtime_ms: float = float('nan'), visible_fraction: float = float('nan'),
                 symmetries: Sequence[Symmetry] = ()) -> FrameResult:
    """Return the FrameResult of one estimate (R_est None: not detected).

    R (3, 3), t (3,) metres; model_points (P, 3) metres (`model_points`); K (3, 3).

    symmetric: ADD-S instead of ADD. symmetries (the object's Symmetry list): the rotation,
    translation and 2D errors are measured against the equivalent ground-truth pose nearest to
    the estimate, so a right answer in another equivalent frame is not a 180 deg error.
    """
    if R_est is None:
        return FrameResult(str(frame), False, *([float('nan')] * 4), latency_ms, runtime_ms,
                           visible_fraction)
    if symmetries:
        R_gt, t_gt = canonical_pose(R_gt, t_gt, symmetry_group(symmetries),
                                    reference=np.asarray(R_est))
    args = (np.asarray(R_est)[None], np.asarray(t_est)[None], np.asarray(R_gt)[None],
            np.asarray(t_gt)[None])
    distance = (add_s if symmetric else add)(*args, model_points)[0]
    return FrameResult(str(frame), True, float(distance),
                       float(rotation_error_deg(args[0], args[2])[0]),
                       float(translation_error(args[1], args[3])[0]),
                       float(projection_error_2d(*args, model_points, K)[0]),
                       latency_ms, runtime_ms, visible_fraction)


def summarize(results: Sequence[FrameResult], diameter: float) -> dict:
    """Return the summary dict of a list of FrameResults for an object of `diameter` metres."""
    add_m = np.array([r.add_m for r in results], float)
    detected = np.array([r.detected for r in results], bool)

    def median(values):
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        return float(np.median(values)) if values.size else float('nan')

    def percentile(values, q):
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        return float(np.percentile(values, q)) if values.size else float('nan')

    latency = [r.latency_ms for r in results]
    runtime = [r.runtime_ms for r in results]
    visible = np.array([r.visible_fraction for r in results], float)
    jitter = {unit: [getattr(r, f'jitter_{unit}') for r in results] for unit in ('deg', 'mm')}
    by_visibility = []
    for low, high in VISIBILITY_BINS if np.isfinite(visible).any() else ():
        inside = (visible >= low) & ((visible < high) | ((high == 1.0) & (visible <= 1.0)))
        if inside.any():
            by_visibility.append({
                'visible_fraction': [low, high], 'frames': int(inside.sum()),
                'detection_rate': float(detected[inside].mean()),
                'add_0.1d_accuracy': accuracy_under(add_m[inside], 0.1 * diameter)})
    summary = {
        'frames': len(results),
        'detection_rate': float(detected.mean()) if len(results) else 0.0,
        'add_0.1d_accuracy': accuracy_under(add_m, 0.1 * diameter),
        'add_auc_0.1d': accuracy_auc(add_m, 0.1 * diameter),
        'projection_5px_accuracy': accuracy_under([r.projection_px for r in results], 5.0),
        'median_rotation_deg': median([r.rotation_deg for r in results]),
        'median_translation_mm': median([r.translation_m for r in results]) * 1000.0,
        'median_add_mm': median(add_m) * 1000.0,
        'latency_median_ms': median(latency),
        'latency_p95_ms': percentile(latency, 95),
        'runtime_median_ms': median(runtime),
        'runtime_p95_ms': percentile(runtime, 95),
        'diameter_m': float(diameter),
        'by_visible_fraction': by_visibility,
    }
    if np.isfinite(jitter['deg']).any():  # videos: frame-to-frame change of the pose error
        for unit, values in jitter.items():
            summary[f'jitter_median_{unit}'] = median(values)
            summary[f'jitter_p95_{unit}'] = percentile(values, 95)
    return summary


def summary_table(summary: dict) -> str:
    """Return the summary as aligned text lines (for printing); unmeasured timings are left out."""
    rows = [
        ('frames', f"{summary['frames']}"),
        ('detection rate', f"{summary['detection_rate']:.1%}"),
        ('ADD < 0.1 d', f"{summary['add_0.1d_accuracy']:.1%}"),
        ('ADD AUC (0.1 d)', f"{summary['add_auc_0.1d']:.3f}"),
        ('2D projection < 5 px', f"{summary['projection_5px_accuracy']:.1%}"),
        ('median rotation error', f"{summary['median_rotation_deg']:.2f} deg"),
        ('median translation error', f"{summary['median_translation_mm']:.1f} mm"),
    ]
    for name, key in (('latency', 'latency'), ('runtime', 'runtime')):
        median, p95 = summary[f'{key}_median_ms'], summary[f'{key}_p95_ms']
        if np.isfinite(median):
            rows.append((f'{name} median / p95', f'{median:.0f} / {p95:.0f} ms'))
    if 'jitter_median_deg' in summary:
        rows.append(('jitter median / p95', f"{summary['jitter_median_deg']:.2f} / "
                     f"{summary['jitter_p95_deg']:.2f} deg, {summary['jitter_median_mm']:.1f} / "
                     f"{summary['jitter_p95_mm']:.1f} mm"))
    for part in summary.get('by_visible_fraction', []):
        low, high = part['visible_fraction']
        rows.append((f'ADD, {low:.0%}-{high:.0%} visible',
                     f"{part['add_0.1d_accuracy']:.1%} of {part['frames']} frames"))
    width = max(len(name) for name, _ in rows)
    return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)


def write_results(results: Sequence[FrameResult], summary: dict, folder: Path,
                  stem: str) -> None:
    """Write `<stem>_frames.json`, `<stem>_frames.csv` and `<stem>_summary.json` into folder.

    The JSON files are strict JSON: what was not measured (NaN) is null.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in results]
    strict_json.write(folder / f'{stem}_frames.json', rows)
    header = list(FrameResult.__dataclass_fields__)
    lines = [','.join(header)] + [','.join(str(row[k]) for k in header) for row in rows]
    (folder / f'{stem}_frames.csv').write_text('\n'.join(lines) + '\n')
    strict_json.write(folder / f'{stem}_summary.json', summary)


def write_evaluation(results: Sequence[FrameResult], summary: dict, diameter: float,
                     folder: Path, stem: str, title: str, tiles: Sequence[np.ndarray]) -> None:
    """Write a run's files into folder: results (write_results), accuracy plot and mosaic.

    `<stem>_accuracy.png` (plot_accuracy, titled `title`) is written when there are results,
    `<stem>_mosaic.png` when there are tiles (uint8 RGB overlays).
    """
    write_results(results, summary, folder, stem)
    if results:
        plot_accuracy(results, diameter, folder / f'{stem}_accuracy.png', title)
    if tiles:
        cv2.imwrite(str(folder / f'{stem}_mosaic.png'), mosaic(tiles)[:, :, ::-1])


def plot_accuracy(results: Sequence[FrameResult], diameter: float, path: Path | str,
                  title: str) -> None:
    """Save a PNG: ADD accuracy vs threshold (fraction of d, metres) and latency over frames."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    add_m = np.array([r.add_m for r in results], float)
    thresholds = np.linspace(0.0, 0.3, 121)
    accuracy = [accuracy_under(add_m, tau * diameter) for tau in thresholds]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(thresholds, accuracy)
    left.axvline(0.1, color='grey', linestyle='--', linewidth=0.8)
    left.set_xlabel('ADD threshold (fraction of diameter)')
    left.set_ylabel('accuracy')
    left.set_ylim(0, 1)
    left.grid(alpha=0.3)
    left.set_title(f'{title}: ADD accuracy')
    latency = np.array([r.latency_ms for r in results], float)
    if np.isfinite(latency).any():
        right.plot(latency, '.', markersize=3)
        right.set_ylabel('latency (ms)')
    else:
        right.plot([r.runtime_ms for r in results], '.', markersize=3)
        right.set_ylabel('runtime (ms)')
    right.set_xlabel('frame')
    right.grid(alpha=0.3)
    right.set_title('per-frame time')
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
