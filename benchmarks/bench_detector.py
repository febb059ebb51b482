"""Benchmark of the full-image detector: speed per 640x480 frame and accuracy on real LM-O photos.

Speed: `ObjectDetector.detect` on 640x480 frames (letterbox, network, decoding, mapping back),
batch 1, with torch.set_num_threads(2) and (1); wall-clock median and 90th percentile. The
machine is shared: the load average before and after is recorded with the numbers.

Accuracy (with --checkpoint): the 200 real LM-O photos (evaluation only, never training). The
ground-truth box of an object is the box of its mesh vertices projected with the ground-truth
pose (the whole object, occluded parts included, clipped to the image), while the detector is
trained on tight boxes of the visible part: occlusion lowers the IoU. Reported: recall and
precision at IoU 0.5 and score >= the threshold, mean IoU of the matched boxes, AP@0.5 and the
IoU distribution; a mosaic of frames with ground truth (green) and detections (red).

    python benchmarks/bench_detector.py [--checkpoint runs/detector_driller/best.pt]
        [--object driller] [--frames 200] [--speed-frames 100]
"""

import argparse
import os
from pathlib import Path
import platform
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from pose_kp_ros import strict_json
from pose_kp_ros.data.package_data import (
    LMO_OBJECT_IDS,
    lmo_camera,
    lmo_ground_truth,
    lmo_mesh_uri,
    lmo_object_id,
)
from pose_kp_ros.geometry.boxes import pairwise_iou
from pose_kp_ros.geometry.camera import project_object_points
from pose_kp_ros.geometry.mesh import load_mesh
from pose_kp_ros.network.detector import ObjectDetector
from pose_kp_ros.network.detector_checkpoint import load_detector_checkpoint, make_detector_meta
from pose_kp_ros.network.detector_model import CenterNet, DetectorConfig
from pose_kp_ros.paths import portable_path
from pose_kp_ros.training.detection_metrics import DetectionEvaluator

REPO = Path(__file__).resolve().parents[1]


def build_detector(checkpoint, object_name, threads):
    """Return an ObjectDetector from a checkpoint, or with random weights (speed only)."""
    torch.set_num_threads(threads)
    if checkpoint:
        return ObjectDetector.from_file(checkpoint, object_names=[object_name])
    config = DetectorConfig(num_classes=1)
    return ObjectDetector(CenterNet(config), make_detector_meta(config, [object_name]))


def time_frames(detector, frames, repeats):
    """Return per-call wall-clock milliseconds of detector.detect over the frames, cycled."""
    for frame in frames[:3]:
        detector.detect(frame)
    times = []
    for i in tqdm(range(repeats), desc=f'speed, {torch.get_num_threads()} threads',
                  leave=False):
        started = time.perf_counter()
        detector.detect(frames[i % len(frames)])
        times.append(1000 * (time.perf_counter() - started))
    return np.array(times)


def lmo_boxes(object_name, count):
    """Return [(image path, ground-truth box (4,))] of the object's first `count` LM-O frames."""
    lmo_id = lmo_object_id(object_name)
    K, (width, height) = lmo_camera()
    vertices = np.asarray(load_mesh(lmo_mesh_uri(lmo_id), 0.001).vertices, np.float64)
    frames = []
    for path, R, t in lmo_ground_truth(lmo_id)[:count]:
        uv = project_object_points(vertices, R, t, K)
        box = np.array([uv[:, 0].min() - 0.5, uv[:, 1].min() - 0.5, uv[:, 0].max() + 0.5,
                        uv[:, 1].max() + 0.5])
        frames.append((path, np.clip(box, -0.5, [width - 0.5, height - 0.5] * 2)))
    return frames


def evaluate_lmo(detector, object_name, frames, mosaic_path):
    """Run the detector on LM-O frames; return metrics, per-frame rows and write a mosaic."""
    class_index = detector.class_names.index(object_name)
    evaluator = DetectionEvaluator(len(detector.class_names))
    low = ObjectDetector(detector.model, detector.meta, [object_name], score_threshold=0.01,
                         max_detections=20)
    rows, tiles, times = [], [], []
    for path, gt_box in tqdm(frames, desc='LM-O frames'):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        started = time.perf_counter()
        found = low.detect(image)
        times.append(1000 * (time.perf_counter() - started))
        boxes = np.array([d.box_xyxy for d in found]).reshape(-1, 4)
        scores = np.array([d.score for d in found])
        evaluator.add(boxes, scores, [class_index] * len(found), gt_box[None], [class_index])
        best = int(np.argmax(scores)) if len(found) else None
        iou = pairwise_iou(boxes, gt_box[None])[:, 0]
        rows.append({'image': path.name, 'gt_box': gt_box.round(2).tolist(),
                     'best_box': None if best is None else boxes[best].round(2).tolist(),
                     'best_score': None if best is None else float(scores[best]),
                     'best_iou': None if best is None else float(iou[best])})
        if len(tiles) < 12 and int(path.stem) % 16 == 0:
            tiles.append(_overlay(image, gt_box, boxes, scores, detector.score_threshold))
    summary = evaluator.summary(detector.score_threshold)
    best_ious = np.array([r['best_iou'] or 0.0 for r in rows])
    summary.update({'frames': len(frames), 'ms_per_frame_median': float(np.median(times)),
                    'best_box_iou_median': float(np.median(best_ious)),
                    'best_box_iou>=0.5': float(np.mean(best_ious >= 0.5)),
                    'best_box_iou>=0.7': float(np.mean(best_ious >= 0.7))})
    if tiles:
        while len(tiles) % 4:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.concatenate([np.concatenate(tiles[i:i + 4], 1)
                               for i in range(0, len(tiles), 4)], 0)
        cv2.imwrite(str(mosaic_path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 80])
    return summary, rows


