"""Layer 3: image + K (+ boxes) -> object poses. The one code path of node, demo and evaluation.

    >>> estimator = KeypointPoseEstimator.from_config('models/driller/pipeline.yaml')
    >>> poses = estimator(image_rgb, K)  # full-image search
    >>> poses = estimator(image_rgb, K, boxes={'driller': [[100, 80, 300, 320]]})
    >>> poses[0].R, poses[0].t, poses[0].score

Per frame (`estimate`, one method per stage):
1. crop requests: given boxes, boxes from previous poses, or the detector's full-image search
   (`search`); invalid boxes are skipped; requests that take time to make (PoseTracker: the
   search) can be made on a worker thread while the others' crops go through the network
   (`estimate`'s `more_requests`);
2. keypoint stage (`_predict`, `_fits`): one batched forward per keypoint network (a network of
   several objects takes all their crops at once) -> keypoints in image pixels, undistorted once
   when the camera has distortion, and their fit weights -> per object one batched
   confidence-weighted pose fit, warm-started where a previous pose is given;
3. second pass (`_second_pass`, `refine_iou_below`): the best crop of each instance re-cropped
   around its fitted pose, through the keypoint stage again (all objects together); the better
   fit is kept;
4. acceptance thresholds (`_accept`), then duplicates removed;
5. silhouette stage (pipeline/silhouette_stage.py): 6-DoF pose refined jointly on the mesh
   silhouette's image edges and the same undistorted keypoints and weights, from several depths
   (`contour_search_px`, `contour_balance`, `contour_depth_starts`) -> rms_px and covariance
   evaluated at the refined pose, the reprojection threshold checked there;
6. symmetric objects: the published one of the equivalent poses (pipeline.symmetric_poses).

Every tunable comes from the PipelineConfig (pipeline/config.py), whose defaults are the only ones.
"""

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
import torch

from pose_kp_ros.geometry.boxes import box_iou, grown_box, projected_box, valid_box
from pose_kp_ros.geometry.instances import distinct_best, suppress_duplicates
from pose_kp_ros.geometry.solver import (
    completed_options,
    fit_weights,
    result_row,
    solve_pose,
    stacked_results,
)
from pose_kp_ros.network.predictor import (
    KeypointPrediction,
    concatenated_predictions,
    predict_crops,
)
from pose_kp_ros.pipeline.config import PipelineConfig, Thresholds, resolve_device
from pose_kp_ros.pipeline.loading import load_detectors, load_object_runtimes
from pose_kp_ros.pipeline.object_pose import (
    CropFits,
    CropRequest,
    Frame,
    ObjectPose,
    pose_scores,
    search_requests,
)
from pose_kp_ros.pipeline.object_runtime import ObjectRuntime
from pose_kp_ros.pipeline.silhouette_stage import refined_on_silhouettes
from pose_kp_ros.pipeline.stage_timer import StageTimer
from pose_kp_ros.pipeline.symmetric_poses import published_pose, warm_start_equivalent

if TYPE_CHECKING:
    from pose_kp_ros.network.detector import ObjectDetector

LOGGER = logging.getLogger(__name__)


