"""Draw docs/figures/pipeline.png: the four pipeline stages on one real LM-O photo.

    python scripts/make_pipeline_figure.py [--frame 40] [--pipeline-config FILE] [--out PNG]

Panels: (1) the full-image detector's box, (2) the square crop the network sees, (3) its keypoint
heatmaps (maximum over keypoints), (4) the fitted pose (projected box, axes, keypoints coloured by
confidence) with the ground truth in white. Uses the same estimator the node, demo and evaluation
use; the photo is never used for training.
"""

import argparse
from pathlib import Path
import sys

import cv2
import numpy as np
import torch

from pose_kp_ros.data.package_data import (
    LMO_OBJECT_IDS,
    lmo_camera,
    lmo_ground_truth,
    lmo_object_id,
)
from pose_kp_ros.network.crops import crop_boxes
from pose_kp_ros.paths import data_path
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator
from pose_kp_ros.pipeline.overlay import draw_pose

PANEL = 360


def titled(image_rgb, title):
    """Return the image resized to PANEL px high with a title bar above it."""
    scale = PANEL / image_rgb.shape[0]
    panel = cv2.resize(image_rgb, (round(image_rgb.shape[1] * scale), PANEL))
    bar = np.full((34, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, panel])


def main(argv=None):
    """Write the figure; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--object', default='driller', choices=sorted(LMO_OBJECT_IDS))
    parser.add_argument('--frame', type=int, default=40, help='index among the object frames')
    parser.add_argument('--pipeline-config', default='')
    parser.add_argument('--out', default=str(Path('docs') / 'figures' / 'pipeline.png'))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = args.pipeline_config or str(data_path('models', args.object, 'pipeline.yaml'))
    estimator = KeypointPoseEstimator.from_config(config, device='cpu')
    runtime = estimator.objects[args.object]
    K, _ = lmo_camera()
    path, R_gt, t_gt = lmo_ground_truth(lmo_object_id(args.object))[args.frame]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].copy()

    requests = [r for r in estimator.search(image) if r.object_name == args.object]
    found = image.copy()
    for request in requests:
        x0, y0, x1, y1 = np.round(request.box_xyxy).astype(int)
        cv2.rectangle(found, (x0, y0), (x1, y1), (255, 60, 0), 3)
        cv2.putText(found, f'{request.score:.2f}', (x0, max(y0 - 6, 12)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 60, 0), 2, cv2.LINE_AA)
    poses = estimator.estimate(image, K, requests[:1])
    box = requests[0].box_xyxy if requests else None
    predictor = runtime.predictor
    if box is not None:
        crop = crop_boxes(image, box[None], predictor.input_size, predictor.padding)[0][0]
        heatmaps = predictor.predict(image, box[None]).heatmaps[0].clamp(0, 1).amax(0).numpy()
        heat = cv2.applyColorMap(np.uint8(255 * cv2.resize(heatmaps, crop.shape[:2])),
                                 cv2.COLORMAP_JET)[:, :, ::-1]
        heat = cv2.addWeighted(crop, 0.45, heat, 0.55, 0)
    else:
        crop = heat = np.zeros((predictor.input_size,) * 2 + (3,), np.uint8)
    fitted = image.copy()
    draw_pose(fitted, K, R_gt, t_gt, runtime.outline, colour=(255, 255, 255))
    for pose in poses[:1]:
        draw_pose(fitted, K, pose.R, pose.t, runtime.outline, pose.keypoints, pose.confidences,
                  label=f'{pose.object_name} {pose.score:.2f}')
    panels = [titled(found, '1. find: full-image detector'),
              titled(crop, '2. crop (network input)'),
              titled(heat, '3. keypoint heatmaps'),
              titled(fitted, '4. pose fit (white: ground truth)')]
    figure = np.hstack([np.pad(p, ((0, 0), (4, 4), (0, 0)), constant_values=255) for p in panels])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, figure[:, :, ::-1])
    print(f'wrote {args.out} (frame {path.name}, {len(requests)} detections, {len(poses)} pose)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
