"""Detection metrics: greedy matching to ground truth, recall, precision, AP@IoU."""

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros.geometry.boxes import pairwise_iou


def match_detections(boxes: ArrayLike, scores: ArrayLike, classes: ArrayLike,
                     gt_boxes: ArrayLike, gt_classes: ArrayLike,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Greedily match detections (best score first) to same-class ground truth of one image.

    boxes (D, 4) xyxy pixels, scores (D,), classes (D,) class indices; gt_boxes (G, 4) xyxy
    pixels, gt_classes (G,).

    Each ground-truth box is matched at most once, by the highest-scoring detection with
    IoU >= iou_threshold among those still free. Returns (matched (D,) bool, iou (D,) float64:
    IoU with the matched box, 0 when unmatched).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    classes, gt_classes = np.asarray(classes).reshape(-1), np.asarray(gt_classes).reshape(-1)
    ious = pairwise_iou(boxes, gt_boxes)
    ious[classes[:, None] != gt_classes[None, :]] = 0.0
    matched, matched_iou = np.zeros(len(boxes), bool), np.zeros(len(boxes))
    free = np.ones(len(gt_boxes), bool)
    for d in np.argsort(-np.asarray(scores, np.float64).reshape(-1), kind='stable'):
        candidates = np.where(free, ious[d], -1.0)
        if len(candidates) and candidates.max() >= iou_threshold:
            g = int(candidates.argmax())
            free[g], matched[d], matched_iou[d] = False, True, candidates[g]
    return matched, matched_iou


class DetectionEvaluator:
    """Accumulates matches over images; summary gives recall, precision, mean IoU and AP@IoU.

    Add every decoded detection (even low scores) so AP sees the whole ranking; recall,
    precision and mean IoU count only detections with score >= the summary's threshold.
    """

    def __init__(self, num_classes: int, iou_threshold: float = 0.5) -> None:
        self.num_classes, self.iou_threshold = num_classes, iou_threshold
        self.scores, self.classes, self.matched, self.ious = [], [], [], []
        self.gt_counts = np.zeros(num_classes, np.int64)

    def add(self, boxes: ArrayLike, scores: ArrayLike, classes: ArrayLike, gt_boxes: ArrayLike,
            gt_classes: ArrayLike) -> None:
        """Add one image's detections (D, 4), (D,), (D,) and ground truth (G, 4), (G,)."""
        matched, ious = match_detections(boxes, scores, classes, gt_boxes, gt_classes,
                                         self.iou_threshold)
        self.scores.append(np.asarray(scores, np.float64).reshape(-1))
        self.classes.append(np.asarray(classes, np.int64).reshape(-1))
        self.matched.append(matched)
        self.ious.append(ious)
        self.gt_counts += np.bincount(np.asarray(gt_classes, np.int64).reshape(-1),
                                      minlength=self.num_classes)

    def state(self) -> dict[str, np.ndarray]:
        """Return the accumulated arrays (for merging evaluators across processes)."""
        return {'scores': _join(self.scores, np.float64),
                'classes': _join(self.classes, np.int64), 'matched': _join(self.matched, bool),
                'ious': _join(self.ious, np.float64), 'gt_counts': self.gt_counts.copy()}

    def merge(self, state: Mapping[str, np.ndarray]) -> None:
        """Add the accumulated arrays of another evaluator (from `state`)."""
        for name in ('scores', 'classes', 'matched', 'ious'):
            getattr(self, name).append(state[name])
        self.gt_counts += state['gt_counts']

    def summary(self, score_threshold: float = 0.3) -> dict[str, float]:
        """Return {'recall', 'precision', 'mean_iou', 'ap50', 'detections', 'objects'}.

        recall = matched / ground truth, precision = matched / detections (score >= threshold;
        1 when there are none), mean_iou over matched detections, ap50 = mean over classes with
        ground truth of the all-point interpolated area under the precision-recall curve.
        """
        state = self.state()
        kept = state['scores'] >= score_threshold
        hits = int(state['matched'][kept].sum())
        objects = int(self.gt_counts.sum())
        precisions = []
        for c in np.flatnonzero(self.gt_counts):
            mine = state['classes'] == c
            order = np.argsort(-state['scores'][mine], kind='stable')
            true_positives = np.cumsum(state['matched'][mine][order])
            recall = np.concatenate([[0.0], true_positives / self.gt_counts[c]])
            precision = np.concatenate([[1.0], true_positives / np.arange(1, len(order) + 1)])
            envelope = np.maximum.accumulate(precision[::-1])[::-1]
            precisions.append(float(np.sum(np.diff(recall) * envelope[1:])))
        return {'recall': hits / objects if objects else 1.0,
                'precision': hits / int(kept.sum()) if kept.any() else 1.0,
                'mean_iou': float(state['ious'][kept & state['matched']].mean()) if hits else 0.0,
                'ap50': float(np.mean(precisions)) if precisions else 0.0,
                'detections': int(kept.sum()), 'objects': objects}


def _join(parts, dtype):
    """Concatenate 1-D arrays (an empty array of dtype when there are none)."""
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