class KeypointPoseEstimator:
    """Find objects in an image and fit their 6-DoF poses (see the module docstring)."""

    def __init__(self, config: PipelineConfig, objects: list[ObjectRuntime],
                 detectors: Sequence['ObjectDetector'] = (),
                 device: torch.device | str = 'cpu') -> None:
        """Build from the tunables of `config` and the loaded runtimes.

        config: thresholds, solver options, second pass, search and silhouette settings (its
            object entries and paths are not read: `objects` are the runtimes loaded from them).
        objects: one ObjectRuntime per object; detectors: the full-image ObjectDetectors, each
            reporting the objects in its `object_names` (none: no full-image search);
        device: where the runtimes' networks run (reported, e.g. in /diagnostics).
        """
        self.config = replace(config, thresholds=config.thresholds.validated())
        self.objects = {runtime.name: runtime for runtime in objects}
        self.detectors = list(detectors)
        self.device = device
        self.timer = StageTimer()  # where the last frame's time went (see `__call__`)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix='pose_kp_requests')

    @classmethod
    def from_config(cls, path_or_dict: Path | str | dict,
                    device: str | None = None) -> 'KeypointPoseEstimator':
        """Build from a pipeline YAML (see pose_kp_ros.pipeline.config) or its parsed dict.

        `device` overrides the config's device. Raises PipelineConfigError, ObjectModelError or
        CheckpointError with one-line messages naming the file and field at fault.
        """
        config = PipelineConfig.load(path_or_dict)
        config.check_files()
        torch_device = resolve_device(device or config.device)
        runtimes = load_object_runtimes(config, torch_device)
        detectors = load_detectors(config, [runtime.name for runtime in runtimes], torch_device)
        return cls(config, runtimes, detectors, torch_device)

    @property
    def object_names(self) -> list[str]:
        """Return the names of the objects this estimator looks for."""
        return list(self.objects)

    @property
    def thresholds(self) -> Thresholds:
        """Return the acceptance thresholds in force (`set_thresholds` changes them)."""
        return self.config.thresholds

    def set_thresholds(self, **changes: float) -> None:
        """Replace some thresholds (validated first; the old ones stay on error)."""
        thresholds = replace(self.thresholds, **changes).validated()
        self.config = replace(self.config, thresholds=thresholds)

    def __call__(self, image_rgb: np.ndarray, K: np.ndarray,
                 boxes: ArrayLike | dict[str, ArrayLike] | None = None,
                 D: ArrayLike | None = None,
                 distortion_model: str = 'plumb_bob') -> list[ObjectPose]:
        """Return the ObjectPoses found in one image (highest score first per object).

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            K: (3, 3) camera matrix.
            boxes: None (full-image search with the detector), an (M, 4) array of xyxy boxes
                (single-object pipelines), or {object_name: (M, 4)}.
            D, distortion_model: lens distortion of the image (None or zeros: pinhole).

        `self.timer` then holds the frame's stages (detector, crops, network, solver, second
        pass, silhouette refinement; pose_kp_ros.pipeline.stage_timer). It is reset here and by
        PoseTracker.update; `search` and `estimate` called on their own add to it.
        """
        self.timer.reset()
        if boxes is None:
            requests = self.search(image_rgb)
        else:
            if not isinstance(boxes, dict):
                if len(self.objects) != 1:
                    raise ValueError('boxes must be {object_name: boxes} with several objects')
                boxes = {self.object_names[0]: boxes}
            requests = [CropRequest(name, np.asarray(box, dtype=np.float64))
                        for name, object_boxes in boxes.items()
                        for box in np.asarray(object_boxes, dtype=np.float64).reshape(-1, 4)]
        return self.estimate(image_rgb, K, requests, D, distortion_model)

    def search(self, image_rgb: np.ndarray, object_names: Iterable[str] | None = None,
               timer: StageTimer | None = None) -> list[CropRequest]:
        """Return CropRequests for the objects the detectors find in the whole image.

        Only the detectors of `object_names` (None: all objects) run; `search_requests` keeps
        each object's boxes (their crops compete, the best-scoring pose of an instance wins).
        timer: where the stage 'detector' is timed (None: `self.timer`; another thread must
        pass a timer of its own).
        """
        names = set(object_names or self.object_names)
        timer = self.timer if timer is None else timer
        found = []
        for detector in self.detectors:
            if names.intersection(detector.object_names):
                with timer.stage('detector'):
                    found += detector.detect(image_rgb, self.thresholds.min_detection_score)
        found.sort(key=lambda detection: -detection.score)
        requests = []
        for name in [n for n in self.object_names if n in names]:
            requests += search_requests(found, name, self.objects[name].max_instances,
                                        self.config.search_candidates,
                                        self.config.search_relative_score)
        return requests

    def estimate(self, image_rgb: np.ndarray, K: np.ndarray, requests: list[CropRequest],
                 D: ArrayLike | None = None, distortion_model: str = 'plumb_bob',
                 more_requests: Callable[[StageTimer], list[CropRequest]] | None = None,
                 ) -> list[ObjectPose]:
        """Fit poses for explicit CropRequests; returns the accepted ObjectPoses.

        image_rgb (H, W, 3) uint8, K (3, 3), D and distortion_model as in `__call__`. Requests
        with unknown objects or invalid boxes (NaN, tiny, absurd, outside the image) are skipped
        with a debug log; they never raise.

        more_requests: called on a worker thread, with a StageTimer of its own, while the crops
        of `requests` go through the keypoint network (e.g. the detector's `search`: ONNX
        Runtime and torch release the GIL, so on two cores the two overlap); the crops of the
        requests it returns go through the network next and every crop is fitted in one batch
        per object. Its stages are recorded as '<stage> (concurrent)', outside the frame's sum,
        and the time the frame waited for it as 'waiting for concurrent requests'.
        """
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f'image_rgb: expected (H, W, 3) uint8, got {image_rgb.shape} '
                             f'{image_rgb.dtype}')
        frame = Frame(image_rgb, np.asarray(K, dtype=np.float64), D, distortion_model)
        usable, predictions = self._predictions(frame, requests, more_requests)
        mine = {name: [r for r in usable if r.object_name == name] for name in self.objects}
        mine = {name: chosen for name, chosen in mine.items() if chosen}  # objects asked for
        fits = self._fits(frame, {name: (np.stack([r.box_xyxy for r in chosen]),
                                         [r.init for r in chosen])
                                  for name, chosen in mine.items()}, predictions)
        if self.config.refine_iou_below > 0 and mine:
            with self.timer.stage('second pass'):
                self._second_pass(frame, mine, fits)
        poses = []
        for name, chosen in mine.items():
            runtime = self.objects[name]
            accepted = [self._accept(runtime, request, fits[name], i)
                        for i, request in enumerate(chosen)]
            poses += suppress_duplicates([pose for pose in accepted if pose is not None],
                                         runtime.model.diameter, runtime.max_instances)
        poses = self._silhouette_stage(frame, poses)
        return [published_pose(p, self.objects[p.object_name].symmetry_group) for p in poses]

    def _usable(self, requests: list[CropRequest], frame: Frame) -> list[CropRequest]:
        """Return the requests for known objects with valid boxes (the others: a debug log)."""
        height, width = frame.image.shape[:2]
        usable = []
        for request in requests:
            if request.object_name not in self.objects:
                LOGGER.debug('request for unknown object %r skipped', request.object_name)
            elif not valid_box(request.box_xyxy, width, height):
                LOGGER.debug('invalid box %s skipped', request.box_xyxy)
            else:
                usable.append(request)
                self.timer.tally(f'crops from {request.source}', 1)
        return usable

    def _predictions(self, frame: Frame, requests: list[CropRequest],
                     more_requests: Callable[[StageTimer], list[CropRequest]] | None,
                     ) -> tuple[list[CropRequest], dict[str, KeypointPrediction]]:
        """Return the usable requests and {object: KeypointPrediction of its usable requests}.

        The rows of each object's prediction follow its requests' order in the returned list
        (those of `requests` first, then those of `more_requests`; see `estimate`).
        """
        if more_requests is None:
            usable = self._usable(requests, frame)
            return usable, self._predict(frame, boxes_by_object(usable))
        concurrent = StageTimer()
        pending = self._worker.submit(more_requests, concurrent)
        first = self._usable(requests, frame)
        predictions = self._predict(frame, boxes_by_object(first))
        with self.timer.stage('waiting for concurrent requests'):
            more = pending.result()
        for name, seconds in concurrent.seconds.items():
            self.timer.add(f'{name} (concurrent)', seconds, concurrent.counts[name])
        later = self._usable(more, frame)
        for name, prediction in self._predict(frame, boxes_by_object(later)).items():
            predictions[name] = (concatenated_predictions([predictions[name], prediction])
                                 if name in predictions else prediction)
        return first + later, predictions

    def _predict(self, frame: Frame, boxes: dict[str, np.ndarray],
                 ) -> dict[str, KeypointPrediction]:
        """Return {object: KeypointPrediction of its boxes (B, 4)}: one forward per network."""
        return predict_crops({name: self.objects[name].predictor for name in boxes},
                             frame.image, boxes, self.timer) if boxes else {}

    def _fits(self, frame: Frame, crops: dict[str, tuple[np.ndarray, list]],
              predictions: dict[str, KeypointPrediction]) -> dict[str, CropFits]:
        """Return {object: CropFits} of crops {object: (boxes (B, 4), warm starts)}.

        predictions: {object: KeypointPrediction of those boxes}. Keypoints undistorted and fit
        weights computed once here, for the fit and the silhouette stage; one batched fit per
        object (warm starts of symmetric objects moved by warm_start_equivalent).
        """
        options = self._fit_options()
        fits = {}
        for name, (boxes, inits) in crops.items():
            runtime = self.objects[name]
            keypoints = np.asarray(predictions[name].keypoints, dtype=np.float64)
            confidences = np.asarray(predictions[name].confidence, dtype=np.float64)
            with self.timer.stage('solver'):
                measured = frame.undistorted(keypoints)
                weights = fit_weights(measured, confidences, options['min_confidence'],
                                      options['confidence_power'])
                init = warm_start_equivalent(stacked_results(inits, runtime.model.num_basis),
                                             runtime.symmetry_group)
                results = solve_pose(measured, confidences, frame.K, runtime.model, init=init,
                                     **options)
            fits[name] = CropFits(boxes, keypoints, measured, confidences, weights, results)
        return fits

    def _second_pass(self, frame: Frame, requests: dict[str, list[CropRequest]],
                     fits: dict[str, CropFits]) -> None:
        """Re-crop the best crop of each instance around its fitted pose; keep better fits.

        Only crops whose pose's box overlaps the crop box less than `refine_iou_below` are redone
        (framed like the request), all objects' in one keypoint stage; updates `fits` in place.
        """
        height, width = frame.image.shape[:2]
        redo = {}  # object -> (rows, boxes)
        for name, chosen in requests.items():
            runtime, mine = self.objects[name], fits[name]
            for i in self._best_rows(runtime, chosen, mine):
                box = projected_box(runtime.outline, mine.results.R[i], mine.results.t[i],
                                    frame.K)
                box = None if box is None else grown_box(box, chosen[i].margin)
                if box is not None and valid_box(box, width, height) \
                        and box_iou(box, mine.boxes[i]) < self.config.refine_iou_below:
                    rows, boxes = redo.setdefault(name, ([], []))
                    rows.append(i)
                    boxes.append(box)
        if not redo:
            return
        self.timer.tally('crops of the second pass', sum(len(rows) for rows, _ in redo.values()))
        crops = {name: (np.stack(boxes), [result_row(fits[name].results, i) for i in rows])
                 for name, (rows, boxes) in redo.items()}
        again = self._fits(frame, crops, self._predict(
            frame, {name: boxes for name, (boxes, _) in crops.items()}))
        for name, (rows, _) in redo.items():
            old, new = fits[name].results, again[name].results
            better = [(i, j) for j, i in enumerate(rows) if new.valid[j]
                      and new.rms_px[j] <= max(1.5 * old.rms_px[i], 2.0)]
            if better:
                fits[name].set_rows([i for i, _ in better], again[name], [j for _, j in better])

    @staticmethod
    def _best_rows(runtime: ObjectRuntime, requests: list[CropRequest],
                   fits: CropFits) -> list[int]:
        """Return the rows worth a second pass: the best valid row of each instance."""
        rows = np.flatnonzero(fits.results.valid)
        best = distinct_best(fits.results.t[rows], pose_scores(fits.confidences[rows]),
                             [requests[i].source == 'track' for i in rows],
                             runtime.model.diameter, runtime.max_instances)
        return [int(rows[j]) for j in best]

    def _accept(self, runtime: ObjectRuntime, request: CropRequest, fits: CropFits,
                i: int) -> ObjectPose | None:
        """Return the ObjectPose of row i if it passes the thresholds, else None."""
        limits = self.thresholds
        used = int(np.count_nonzero(fits.confidences[i] > limits.min_keypoint_confidence))
        if not fits.results.valid[i] or used < limits.min_valid_keypoints \
                or fits.results.rms_px[i] > limits.max_reprojection_error_px \
                or pose_scores(fits.confidences[i]) < limits.min_score:
            return None
        return fits.pose(runtime.name, request, i)

    def _silhouette_stage(self, frame: Frame, poses: list[ObjectPose]) -> list[ObjectPose]:
        """Return the poses refined on their silhouettes' image edges (silhouette_stage.py)."""
        if not self.config.contour_search_px or not poses:
            return poses
        return refined_on_silhouettes(frame, poses, self.objects, self.config,
                                      self._fit_options(),
                                      self.thresholds.max_reprojection_error_px, self.timer)

    def _fit_options(self) -> dict:
        """Return every solve_pose option: the config's, min_confidence, defaults for the rest."""
        return completed_options({**self.config.solver,
                                  'min_confidence': self.thresholds.min_keypoint_confidence})


def boxes_by_object(requests: list[CropRequest]) -> dict[str, np.ndarray]:
    """Return {object: (B, 4) boxes of its requests, in their order}."""
    boxes = {}
    for request in requests:
        boxes.setdefault(request.object_name, []).append(request.box_xyxy)
    return {name: np.stack(rows) for name, rows in boxes.items()}
