"""Layer 3: image + K (+ boxes) -> object poses. The one code path of node, demo and evaluation.

    >>> estimator = KeypointPoseEstimator.from_config('models/driller/pipeline.yaml')
    >>> poses = estimator(image_rgb, K)  # full-image search
    >>> poses = estimator(image_rgb, K, boxes={'driller': [[100, 80, 300, 320]]})
    >>> poses[0].R, poses[0].t, poses[0].score

Per frame: crop requests (given boxes, boxes from previous poses, or the detector's full-image
search) -> one batched network forward per object model -> keypoints in image pixels
(undistorted when the camera has distortion) -> one batched confidence-weighted pose fit per
object, warm-started where a previous pose is given -> optional second pass re-cropped around
the fitted pose -> acceptance thresholds -> duplicates removed -> 6-DoF pose refined jointly on
the mesh silhouette's image edges and the keypoints, from several depths (`contour_search_px`,
`contour_balance`, `contour_depth_starts`; pose_kp_ros.geometry.contour_alignment) -> rms_px and
covariance evaluated at the refined pose, the reprojection threshold checked there.
"""

from dataclasses import replace
import logging
import re

import numpy as np
import torch

from pose_kp_ros.geometry.boxes import box_iou, grown_box, projected_box, valid_box
from pose_kp_ros.geometry.contour_alignment import image_gradients, refine_pose
from pose_kp_ros.geometry.distortion import has_distortion, undistort_pixels
from pose_kp_ros.geometry.instances import distinct_best, suppress_duplicates
from pose_kp_ros.geometry.mesh import mesh_outline_points, object_mesh, surface_points
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.solver import PoseResult, evaluate_pose, fit_weights, solve_pose
from pose_kp_ros.geometry.symmetry import symmetry_group
from pose_kp_ros.network.predictor import KeypointPredictor
from pose_kp_ros.pipeline.config import (
    DEVICE_PATTERN,
    PipelineConfig,
    PipelineConfigError,
    Thresholds,
)
from pose_kp_ros.pipeline.object_pose import CropRequest, ObjectPose, pose_scores
from pose_kp_ros.pipeline.stage_timer import StageTimer
from pose_kp_ros.pipeline.symmetric_poses import published_pose

LOGGER = logging.getLogger(__name__)


def resolve_device(name):
    """Return a torch.device for 'auto' | 'cpu' | 'cuda' | 'cuda:N' (warns if CUDA is missing).

    Raises PipelineConfigError for any other name.
    """
    if not isinstance(name, str) or re.fullmatch(DEVICE_PATTERN, name) is None:
        raise PipelineConfigError(f'device: expected auto, cpu, cuda or cuda:N, got {name!r}')
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name.startswith('cuda') and not torch.cuda.is_available():
        LOGGER.warning("device '%s' asked but CUDA is not available: using the CPU", name)
        return torch.device('cpu')
    return torch.device(name)


class ObjectRuntime:
    """An object model with its keypoint network, outline points (crop boxes) and surface points.

    `surface` is (P, 3) metres sampled on the mesh for the silhouette refinement, or None when
    the model has no usable mesh (poses are then not refined).
    """

    def __init__(self, model, predictor, max_instances=1):
        self.model = model
        self.predictor = predictor
        self.max_instances = max_instances
        mesh = object_mesh(model)
        self.outline = mesh_outline_points(model, mesh)
        self.surface = None if mesh is None else surface_points(mesh)
        self.symmetry_group = symmetry_group(model.symmetries) if model.symmetries else None

    @property
    def name(self):
        """Return the object's name."""
        return self.model.name


