"""What the pipeline asks for and answers: frames, crop requests, fits and poses per instance."""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from pose_kp_ros.geometry.distortion import has_distortion, undistort_pixels
from pose_kp_ros.geometry.solver import PoseResult, result_row, set_rows


@dataclass
class CropRequest:
    """Where to look for one instance of an object.

    Attributes:
        object_name: which object model.
        box_xyxy: (4,) box in image pixels around the instance.
        init: optional single-problem PoseResult to warm-start the fit from.
        source: 'boxes' (given), 'track' (previous pose) or 'search' (detector).
        score: the box's own score (detector or caller), 1 when unknown.
        track_id: the track asking (source 'track'), else None.
        margin: the box is a pose's projected box grown by this fraction of its size on each
            side (tracks); the refinement pass frames its crop the same way.
    """

    object_name: str
    box_xyxy: np.ndarray
    init: PoseResult = None
    source: str = 'boxes'
    score: float = 1.0
    track_id: int = None
    margin: float = 0.0


def search_requests(detections: list, object_name: str, instances: int, candidates: int,
                    relative_score: float = 0.0) -> list[CropRequest]:
    """Return the CropRequests of one object's detector boxes that the search crops.

    detections: the frame's detections (object_name, box_xyxy, score), best first. The best
    `candidates` x `instances` boxes of the object are kept; beyond the first `instances` of
    them, only those scoring at least `relative_score` x the instances-th best box's score
    (a weak box beside a clearly better one is rarely the object: no crop for it).
    """
    mine = [d for d in detections if d.object_name == object_name][:candidates * instances]
    floor = relative_score * mine[min(instances, len(mine)) - 1].score if mine else 0.0
    return [CropRequest(d.object_name, d.box_xyxy, source='search', score=d.score)
            for rank, d in enumerate(mine) if rank < instances or d.score >= floor]


@dataclass
class ObjectPose:
    """One estimated object instance.

    Attributes:
        object_name: object model name.
        R: (3, 3) object-to-camera rotation.
        t: (3,) object origin in the camera frame, metres.
        score: mean keypoint confidence in [0, 1].
        keypoints: (N, 2) keypoints as found in the image, pixels (distorted, as drawn on it).
        confidences: (N,) keypoint confidences.
        measured: (N, 2) the keypoints undistorted (pinhole pixels of K): what the fits use.
        weights: (N,) the fit's keypoint weights (geometry.solver.fit_weights), 0 where unused.
        box_xyxy: (4,) the crop box the keypoints were found in.
        request: the CropRequest this pose answers.
        result: the solver's single-problem PoseResult (coeffs, rms_px, covariance, ...) at the
            final pose R, t (after the silhouette refinement).
    """

    object_name: str
    R: np.ndarray
    t: np.ndarray
    score: float
    keypoints: np.ndarray
    confidences: np.ndarray
    box_xyxy: np.ndarray
    request: CropRequest
    result: PoseResult
    measured: np.ndarray
    weights: np.ndarray

    @property
    def covariance(self) -> np.ndarray:
        """Return the (6, 6) pose covariance (tx, ty, tz, rx, ry, rz), metres and radians."""
        return self.result.covariance


@dataclass
class CropFits:
    """The keypoints found in B crops of one object and their pose fits (batch first).

    Attributes:
        boxes: (B, 4) crop boxes, image pixels.
        keypoints: (B, N, 2) keypoints as found in the image, pixels (distorted).
        measured: (B, N, 2) the keypoints undistorted (pinhole pixels of K): what the fits use.
        confidences: (B, N) keypoint confidences.
        weights: (B, N) the fit's keypoint weights (geometry.solver.fit_weights).
        results: the fit of each crop, a batched PoseResult.
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    measured: np.ndarray
    confidences: np.ndarray
    weights: np.ndarray
    results: PoseResult

    def set_rows(self, rows: list, other: 'CropFits', other_rows: list) -> None:
        """Replace rows `rows` by rows `other_rows` of `other` (in place)."""
        for name in ('boxes', 'keypoints', 'measured', 'confidences', 'weights'):
            getattr(self, name)[rows] = getattr(other, name)[other_rows]
        set_rows(self.results, rows, other.results, other_rows)

    def pose(self, object_name: str, request: CropRequest, i: int) -> ObjectPose:
        """Return row i as the ObjectPose of `object_name` answering `request` (copies)."""
        result = result_row(self.results, i)
        return ObjectPose(object_name, result.R, result.t, float(pose_scores(self.confidences[i])),
                          self.keypoints[i].copy(), self.confidences[i].copy(),
                          np.asarray(self.boxes[i], dtype=np.float64).copy(), request, result,
                          measured=self.measured[i].copy(), weights=self.weights[i].copy())


def pose_scores(confidences: ArrayLike) -> np.ndarray | float:
    """Return the score (...,) of poses from their keypoint confidences (..., N): the clipped mean.

    A float for one pose's confidences (N,).
    """
    return np.clip(confidences, 0.0, 1.0).mean(-1)


class Frame(NamedTuple):
    """One image and its camera: image (H, W, 3) uint8 RGB, K (3, 3), lens distortion D."""

    image: np.ndarray
    K: np.ndarray
    D: np.ndarray | None
    distortion_model: str

    def undistorted(self, uv: np.ndarray) -> np.ndarray:
        """Return image pixels uv (..., 2) as pinhole pixels of K (uv itself if no distortion)."""
        if self.D is not None and has_distortion(self.D):
            return undistort_pixels(uv, self.K, self.D, self.distortion_model)
        return uv
