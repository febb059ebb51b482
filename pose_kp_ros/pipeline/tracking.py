"""Per-object tracks over a video: crop boxes and warm starts from the previous frame's poses.

Rules (all parameters of `TrackingConfig`):
- every live track asks for a crop around its last pose's projection, warm-started from that pose;
- given boxes (e.g. a detection topic) that overlap no track's box (IoU < `match_iou`) start
  new requests;
- the detector's full-image search runs for an object when it has fewer live tracks (tracks
  whose last frame gave a pose) than its `max_instances` and no given boxes, at most every
  `search_interval` frames, and always on the frame after a track missed (unless a new track
  took its place);
- while every track is live the search still runs every `verify_interval` frames (0: never),
  and on every frame after a track's pose scored below `verify_below_score` (0: never): its
  crops compete with the tracks' crops and the estimator keeps the better-scoring of two poses
  of one instance, so a track that drifted onto a wrong pose is replaced by a fresh one;
- a search box that overlaps the crop box of a track of its object by `search_overlap_iou` or
  more is not cropped: the track's warm-started crop stands for it (one crop per instance, not
  two), unless the track's pose scored below `verify_below_score` (then both compete);
- a track that yields no accepted pose for more than `max_misses` consecutive frames is dropped;
- an object keeps at most `max_instances` tracks (live ones first, then the longest-lived): a
  new track replaces one that lost its instance, and no stale track keeps asking for crops;
- a pose within 0.3 diameter of a track's pose continues that track (same id), others start new
  tracks; track ids grow per object and are never reused.
"""

from dataclasses import dataclass, replace
import itertools
import threading
from typing import TYPE_CHECKING

import numpy as np

from pose_kp_ros.geometry.boxes import box_iou, grown_box, projected_box, valid_box
from pose_kp_ros.pipeline.object_pose import CropRequest
from pose_kp_ros.pipeline.symmetric_poses import published_pose

if TYPE_CHECKING:
    from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator


@dataclass(frozen=True)
class TrackingConfig:
    """Track rules (see the module docstring).

    The verification defaults are the most accurate setting on held-out rendered videos
    (benchmarks/tracking_settings.py, docs/performance.md); cheaper ones are measured there.
    """

    max_misses: int = 5
    search_interval: int = 1
    verify_interval: int = 1
    verify_below_score: float = 0.0
    box_margin: float = 0.1
    match_iou: float = 0.3
    search_overlap_iou: float = 0.5

    def validated(self) -> 'TrackingConfig':
        """Return self after range checks; raise ValueError naming the field."""
        if not isinstance(self.max_misses, int) or self.max_misses < 0:
            raise ValueError(f'max_misses: expected an integer >= 0, got {self.max_misses!r}')
        if not isinstance(self.search_interval, int) or self.search_interval < 1:
            raise ValueError(f'search_interval: expected an integer >= 1, '
                             f'got {self.search_interval!r}')
        if not isinstance(self.verify_interval, int) or self.verify_interval < 0:
            raise ValueError(f'verify_interval: expected an integer >= 0, '
                             f'got {self.verify_interval!r}')
        if not 0.0 <= self.verify_below_score <= 1.0:
            raise ValueError(f'verify_below_score: expected [0, 1], '
                             f'got {self.verify_below_score!r}')
        if not 0.0 <= self.box_margin <= 1.0:
            raise ValueError(f'box_margin: expected [0, 1], got {self.box_margin!r}')
        for name in ('match_iou', 'search_overlap_iou'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f'{name}: expected (0, 1], got {getattr(self, name)!r}')
        return self


@dataclass
class Track:
    """One tracked instance: its id, last accepted pose and how many frames it has missed."""

    object_name: str
    track_id: int
    pose: object
    misses: int = 0
    hits: int = 1


@dataclass
class TrackedPose:
    """An accepted pose with the id of the track it belongs to."""

    track_id: int
    pose: object


