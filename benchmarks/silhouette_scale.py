"""Silhouette drift at ground-truth poses: does an object look as large as its ground truth says.

At every frame's ground-truth pose, the pipeline's own silhouette refinement
(pose_kp_ros.geometry.contour_alignment.refine_pose, silhouette alone, no keypoints) moves the
pose onto the image edges, and the depth ratio (refined / ground-truth depth) and the rotation
change are recorded: a ratio of 1.0 means the edges sit where the ground truth puts the outline;
1.03 would mean the object looks 3% smaller than its ground truth (a ground-truth depth or
mesh-scale error). On renders the ground truth is exact, so they show the method's own bias
and spread. This is how the LM-O ground truth was ruled out as the cause of the keypoint
network's too-far depths (docs/pipeline.md, "Why the silhouette refinement").

    python benchmarks/silhouette_scale.py [--object driller] [--dataset data/driller_val_v2]
        [--out results/silhouette_scale]

Without --dataset it measures the real LM-O photos. Writes <out>_<lmo|dataset name>.json.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pose_kp_ros import strict_json
from pose_kp_ros.data.package_data import lmo_frames
from pose_kp_ros.geometry.contour_alignment import refine_pose
from pose_kp_ros.geometry.image_edges import image_gradients
from pose_kp_ros.geometry.mesh import object_mesh, surface_points
from pose_kp_ros.geometry.metrics import rotation_error_deg
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.paths import data_path, portable_path
from pose_kp_ros.pipeline.config import PipelineConfig
from pose_kp_ros.training.posed_images import dataset_frames


def ground_truth_drift(frames, surface, search_px):
    """Return depth ratios (F,) and rotation changes (F,) degrees, silhouette refinement alone.

    Each refinement starts at the frame's ground-truth pose (a rejected one gives 1 and 0).
    """
    ratios, degrees = [], []
    for _, path, K, R, t, _ in tqdm(frames, desc='frames'):
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        refined_R, refined_t = refine_pose(image_gradients(image), surface, R, t, K, search_px)
        ratios.append(refined_t[2] / t[2])
        degrees.append(rotation_error_deg(refined_R, R))
    return np.array(ratios), np.array(degrees)


def main():
    """Measure, write JSON, print the summary; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--object', default='driller')
    parser.add_argument('--dataset', default='', help='rendered dataset folder (default: LM-O)')
    parser.add_argument('--search-px', default=','.join(
        f'{v:g}' for v in PipelineConfig.contour_search_px), help='search ranges, pixels')
    parser.add_argument('--out', default='results/silhouette_scale')
    args = parser.parse_args()
    model = ObjectModel.from_yaml(data_path('objects', f'{args.object}.yaml'))
    mesh = object_mesh(model)
    if mesh is None:
        raise SystemExit(f'{args.object}: the object model has no usable mesh')
    frames = dataset_frames(args.dataset, args.object) if args.dataset else lmo_frames(args.object)
    search_px = tuple(float(v) for v in args.search_px.split(','))
    ratios, degrees = ground_truth_drift(frames, surface_points(mesh), search_px)
    quartiles = np.percentile(ratios, [25, 50, 75])
    summary = {'object': args.object,
               'images': portable_path(args.dataset) if args.dataset else 'LM-O photos',
               'frames': len(ratios), 'search_px': list(search_px),
               'depth_ratio_quartiles': quartiles.round(4).tolist(),
               'within_1_percent': float(np.mean(np.abs(ratios - 1) < 0.01)),
               'within_2_percent': float(np.mean(np.abs(ratios - 1) < 0.02)),
               'rotation_change_deg_quartiles': np.percentile(degrees, [25, 50, 75]).round(3)
               .tolist()}
    name = Path(args.dataset).name if args.dataset else 'lmo'
    out = Path(f'{args.out}_{name}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    strict_json.write(out, summary)
    print(f"{summary['images']}: refined / ground-truth depth at the ground-truth pose, quartiles "
          f"{quartiles[0]:.3f} / {quartiles[1]:.3f} / {quartiles[2]:.3f}; within 1%: "
          f"{summary['within_1_percent']:.0%}, within 2%: {summary['within_2_percent']:.0%}; "
          f"rotation change median {np.median(degrees):.2f} deg ({len(ratios)} frames)")
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