class KeypointPoseEstimator:
    """Find objects in an image and fit their 6-DoF poses (see the module docstring)."""

    def __init__(self, objects, detector=None, thresholds=None, solver_options=None,
                 refine_iou_below=0.8, device='cpu', search_candidates=3,
                 contour_search_px=PipelineConfig.contour_search_px,
                 contour_balance=PipelineConfig.contour_balance,
                 contour_depth_starts=PipelineConfig.contour_depth_starts):
        self.objects = {runtime.name: runtime for runtime in objects}
        self.detector = detector
        self.thresholds = (thresholds or Thresholds()).validated()
        self.solver_options = dict(solver_options or {})
        self.refine_iou_below = float(refine_iou_below)
        self.search_candidates = int(search_candidates)
        self.contour_search_px = tuple(contour_search_px)
        self.contour_balance = float(contour_balance)
        self.contour_depth_starts = tuple(contour_depth_starts)
        self.device = device
        self.timer = StageTimer()  # where the last frame's time went (see `__call__`)

    @classmethod
    def from_config(cls, path_or_dict, device=None):
        """Build from a pipeline YAML (see pose_kp_ros.pipeline.config) or its parsed dict.

        `device` overrides the config's device. Raises PipelineConfigError, ObjectModelError or
        CheckpointError with one-line messages naming the file and field at fault.
        """
        config = PipelineConfig.load(path_or_dict)
        config.check_files()
        torch_device = resolve_device(device or config.device)
        models = [ObjectModel.from_yaml(entry.object_path) for entry in config.objects]
        names = [model.name for model in models]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise PipelineConfigError(
                    f'{config.source or "<config>"}: objects[{index}].object: object '
                    f'{name!r} is already objects[{names.index(name)}] (list each object once; '
                    'max_instances sets how many instances are kept)')
        runtimes = []
        for entry, model in zip(config.objects, models):
            predictor = KeypointPredictor.from_file(
                entry.keypoint_model_path, expected_keypoint_names=model.keypoint_names,
                object_name=model.name, device=torch_device)
            runtimes.append(ObjectRuntime(model, predictor, entry.max_instances))
        detector = None
        if config.detector_path is not None:
            from pose_kp_ros.network.detector import ObjectDetector
            detector = ObjectDetector.from_file(config.detector_path,
                                                object_names=[r.name for r in runtimes],
                                                device=torch_device)
        return cls(runtimes, detector, config.thresholds, config.solver,
                   config.refine_iou_below, torch_device, config.search_candidates,
                   config.contour_search_px, config.contour_balance,
                   config.contour_depth_starts)

    @property
    def object_names(self):
        """Return the names of the objects this estimator looks for."""
        return list(self.objects)

    def __call__(self, image_rgb, K, boxes=None, D=None, distortion_model='plumb_bob'):
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

    def search(self, image_rgb, object_names=None):
        """Return CropRequests for the objects the detector finds in the whole image.

        Per object, the best `search_candidates` x max_instances boxes are kept (the crops
        compete; the best-scoring pose of an instance wins).
        """
        if self.detector is None:
            return []
        names = set(object_names or self.object_names)
        with self.timer.stage('detector'):
            found = self.detector.detect(image_rgb, self.thresholds.min_detection_score)
        requests = []
        for name in [n for n in self.object_names if n in names]:
            limit = self.search_candidates * self.objects[name].max_instances
            requests += [CropRequest(d.object_name, d.box_xyxy, source='search', score=d.score)
                         for d in found if d.object_name == name][:limit]
        return requests

    def estimate(self, image_rgb, K, requests, D=None, distortion_model='plumb_bob'):
        """Fit poses for explicit CropRequests; returns the accepted ObjectPoses.

        Requests with unknown objects or invalid boxes (NaN, tiny, absurd, outside the image)
        are skipped with a debug log; they never raise.
        """
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f'image_rgb: expected (H, W, 3) uint8, got {image_rgb.shape} '
                             f'{image_rgb.dtype}')
        K = np.asarray(K, dtype=np.float64)
        height, width = image_rgb.shape[:2]
        usable = []
        for request in requests:
            if request.object_name not in self.objects:
                LOGGER.debug('request for unknown object %r skipped', request.object_name)
            elif not valid_box(request.box_xyxy, width, height):
                LOGGER.debug('invalid box %s skipped', request.box_xyxy)
            else:
                usable.append(request)
                self.timer.tally(f'crops from {request.source}', 1)
        poses = []
        for name, runtime in self.objects.items():
            mine = [r for r in usable if r.object_name == name]
            if mine:
                found = self._estimate_object(runtime, image_rgb, K, mine, D, distortion_model)
                poses.extend(suppress_duplicates(found, runtime.model.diameter,
                                                  runtime.max_instances))
        refined = self._refine_on_silhouettes(image_rgb, K, poses, D, distortion_model)
        return [published_pose(p, self.objects[p.object_name].symmetry_group) for p in refined]

    def _refine_on_silhouettes(self, image_rgb, K, poses, D, distortion_model):
        """Return the poses refined on the image edges of their silhouettes (where possible).

        A refined pose gets the keypoint fit's rms_px and covariance evaluated where it now is,
        and is dropped if that breaks max_reprojection_error_px (or leaves it unusable).
        """
        if self.contour_search_px and poses:
            with self.timer.stage('silhouette refinement'):
                return self._refine_poses_on_silhouettes(image_rgb, K, poses, D,
                                                         distortion_model)
        return poses

    def _refine_poses_on_silhouettes(self, image_rgb, K, poses, D, distortion_model):
        """Return the poses refined on their silhouettes (see _refine_on_silhouettes)."""
        gradients, aligned = None, []
        for pose in poses:
            surface = self.objects[pose.object_name].surface
            if not self.contour_search_px or surface is None:
                aligned.append(pose)
                continue
            if gradients is None:
                with self.timer.stage('image gradients'):
                    gradients = image_gradients(image_rgb)
            measured = pose.keypoints
            if D is not None and has_distortion(D):
                measured = undistort_pixels(measured, K, D, distortion_model)
            weights = fit_weights(measured, pose.confidences,
                                  self.thresholds.min_keypoint_confidence,
                                  self.solver_options.get('confidence_power', 1.0))
            model = self.objects[pose.object_name].model
            R, t = refine_pose(gradients, surface, pose.R, pose.t, K, self.contour_search_px,
                               measured, model.shape(pose.result.coeffs), weights,
                               self.contour_balance,
                               self.solver_options.get('robust_scale_px', 4.0), D,
                               distortion_model, depth_starts=self.contour_depth_starts,
                               timer=self.timer)
            with self.timer.stage('evaluation'):
                result = evaluate_pose(measured, pose.confidences, K, model,
                                       replace(pose.result, R=R, t=t), **self._solver_options())
            if result.valid and result.rms_px <= self.thresholds.max_reprojection_error_px:
                aligned.append(replace(pose, R=result.R, t=result.t, result=result))
        return aligned

    def _solver_options(self):
        """Return the solve_pose options: the config's and the keypoint confidence threshold."""
        return {**self.solver_options,
                'min_confidence': self.thresholds.min_keypoint_confidence}

    def _estimate_object(self, runtime, image_rgb, K, requests, D, distortion_model):
        """Run network + solver for one object's requests (one batch each), with refinement."""
        boxes = np.stack([r.box_xyxy for r in requests])
        inits = [r.init for r in requests]
        keypoints, confidences, results = self._keypoints_and_fit(
            runtime, image_rgb, K, boxes, inits, D, distortion_model)
        if self.refine_iou_below > 0:
            with self.timer.stage('second pass'):
                self._second_pass(runtime, image_rgb, K, requests, boxes, keypoints,
                                  confidences, results, D, distortion_model)
        return [pose for pose in (self._accept(runtime, requests[i], keypoints[i],
                                               confidences[i], boxes[i], results, i)
                                  for i in range(len(requests))) if pose is not None]

    def _second_pass(self, runtime, image_rgb, K, requests, boxes, keypoints, confidences,
                     results, D, distortion_model):
        """Re-crop around the fitted poses and keep the better fits (arrays updated in place)."""
        height, width = image_rgb.shape[:2]
        redo = []
        for i in self._refine_candidates(runtime, requests, confidences, results):
            box = projected_box(runtime.outline, results.R[i], results.t[i], K)
            box = None if box is None else grown_box(box, requests[i].margin)
            if box is not None and valid_box(box, width, height) \
                    and box_iou(box, boxes[i]) < self.refine_iou_below:
                redo.append((i, box))
        if redo:
            self.timer.tally('crops of the second pass', len(redo))
            index = [i for i, _ in redo]
            new_boxes = np.stack([box for _, box in redo])
            kp2, conf2, res2 = self._keypoints_and_fit(
                runtime, image_rgb, K, new_boxes, [_row(results, i) for i in index], D,
                distortion_model)
            for j, i in enumerate(index):
                if res2.valid[j] and res2.rms_px[j] <= max(1.5 * results.rms_px[i], 2.0):
                    keypoints[i], confidences[i], boxes[i] = kp2[j], conf2[j], new_boxes[j]
                    for f in PoseResult.__dataclass_fields__:
                        getattr(results, f)[i] = getattr(res2, f)[j]

    @staticmethod
    def _refine_candidates(runtime, requests, confidences, results):
        """Return the rows worth a second pass: the best valid row of each instance."""
        rows = np.flatnonzero(results.valid)
        scores = pose_scores(confidences[rows])
        best = distinct_best(results.t[rows], scores,
                              [requests[i].source == 'track' for i in rows],
                              runtime.model.diameter, runtime.max_instances)
        return [int(rows[j]) for j in best]

    def _keypoints_and_fit(self, runtime, image_rgb, K, boxes, inits, D, distortion_model):
        """Return keypoints (B, N, 2), confidences (B, N) and the fit (a batched PoseResult)."""
        prediction = runtime.predictor.predict(image_rgb, boxes, timer=self.timer)
        keypoints = np.asarray(prediction.keypoints, dtype=np.float64)
        confidences = np.asarray(prediction.confidence, dtype=np.float64)
        with self.timer.stage('solver'):
            measured = keypoints
            if D is not None and has_distortion(D):
                measured = undistort_pixels(keypoints, K, D, distortion_model)
            init = _batched_init(inits, len(boxes), runtime.model.num_basis)
            results = solve_pose(measured, confidences, K, runtime.model, init=init,
                                 **self._solver_options())
        return keypoints, confidences, results

    def _accept(self, runtime, request, keypoints, confidences, box, results, i):
        """Return an ObjectPose for batch row i if it passes the thresholds, else None."""
        limits = self.thresholds
        used = int(np.count_nonzero(confidences > limits.min_keypoint_confidence))
        score = float(pose_scores(confidences))
        if not results.valid[i] or used < limits.min_valid_keypoints \
                or results.rms_px[i] > limits.max_reprojection_error_px \
                or score < limits.min_score:
            return None
        single = _row(results, i)
        return ObjectPose(runtime.name, single.R, single.t, score, keypoints.copy(),
                          confidences.copy(), np.asarray(box, dtype=np.float64).copy(),
                          request, single)

    def set_thresholds(self, **changes):
        """Replace some thresholds (validated first; the old ones stay on error)."""
        self.thresholds = replace(self.thresholds, **changes).validated()


def _batched_init(inits, batch, num_basis):
    """Stack per-request warm starts into one batched PoseResult (None when there are none).

    `inits` is a list of single-problem PoseResults or None. Rows without a warm start are
    marked invalid, which the solver treats as 'solve from the closed form'.
    """
    if all(init is None for init in inits):
        return None
    nan = {'R': np.full((3, 3), np.nan), 't': np.full(3, np.nan),
           'coeffs': np.full(num_basis, np.nan), 'cost': np.nan, 'rms_px': np.nan,
           'iterations': 0, 'valid': False, 'covariance': np.full((6, 6), np.nan)}
    rows = []
    for init in inits:
        rows.append(nan if init is None else {f: getattr(init, f) for f in nan})
    return PoseResult(**{f: np.stack([np.asarray(row[f]) for row in rows]) for f in nan})


def _row(results, i):
    """Return batch row i of a batched numpy PoseResult as a single-problem PoseResult (a copy)."""
    return PoseResult(*(np.array(getattr(results, f)[i]) for f in PoseResult.__dataclass_fields__))