class PoseTracker:
    """Runs a KeypointPoseEstimator frame after frame, keeping tracks (see the module rules).

    `reset` may be called from another thread while `update` runs (e.g. a camera_info callback):
    an update reads the track state at its start and stores its outcome only if no reset came
    in between, so a reset is never undone by the frame that was in flight.
    """

    def __init__(self, estimator: 'KeypointPoseEstimator',
                 config: TrackingConfig | None = None) -> None:
        self.estimator = estimator
        self.config = (config or TrackingConfig()).validated()
        self.tracks = []
        self.frame_index = 0
        self._last_search = {}
        self._lost = set()
        self._ids = {name: itertools.count() for name in estimator.object_names}
        self._state_lock = threading.Lock()
        self._generation = 0  # counts resets

    def reset(self) -> None:
        """Forget every track (e.g. when the camera or its intrinsics change); thread-safe."""
        with self._state_lock:
            self._generation += 1
            self.tracks = []
            self._lost = set()
            self._last_search = {}

    def update(self, image_rgb: np.ndarray, K: np.ndarray, boxes: dict | None = None,
               D: np.ndarray | None = None,
               distortion_model: str = 'plumb_bob') -> list[TrackedPose]:
        """Process one frame and return its TrackedPoses (the estimator's acceptance rules).

        `boxes` is None or {object_name: (M, 4) xyxy}, e.g. from a detection topic. A reset
        during the call keeps this frame's poses out of the tracks (they belong to the old camera).
        The detector's search runs on the estimator's worker thread while the tracks' crops go
        through the keypoint network (KeypointPoseEstimator.estimate, `more_requests`). The
        estimator's timer then holds the frame's stages, 'tracking' (the tracks' own
        book-keeping) among them.
        """
        timer = self.estimator.timer
        timer.reset()
        with self._state_lock:
            generation, frame_index = self._generation, self.frame_index
            tracks = [replace(track) for track in self.tracks]
            lost, last_search = set(self._lost), dict(self._last_search)
        with timer.stage('tracking'):
            height, width = np.asarray(image_rgb).shape[:2]
            requests = self._track_requests(tracks, K, width, height)
            given = self._untracked([CropRequest(name, box, source='boxes')
                                     for name, object_boxes in (boxes or {}).items()
                                     for box in np.asarray(object_boxes, dtype=np.float64)
                                     .reshape(-1, 4)], requests, self.config.match_iou)
            wanted = self._search_wanted(tracks, given, lost, last_search, frame_index)
            doubtful = {(t.object_name, t.track_id) for t in tracks
                        if t.pose.score < self.config.verify_below_score}
            trusted = [r for r in requests if (r.object_name, r.track_id) not in doubtful]

        def searched(search_timer):  # on the estimator's worker, beside the tracks' crops
            return self._untracked(self.estimator.search(image_rgb, wanted, search_timer),
                                   trusted, self.config.search_overlap_iou)

        poses = self.estimator.estimate(image_rgb, K, requests + given, D, distortion_model,
                                        more_requests=searched if wanted else None)
        with timer.stage('tracking'):
            tracked, kept, lost = self._assign(tracks, poses)
        with self._state_lock:
            if self._generation == generation:
                self.tracks, self._lost = kept, lost
                self._last_search.update(dict.fromkeys(wanted, frame_index))
            self.frame_index += 1
        return tracked

    def _track_requests(self, tracks, K, width, height):
        requests = []
        for track in tracks:
            runtime = self.estimator.objects[track.object_name]
            box = projected_box(runtime.outline, track.pose.R, track.pose.t, K)
            if box is None or not valid_box(box, width, height):
                continue
            requests.append(CropRequest(track.object_name, grown_box(box, self.config.box_margin),
                                        init=track.pose.result, source='track',
                                        track_id=track.track_id, margin=self.config.box_margin))
        return requests

    @staticmethod
    def _untracked(candidates, track_requests, min_iou):
        """Return the candidates overlapping no track's crop box of their object by min_iou."""
        return [candidate for candidate in candidates
                if not any(r.object_name == candidate.object_name
                           and box_iou(r.box_xyxy, candidate.box_xyxy) >= min_iou
                           for r in track_requests)]

    def _search_wanted(self, tracks, given, lost, last_search, frame_index):
        """Return the objects the detector's full-image search runs for this frame."""
        wanted = []
        for name, runtime in self.estimator.objects.items():
            if any(r.object_name == name for r in given):
                continue
            live = [t for t in tracks if t.object_name == name and t.misses == 0]
            interval = (self.config.search_interval if len(live) < runtime.max_instances
                        else self.config.verify_interval)  # 0: never
            since = frame_index - last_search.get(name, -10**9)
            doubtful = any(t.pose.score < self.config.verify_below_score for t in live)
            if (interval and since >= interval) or name in lost or doubtful:
                wanted.append(name)
        return wanted

    def _assign(self, tracks, poses):
        """Match poses to `tracks` (copies, updated in place); return (tracked, kept, lost).

        kept: the tracks after this frame (misses counted, new ones added, old ones dropped);
        lost: the objects to search for next frame.
        """
        tracked, continued, lost = [], set(), set()
        for pose in poses:
            diameter = self.estimator.objects[pose.object_name].model.diameter
            track = pose.request.track_id
            match = next((t for t in tracks if t.object_name == pose.object_name
                          and (t.object_name, t.track_id) not in continued
                          and (t.track_id == track
                               or np.linalg.norm(t.pose.t - pose.t) < 0.3 * diameter)), None)
            if match is None:
                match = Track(pose.object_name, next(self._ids[pose.object_name]), pose, hits=0)
                tracks.append(match)
            pose = published_pose(pose, self.estimator.objects[pose.object_name].symmetry_group,
                                  match.pose.R)  # stay with the track's equivalent
            match.pose, match.misses, match.hits = pose, 0, match.hits + 1
            continued.add((match.object_name, match.track_id))
            tracked.append(TrackedPose(match.track_id, pose))
        missed = set()
        for track in tracks:
            if (track.object_name, track.track_id) not in continued:
                track.misses += 1
                missed.add(track.object_name)
        kept = []
        for name, runtime in self.estimator.objects.items():
            mine = [t for t in tracks if t.object_name == name
                    and t.misses <= self.config.max_misses]
            mine.sort(key=lambda t: (t.misses, -t.hits))  # live first, then the longest-lived
            kept += mine[:runtime.max_instances]
            live = sum(1 for t in mine if t.misses == 0)
            if name in missed and live < runtime.max_instances:
                lost.add(name)  # search next frame (a track replaced by a new one: no)
        return tracked, kept, lost