def _overlay(image, gt_box, boxes, scores, threshold):
    """Return a half-size copy of the image with the GT box (green) and detections (red)."""
    canvas = image.copy()
    cv2.rectangle(canvas, *_corners(gt_box), (0, 220, 0), 2)
    for box, score in zip(boxes, scores):
        if score >= threshold:
            cv2.rectangle(canvas, *_corners(box), (230, 0, 0), 2)
            cv2.putText(canvas, f'{score:.2f}', _corners(box)[0], cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        (230, 0, 0), 2)
    return cv2.resize(canvas, (canvas.shape[1] // 2, canvas.shape[0] // 2),
                      interpolation=cv2.INTER_AREA)


def _corners(box):
    """Return integer (x0, y0), (x1, y1) pixel corners of an edge box."""
    return ((int(round(box[0] + 0.5)), int(round(box[1] + 0.5))),
            (int(round(box[2] - 0.5)), int(round(box[3] - 0.5))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', help='detector checkpoint (none: speed only, random '
                                             'weights of the default architecture)')
    parser.add_argument('--object', default='driller', choices=sorted(LMO_OBJECT_IDS),
                        help='LM-O object, a class of the checkpoint')
    parser.add_argument('--frames', type=int, default=200, help='LM-O frames to evaluate')
    parser.add_argument('--speed-frames', type=int, default=100)
    parser.add_argument('--out', default=str(REPO / 'results' / 'bench_detector.json'))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    frames = lmo_boxes(args.object, args.frames) if args.checkpoint else []
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p, _ in frames[:10]]
    if not images:
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(10)]
    speed = {}
    for threads in (2, 1):
        detector = build_detector(args.checkpoint, args.object, threads)
        times = time_frames(detector, images, args.speed_frames)
        speed[f'{threads}_threads'] = {'median_ms': float(np.median(times)),
                                       'p90_ms': float(np.percentile(times, 90)),
                                       'min_ms': float(times.min())}
    result = {'checkpoint': args.checkpoint and portable_path(args.checkpoint),
              'object': args.object,
              'architecture': detector.meta['architecture'],
              'parameters': sum(p.numel() for p in detector.model.parameters()),
              'speed_640x480': speed, 'load_average_before': list(load_before),
              'load_average_after_speed': list(os.getloadavg()),
              'machine': f'{platform.machine()}, {os.cpu_count()} cores, torch '
                         f'{torch.__version__}'}
    if args.checkpoint:
        _, meta, _ = load_detector_checkpoint(args.checkpoint)
        result['checkpoint_epoch'] = meta['epoch']
        result['checkpoint_val_metrics'] = meta['metrics']
        mosaic = Path(args.out).with_name(Path(args.out).stem + '_lmo.jpg')
        result['lmo'], rows = evaluate_lmo(detector, args.object, frames, mosaic)
        strict_json.write(Path(args.out).with_name(Path(args.out).stem + '_lmo_frames.json'),
                          rows)
    strict_json.write(args.out, result)
    print(f"\nDetector {args.checkpoint or '(random weights)'}: "
          f"{result['parameters'] / 1e6:.2f} M parameters, input "
          f"{result['architecture']['input_width']}x{result['architecture']['input_height']}; "
          f'load average {load_before[0]:.1f} before, {result["load_average_after_speed"][0]:.1f}'
          ' after')
    print(f"{'threads':>8} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
    for name, row in speed.items():
        print(f"{name.split('_')[0]:>8} {row['median_ms']:10.1f} {row['p90_ms']:8.1f} "
              f"{row['min_ms']:8.1f}")
    if args.checkpoint:
        lmo = result['lmo']
        print(f"\nLM-O {args.object} ({lmo['frames']} real frames, IoU 0.5, score >= "
              f"{detector.score_threshold}): recall {lmo['recall']:.3f}, precision "
              f"{lmo['precision']:.3f}, mean IoU {lmo['mean_iou']:.3f}, AP@0.5 "
              f"{lmo['ap50']:.3f}, best-box IoU >= 0.5 {lmo['best_box_iou>=0.5']:.3f}, "
              f"{lmo['ms_per_frame_median']:.1f} ms/frame")
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
