"""How far a keypoint network's keypoints are off, against the confidence it reports.

The network crops every instance of a rendered dataset around its annotated box (as training
does, no augmentation) and reports, per confidence bin and separately for visible and hidden
(occluded or far-side) keypoints: the count, the median error as a fraction of the box's longer
side, and the median radial error (positive: away from the keypoints' centre; negative: shrunk
towards it, which makes the pose fit place the object too far away). This is what the fit's
weights conf ** confidence_power and the training option occluded_peak are chosen against.
With --lmo OBJECT the same is measured on the real LM-O photos instead (boxes and keypoints
projected from the ground-truth poses; no masks, so visibility is unknown): the sim-to-real
comparison, never used for choosing anything.

    python benchmarks/keypoint_calibration.py [--model models/driller/keypoints.onnx]
        [--dataset data/driller_val_v2 | --lmo driller] [--instances 400]
        [--out results/keypoint_calibration]

Writes <out>.json and <out>.png (error against confidence).
"""

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm import tqdm

from pose_kp_ros import strict_json
from pose_kp_ros.geometry.boxes import projected_box
from pose_kp_ros.geometry.mesh import outline_points
from pose_kp_ros.network.predictor import KeypointPredictor
from pose_kp_ros.paths import portable_path
from pose_kp_ros.training.records import load_records, read_image

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)
UNKNOWN = 3
"""Visibility code of keypoints in real photos without masks (the dataset's are 2 and 1)."""
GROUPS = (('visible', 2), ('hidden', 1), ('unknown', UNKNOWN))


def lmo_records(object_name):
    """Return records (image, box_xyxy, keypoints, visibility) of the LM-O photos of an object.

    Boxes are the projected mesh, keypoints the projected model keypoints (ground-truth poses);
    keypoints inside the image get visibility UNKNOWN, others 0.
    """
    from types import SimpleNamespace

    from pose_kp_ros.data.package_data import lmo_camera, lmo_frames
    from pose_kp_ros.geometry.camera import project_object_points
    from pose_kp_ros.geometry.object_model import ObjectModel
    from pose_kp_ros.paths import data_path

    model = ObjectModel.from_yaml(data_path('objects', f'{object_name}.yaml'))
    outline = outline_points(model)
    _, (width, height) = lmo_camera()
    records = []
    for _, path, K, R, t, _ in lmo_frames(object_name):
        uv = project_object_points(model.keypoints, R, t, K)  # ground truth: in front
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
        records.append(SimpleNamespace(image=str(path),
                                       box_xyxy=projected_box(outline, R, t, K),
                                       keypoints=uv, visibility=np.where(inside, UNKNOWN, 0)))
    return records


def keypoint_errors(predictor, records):
    """Return rows (N_total, 4): visibility, confidence, error / side, radial error / side."""
    rows = []
    for record in tqdm(records, desc='keypoints'):
        image = read_image(record.image)
        box = np.asarray(record.box_xyxy, dtype=np.float64)
        side = max(box[2] - box[0], box[3] - box[1])
        prediction = predictor.predict(image, box[None])
        truth = np.asarray(record.keypoints, dtype=np.float64)
        visibility = np.asarray(record.visibility)
        inside = visibility > 0
        if inside.sum() < 2:
            continue
        centre = truth[inside].mean(0)
        outward = truth - centre
        outward /= np.linalg.norm(outward, axis=1, keepdims=True) + 1e-9
        error = prediction.keypoints[0] - truth
        for k in np.flatnonzero(inside):
            rows.append((visibility[k], prediction.confidence[0, k],
                         np.linalg.norm(error[k]) / side, error[k] @ outward[k] / side))
    return np.array(rows)


def summarise(rows):
    """Return per-visibility, per-confidence-bin counts and medians."""
    summary = {}
    for name, visibility in GROUPS:
        mine = rows[rows[:, 0] == visibility]
        if not len(mine):
            continue
        bins = []
        for low, high in zip(BINS[:-1], BINS[1:]):
            chosen = mine[(mine[:, 1] >= low) & (mine[:, 1] < high)]
            if len(chosen):
                bins.append({'confidence': [low, min(high, 1.0)], 'count': len(chosen),
                             'median_error_of_box': float(np.median(chosen[:, 2])),
                             'median_radial_error_of_box': float(np.median(chosen[:, 3]))})
        summary[name] = {'count': len(mine),
                         'median_confidence': float(np.median(mine[:, 1])) if len(mine) else None,
                         'bins': bins}
    return summary


def plot(summary, path, title):
    """Save median error and radial error against confidence bin centre."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (('visible', 'o-'), ('hidden', 's--'), ('unknown', 'd:')):
        if name not in summary:
            continue
        bins = summary[name]['bins']
        centres = [sum(b['confidence']) / 2 for b in bins]
        axes[0].plot(centres, [b['median_error_of_box'] for b in bins], style, label=name)
        axes[1].plot(centres, [b['median_radial_error_of_box'] for b in bins], style, label=name)
    axes[0].set(xlabel='keypoint confidence', ylabel='median error / box side',
                yscale='log', title='error against confidence')
    axes[1].axhline(0.0, color='grey', lw=0.8)
    axes[1].set(xlabel='keypoint confidence', ylabel='median radial error / box side',
                title='radial error (< 0: shrunk to the centre)')
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main():
    """Measure, write JSON and PNG, print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='models/driller/keypoints.onnx')
    parser.add_argument('--dataset', default='data/driller_val_v2')
    parser.add_argument('--lmo', default='', metavar='OBJECT',
                        help='measure on the real LM-O photos of this object instead')
    parser.add_argument('--instances', type=int, default=400)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='results/keypoint_calibration')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = KeypointPredictor.from_file(args.model)
    if args.lmo:
        object_name, source, records = args.lmo, 'LM-O photos', lmo_records(args.lmo)
    else:
        source = portable_path(args.dataset)
        object_name, _, records = load_records(args.dataset)
    records = records[:args.instances]
    summary = summarise(keypoint_errors(predictor, records))
    summary.update({'model': portable_path(args.model), 'dataset': source, 'object': object_name,
                    'instances': len(records)})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(out.with_suffix('.json'), summary)
    plot(summary, out.with_suffix('.png'), f'{args.model} on {source}')
    for name in [name for name, _ in GROUPS if name in summary]:
        print(f"{name}: {summary[name]['count']} keypoints, median confidence "
              f"{summary[name]['median_confidence']:.2f}")
        for b in summary[name]['bins']:
            print(f"  conf {b['confidence'][0]:.1f}-{b['confidence'][1]:.1f}: {b['count']:5d}  "
                  f"error {b['median_error_of_box']:.3f}  radial "
                  f"{b['median_radial_error_of_box']:+.4f} of the box")
    print(f'wrote {out}.json, {out}.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
