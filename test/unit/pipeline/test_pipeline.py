"""Layer-3 pipeline logic: requests, undistortion, warm start, thresholds, duplicates, tracks.

The keypoint network is replaced by a geometric oracle that projects the true keypoints (what a
perfect network would output), so these tests check the pipeline around the network, not the
network itself (its tests are in test/unit/network, the end-to-end accuracy in the LM-O tests).
"""

import threading
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import trimesh

from pose_kp_ros.geometry.boxes import box_iou, projected_box, valid_box
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import so3_exp
from pose_kp_ros.network.predictor import KeypointPrediction
from pose_kp_ros.pipeline.config import PipelineConfig, PipelineConfigError, Thresholds
from pose_kp_ros.pipeline.estimator import KeypointPoseEstimator, ObjectRuntime
from pose_kp_ros.pipeline.object_pose import CropRequest
from pose_kp_ros.pipeline.tracking import PoseTracker, TrackingConfig

K = np.array([[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]])
D = np.array([0.12, -0.25, 0.001, -0.002, 0.08])


def make_model():
    rng = np.random.default_rng(3)
    return ObjectModel(name='widget', keypoint_names=[f'k{i}' for i in range(8)],
                       keypoints=rng.uniform(-0.1, 0.1, (8, 3)), diameter=0.3)


class OraclePredictor:
    """Projects the true keypoints of `pose` (with optional lens distortion) for every box."""

    def __init__(self, model, R, t, distortion=None, confidence=0.9):
        self.model, self.R, self.t = model, R, t
        self.distortion = distortion
        self.confidence = confidence
        self.calls = 0

    def predict(self, image_rgb, boxes_xyxy, timer=None):
        self.calls += 1
        self.boxes = np.array(boxes_xyxy)
        points = self.model.keypoints @ self.R.T + self.t
        if self.distortion is None:
            uv = points[:, :2] / points[:, 2:] @ K[:2, :2].T + K[:2, 2]
        else:
            uv = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, self.distortion)[0][:, 0]
        count = len(boxes_xyxy)
        confidence = np.full((count, len(uv)), self.confidence, np.float32)
        return KeypointPrediction(keypoints=np.repeat(uv[None], count, 0), confidence=confidence,
                                  heatmaps=None, crop_affines=None)

    def predict_objects(self, image_rgb, boxes_xyxy, timer=None):
        """Answer the pipeline's call: {object name: boxes} -> {object name: prediction}."""
        return {name: self.predict(image_rgb, boxes, timer) for name, boxes in boxes_xyxy.items()}


def ground_truth():
    return so3_exp([0.4, -0.3, 0.2]), np.array([0.05, -0.02, 0.9])


def estimator_with(predictor, model, detector=None, max_instances=1, **settings):
    """Return an estimator of `model` with `predictor`; `settings`: PipelineConfig fields."""
    runtime = ObjectRuntime(model, predictor, max_instances=max_instances)
    return KeypointPoseEstimator(PipelineConfig(objects=(), **settings), [runtime],
                                 [detector] if detector is not None else [])


IMAGE = np.zeros((480, 640, 3), np.uint8)


def true_box(model, R, t):
    return projected_box(model.keypoints, R, t, K) + np.array([-20, -20, 20, 20])


def test_boxes_give_the_true_pose():
    model = make_model()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t), model)
    poses = estimator(IMAGE, K, boxes=[true_box(model, R, t)])
    assert len(poses) == 1
    pose = poses[0]
    assert pose.object_name == 'widget' and pose.request.source == 'boxes'
    assert np.allclose(pose.R, R, atol=1e-6) and np.allclose(pose.t, t, atol=1e-6)
    assert pose.score == pytest.approx(0.9) and pose.covariance.shape == (6, 6)


def test_distorted_keypoints_are_undistorted_before_the_fit():
    model = make_model()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t, distortion=D), model)
    box = [true_box(model, R, t)]
    ignored = estimator(IMAGE, K, boxes=box)
    used = estimator(IMAGE, K, boxes=box, D=D, distortion_model='plumb_bob')
    assert np.linalg.norm(used[0].t - t) < 1e-5
    assert np.linalg.norm(ignored[0].t - t) > 100 * np.linalg.norm(used[0].t - t)


@pytest.mark.parametrize('box', [
    [np.nan, 0, 100, 100], [10, 10, 12, 12], [700, 500, 900, 700], [0, 0, 1e6, 1e6],
    [100, 100, 50, 50],
])
def test_bad_boxes_are_skipped_not_raised(box):
    model = make_model()
    R, t = ground_truth()
    predictor = OraclePredictor(model, R, t)
    assert estimator_with(predictor, model)(IMAGE, K, boxes=[box]) == []
    assert predictor.calls == 0


def test_low_confidence_is_rejected_and_thresholds_change_at_run_time():
    model = make_model()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t, confidence=0.15), model)
    box = [true_box(model, R, t)]
    assert estimator(IMAGE, K, boxes=box) == []  # below min_score 0.2
    estimator.set_thresholds(min_score=0.1)
    assert len(estimator(IMAGE, K, boxes=box)) == 1
    with pytest.raises(PipelineConfigError, match='min_valid_keypoints'):
        estimator.set_thresholds(min_valid_keypoints=2)
    assert estimator.thresholds.min_valid_keypoints == 5  # unchanged after the error


def test_duplicate_boxes_give_one_pose_per_instance():
    model = make_model()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t), model, max_instances=3)
    box = true_box(model, R, t)
    poses = estimator(IMAGE, K, boxes=[box, box + 5, box - 3])
    assert len(poses) == 1


def test_warm_start_from_a_nearby_pose_and_mixed_batches():
    model = make_model()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t), model, refine_iou_below=0.0,
                               max_instances=2)
    box = true_box(model, R, t)
    previous = estimator(IMAGE, K, boxes=[box])[0].result
    nudge = so3_exp([0.05, -0.04, 0.03])
    previous.R, previous.t = nudge @ previous.R, previous.t + np.array([0.02, -0.01, 0.03])
    far_box = box + np.array([300, 0, 300, 0])  # a second request, without warm start
    poses = estimator.estimate(IMAGE, K, [CropRequest('widget', box, init=previous,
                                                      source='track'),
                                          CropRequest('widget', far_box)])
    assert len(poses) == 1  # both requests see the same instance: duplicates merge
    assert poses[0].request.source == 'track'
    assert np.allclose(poses[0].t, t, atol=1e-6) and 1 <= poses[0].result.iterations <= 6


def test_refine_pass_recrops_around_the_fitted_pose():
    model = make_model()
    R, t = ground_truth()
    predictor = OraclePredictor(model, R, t)
    estimator = estimator_with(predictor, model, refine_iou_below=0.8)
    loose = true_box(model, R, t) + np.array([-80, -60, 90, 70])
    pose = estimator(IMAGE, K, boxes=[loose])[0]
    assert predictor.calls == 2
    assert box_iou(pose.box_xyxy, projected_box(model.keypoints, R, t, K)) > 0.8


def test_refine_pass_only_for_the_best_pose_of_each_instance():
    model = make_model()
    R, t = ground_truth()
    predictor = OraclePredictor(model, R, t)
    estimator = estimator_with(predictor, model, refine_iou_below=0.8)
    loose = true_box(model, R, t) + np.array([-80, -60, 90, 70])
    poses = estimator(IMAGE, K, boxes=[loose, loose + 5, loose - 5])
    assert len(poses) == 1 and predictor.calls == 2
    assert len(predictor.boxes) == 1  # three crops of one instance, one second pass


def test_no_boxes_and_no_detector_finds_nothing():
    model = make_model()
    R, t = ground_truth()
    assert estimator_with(OraclePredictor(model, R, t), model)(IMAGE, K) == []


def test_box_helpers():
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    assert valid_box([10, 10, 100, 100], 640, 480)
    assert not valid_box([10, 10, 100], 640, 480)
    assert projected_box(np.array([[0.0, 0.0, -1.0]]), np.eye(3), np.zeros(3), K) is None


@pytest.mark.parametrize('data, message', [
    ({}, 'objects: expected a non-empty list'),
    ({'objects': [{'object': 'a.yaml'}]}, r'objects\[0\].keypoint_model: expected a file path'),
    ({'objects': [{'object': 'a', 'keypoint_model': 'b', 'max_instances': 0}]},
     'max_instances: expected an integer >= 1'),
    ({'objects': [{'object': 'a', 'keypoint_model': 'b'}], 'device': 'tpu'}, 'device'),
    ({'objects': [{'object': 'a', 'keypoint_model': 'b'}], 'thresholds': {'min_score': 2}},
     r'thresholds.min_score: expected \[0, 1\]'),
    ({'objects': [{'object': 'a', 'keypoint_model': 'b'}], 'thresholds': {'nope': 1}},
     'thresholds.nope: unknown field'),
    ({'objects': [{'object': 'a', 'keypoint_model': 'b'}], 'colour': 'red'},
     'colour: unknown field'),
])
def test_config_errors_name_the_field(data, message):
    with pytest.raises(PipelineConfigError, match=message):
        PipelineConfig.load(data)


def test_config_paths_are_relative_to_the_file(tmp_path):
    path = tmp_path / 'sub' / 'pipeline.yaml'
    path.parent.mkdir()
    path.write_text('objects:\n  - {object: ../o.yaml, keypoint_model: m.pt}\n')
    config = PipelineConfig.load(path)
    assert config.objects[0].object_path == (tmp_path / 'o.yaml').resolve()
    assert config.objects[0].keypoint_model_path == (tmp_path / 'sub' / 'm.pt').resolve()
    assert config.thresholds == Thresholds()


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(PipelineConfigError, match='pipeline config not found'):
        PipelineConfig.load(tmp_path / 'nope.yaml')


class OracleDetector:
    """Returns the true box of the predictor's current pose (or nothing when `visible` is off)."""

    object_names = ('widget',)

    def __init__(self, predictor):
        self.predictor = predictor
        self.visible = True
        self.calls = 0

    def detect(self, image_rgb, score_threshold=None):
        self.calls += 1
        if not self.visible or (score_threshold or 0.0) > 0.9:
            return []
        box = true_box(self.predictor.model, self.predictor.R, self.predictor.t)
        return [SimpleNamespace(object_name='widget', box_xyxy=box, score=0.9)]


class ManyBoxDetector(OracleDetector):
    """Returns `count` boxes, best first: the true one, then shifted ones scoring lower."""

    def __init__(self, predictor, count):
        super().__init__(predictor)
        self.count = count

    def detect(self, image_rgb, score_threshold=None):
        true = super().detect(image_rgb, score_threshold)[0]
        return [SimpleNamespace(object_name='widget', box_xyxy=true.box_xyxy + 3 * i,
                                score=0.9 - 0.1 * i) for i in range(self.count)]


def test_each_object_is_searched_by_its_own_detector_and_only_when_asked():
    model = make_model()
    R, t = ground_truth()
    widget_predictor = OraclePredictor(model, R, t)
    gadget_model = ObjectModel('gadget', model.keypoint_names, model.keypoints[::-1].copy(),
                               diameter=model.diameter)
    gadget_predictor = OraclePredictor(gadget_model, R, t)
    widget_detector, gadget_detector = OracleDetector(widget_predictor), \
        OracleDetector(gadget_predictor)
    gadget_detector.object_names = ('gadget',)
    gadget_detector.detect = lambda image, score_threshold=None: [SimpleNamespace(
        object_name='gadget', box_xyxy=true_box(gadget_model, R, t), score=0.95)]
    estimator = KeypointPoseEstimator(
        PipelineConfig(objects=()), [ObjectRuntime(model, widget_predictor),
                                     ObjectRuntime(gadget_model, gadget_predictor)],
        [widget_detector, gadget_detector])
    requests = estimator.search(IMAGE)
    assert [r.object_name for r in requests] == ['widget', 'gadget']
    assert widget_detector.calls == 1
    assert [r.object_name for r in estimator.search(IMAGE, ['gadget'])] == ['gadget']
    assert widget_detector.calls == 1  # not run: no object of it was asked for
    assert {p.object_name for p in estimator(IMAGE, K)} == {'widget', 'gadget'}


@pytest.mark.parametrize('max_instances', [1, 2])
def test_search_crops_the_best_search_candidates_per_instance(max_instances):
    model = make_model()
    R, t = ground_truth()
    predictor = OraclePredictor(model, R, t)
    detector = ManyBoxDetector(predictor, count=7)
    estimator = estimator_with(predictor, model, detector=detector, refine_iou_below=0.0,
                               search_candidates=2, max_instances=max_instances)
    requests = estimator.search(IMAGE)
    assert [r.score for r in requests] == pytest.approx([0.9, 0.8, 0.7, 0.6][:2 * max_instances])
    assert len(estimator(IMAGE, K)) == 1 and len(predictor.boxes) == 2 * max_instances


def test_weak_boxes_beside_a_clearly_better_one_are_not_cropped():
    from pose_kp_ros.network.detector import Detection
    from pose_kp_ros.pipeline.object_pose import search_requests

    box = np.array([10.0, 10.0, 50.0, 50.0])
    found = [Detection(name, box, score) for name, score in
             (('a', 0.9), ('b', 0.85), ('a', 0.5), ('a', 0.4), ('a', 0.3), ('a', 0.2))]
    def scores(*args):
        return [r.score for r in search_requests(found, 'a', *args)]
    assert scores(1, 3) == [0.9, 0.5, 0.4]  # relative_score 0: the best 3, whatever they score
    assert scores(1, 3, 0.5) == [0.9, 0.5]  # 0.4 < 0.5 x 0.9
    assert scores(2, 3, 0.5) == [0.9, 0.5, 0.4, 0.3]  # two instances: from the 2nd best's 0.5
    assert scores(1, 3, 1.0) == [0.9] and search_requests(found, 'c', 1, 3, 0.5) == []
    estimator = estimator_with(OraclePredictor(make_model(), *ground_truth()), make_model(),
                               detector=ManyBoxDetector(OraclePredictor(
                                   make_model(), *ground_truth()), count=7),
                               search_candidates=3, search_relative_score=0.85)
    assert [r.score for r in estimator.search(IMAGE)] == pytest.approx([0.9, 0.8])


def moving_scene(predictor_type=None, refine_iou_below=0.0, max_misses=2, verify_interval=0,
                 **tracking):
    """Return (predictor, oracle detector, tracker) around one object at the true pose."""
    model = make_model()
    R, t = ground_truth()
    predictor = (predictor_type or OraclePredictor)(model, R, t)
    detector = OracleDetector(predictor)
    estimator = estimator_with(predictor, model, detector=detector,
                               refine_iou_below=refine_iou_below)
    tracker = PoseTracker(estimator, TrackingConfig(max_misses=max_misses,
                                                    verify_interval=verify_interval, **tracking))
    return predictor, detector, tracker


def test_track_follows_a_moving_object_with_one_id():
    predictor, detector, tracker = moving_scene()
    ids = []
    for frame in range(6):
        predictor.t = np.array([0.05 + 0.01 * frame, -0.02, 0.9 - 0.02 * frame])
        tracked = tracker.update(IMAGE, K)
        assert len(tracked) == 1
        assert np.allclose(tracked[0].pose.t, predictor.t, atol=1e-6)
        ids.append(tracked[0].track_id)
        if frame > 0:
            assert tracked[0].pose.request.source == 'track'
    assert ids == [0] * 6
    assert detector.calls == 1  # searched once, then tracked


def test_lost_track_is_dropped_after_max_misses_and_search_resumes():
    predictor, detector, tracker = moving_scene(max_misses=2)
    tracker.update(IMAGE, K)
    predictor.confidence = 0.0  # the object disappears
    detector.visible = False
    for _ in range(2):  # missing up to max_misses frames keeps the track
        assert tracker.update(IMAGE, K) == []
        assert len(tracker.tracks) == 1
    assert tracker.update(IMAGE, K) == []
    assert tracker.tracks == []  # the third miss drops it
    searches = detector.calls
    predictor.confidence, detector.visible = 0.9, True
    tracked = tracker.update(IMAGE, K)
    assert detector.calls == searches + 1
    assert [t.track_id for t in tracked] == [1]  # a new track, ids are not reused


def test_a_missed_frame_brings_the_search_back_and_keeps_the_id():
    predictor, detector, tracker = moving_scene(max_misses=5)
    tracker.update(IMAGE, K)
    predictor.confidence = 0.0  # one frame without an accepted pose
    assert tracker.update(IMAGE, K) == []
    searches = detector.calls
    predictor.confidence = 0.9
    tracked = tracker.update(IMAGE, K)
    assert detector.calls == searches + 1  # the track missed: search again, do not wait
    assert [t.track_id for t in tracked] == [0]


def test_min_detection_score_filters_the_search():
    predictor, detector, tracker = moving_scene()
    tracker.estimator.set_thresholds(min_detection_score=0.95)  # above the detector's 0.9
    assert tracker.update(IMAGE, K) == [] and detector.calls == 1
    tracker.estimator.set_thresholds(min_detection_score=0.5)
    assert len(tracker.update(IMAGE, K)) == 1


def test_search_interval_limits_full_image_searches():
    predictor, detector, tracker = moving_scene(search_interval=3)
    detector.visible = False
    for _ in range(7):
        tracker.update(IMAGE, K)
    assert detector.calls == 3  # frames 0, 3, 6


def test_given_boxes_replace_search_and_overlapping_ones_keep_the_track():
    predictor, detector, tracker = moving_scene()
    box = true_box(predictor.model, predictor.R, predictor.t)
    first = tracker.update(IMAGE, K, boxes={'widget': [box]})
    second = tracker.update(IMAGE, K, boxes={'widget': [box + 2]})
    assert detector.calls == 0
    assert first[0].track_id == second[0].track_id == 0
    assert second[0].pose.request.source == 'track'


def test_a_still_track_needs_no_second_pass():
    predictor, _, tracker = moving_scene(refine_iou_below=0.8, box_margin=0.1)
    tracker.update(IMAGE, K)
    calls = predictor.calls
    for _ in range(3):  # the track's grown box is compared with the pose's box grown alike
        assert tracker.update(IMAGE, K)[0].pose.request.source == 'track'
    assert predictor.calls == calls + 3


def test_tracking_config_is_validated():
    with pytest.raises(ValueError, match='search_interval'):
        TrackingConfig(search_interval=0).validated()


class CropBiasedPredictor(OraclePredictor):
    """Predicts relative to its crop, like a real network.

    Keypoints move with the box centre; confidence is high only for a crop centred on the object.
    """

    def predict(self, image_rgb, boxes_xyxy, timer=None):
        prediction = super().predict(image_rgb, boxes_xyxy, timer)
        truth = true_box(self.model, self.R, self.t)
        for i, box in enumerate(np.asarray(boxes_xyxy)):
            shift = (box[:2] + box[2:]) / 2 - (truth[:2] + truth[2:]) / 2
            prediction.keypoints[i] += shift
            prediction.confidence[i] = 0.9 if np.linalg.norm(shift) < 5 else 0.6
        return prediction


@pytest.mark.parametrize('verify_interval', [0, 1])
def test_verification_search_replaces_a_drifted_track(verify_interval):
    predictor, detector, tracker = moving_scene(CropBiasedPredictor,
                                                verify_interval=verify_interval)
    t = predictor.t
    assert np.allclose(tracker.update(IMAGE, K)[0].pose.t, t, atol=1e-6)
    # The object moved 8 cm: the track's crop is off, and the detector's box overlaps it by
    # IoU 0.47, under search_overlap_iou (0.5), so the search's crop is made and competes.
    predictor.t = t + np.array([0.08, 0.0, 0.0])
    tracked = tracker.update(IMAGE, K)
    assert len(tracked) == 1 and detector.calls == 1 + verify_interval
    error = np.linalg.norm(tracked[0].pose.t - predictor.t)
    if verify_interval:  # the detector's centred crop beats the track's biased one
        assert error < 1e-6 and tracked[0].pose.request.source == 'search'
        assert tracked[0].track_id == 0  # within 0.3 diameter: the same instance
    else:
        assert error > 0.01 and tracked[0].pose.request.source == 'track'


@pytest.mark.parametrize('search_overlap_iou', [0.5, 1.0])
def test_a_search_box_on_a_track_is_left_to_the_track(search_overlap_iou):
    predictor, detector, tracker = moving_scene(CropBiasedPredictor, verify_interval=1,
                                                search_overlap_iou=search_overlap_iou)
    tracker.update(IMAGE, K)
    predictor.t = predictor.t + np.array([0.03, 0.0, 0.0])  # boxes overlap by IoU 0.67
    tracked = tracker.update(IMAGE, K)
    assert detector.calls == 2  # the verification search ran
    crops = tracker.estimator.timer.tallies
    assert crops['crops from track'] == 1
    if search_overlap_iou <= 0.67:  # its box is not cropped: the track's crop stands for it
        assert 'crops from search' not in crops and tracked[0].pose.request.source == 'track'
    else:  # both crops are made and the better-scoring pose wins
        assert crops['crops from search'] == 1 and tracked[0].pose.request.source == 'search'
    assert [t.track_id for t in tracked] == [0]
    with pytest.raises(ValueError, match='search_overlap_iou'):
        TrackingConfig(search_overlap_iou=0.0).validated()


def test_verify_interval_spaces_searches_while_tracked():
    predictor, detector, tracker = moving_scene()
    tracker.config = TrackingConfig(verify_interval=3).validated()
    for _ in range(7):
        assert len(tracker.update(IMAGE, K)) == 1
    assert detector.calls == 3  # frames 0 (no track yet), 3 and 6
    with pytest.raises(ValueError, match='verify_interval'):
        TrackingConfig(verify_interval=-1).validated()


def test_concurrent_requests_run_beside_the_network_and_join_one_fit():
    model = make_model()
    R, t = ground_truth()
    predictor = CropBiasedPredictor(model, R, t)
    estimator = estimator_with(predictor, model, refine_iou_below=0.0)  # no second pass
    centred = CropRequest('widget', true_box(model, R, t))
    shifted = CropRequest('widget', true_box(model, R, t) + 30.0)
    together = estimator.estimate(IMAGE, K, [shifted, centred])
    threads = []

    def more_requests(timer):
        threads.append(threading.current_thread())
        with timer.stage('detector'):
            return [centred, CropRequest('widget', [np.nan, 0, 10, 10])]  # invalid: skipped

    predictor.calls = 0
    apart = estimator.estimate(IMAGE, K, [shifted], more_requests=more_requests)
    assert threads and threads[0] is not threading.current_thread()
    assert predictor.calls == 2  # the given crops' batch, then the concurrent requests' one
    assert [pose.request for pose in apart] == [pose.request for pose in together] == [centred]
    assert np.allclose(apart[0].t, together[0].t) and apart[0].score == together[0].score
    stages = estimator.timer.seconds
    assert {'detector (concurrent)', 'waiting for concurrent requests'} <= set(stages)
    assert 'detector' not in stages

    def failing(timer):
        raise RuntimeError('detector failed')

    with pytest.raises(RuntimeError, match='detector failed'):  # raised in the caller's thread
        estimator.estimate(IMAGE, K, [shifted], more_requests=failing)


class CropLimitedPredictor(CropBiasedPredictor):
    """Finds nothing (confidence 0) in crops whose centre is more than 40 px off the object."""

    def predict(self, image_rgb, boxes_xyxy, timer=None):
        prediction = super().predict(image_rgb, boxes_xyxy, timer)
        truth = true_box(self.model, self.R, self.t)
        for i, box in enumerate(np.asarray(boxes_xyxy)):
            if np.linalg.norm((box[:2] + box[2:]) / 2 - (truth[:2] + truth[2:]) / 2) > 40:
                prediction.confidence[i] = 0.0
        return prediction


def test_a_new_track_replaces_a_lost_one_beyond_max_instances():
    predictor, _, tracker = moving_scene(CropLimitedPredictor, max_misses=5)
    assert [p.track_id for p in tracker.update(IMAGE, K)] == [0]
    predictor.t = predictor.t + np.array([0.15, 0.0, 0.0])  # jumps out of the track's crop
    assert tracker.update(IMAGE, K) == []  # track 0 misses; the search comes next frame
    assert [p.track_id for p in tracker.update(IMAGE, K)] == [1]
    assert [track.track_id for track in tracker.tracks] == [1]  # max_instances 1: track 0 goes
    tracker.update(IMAGE, K)
    assert len(predictor.boxes) == 1  # only the live track asks for a crop


class ResettingPredictor(OraclePredictor):
    """Has another thread reset the tracker while its call number `reset_on_call` runs.

    The thread is joined before the prediction returns: the reset lands inside the tracker's
    update deterministically, as a camera_info callback's reset may in the node.
    """

    tracker = None
    reset_on_call = None

    def predict(self, image_rgb, boxes_xyxy, timer=None):
        prediction = super().predict(image_rgb, boxes_xyxy, timer)
        if self.calls == self.reset_on_call:
            resetter = threading.Thread(target=self.tracker.reset)
            resetter.start()
            resetter.join()
        return prediction


def test_a_reset_during_an_update_is_not_undone_by_it():
    predictor, detector, tracker = moving_scene(ResettingPredictor, max_misses=5)
    predictor.tracker = tracker
    assert [p.track_id for p in tracker.update(IMAGE, K)] == [0]
    predictor.reset_on_call = predictor.calls + 1  # the next frame's network pass
    tracked = tracker.update(IMAGE, K)
    assert len(tracked) == 1  # the frame still gets its pose
    assert tracker.tracks == []  # but neither the old track nor this frame's pose survives
    searches = detector.calls
    tracked = tracker.update(IMAGE, K)
    assert detector.calls == searches + 1 and tracked[0].pose.request.source == 'search'
    assert [t.track_id for t in tracked] == [1]  # a new track; ids are not reused


def box_scene():
    """Return (model, runtime) of a 20 x 12 x 8 cm box whose keypoints are its corners.

    The runtime carries the box's surface points, so the pipeline refines poses on silhouettes.
    """
    box = trimesh.creation.box(extents=(0.20, 0.12, 0.08))
    model = ObjectModel(name='widget', keypoint_names=[f'k{i}' for i in range(8)],
                        keypoints=np.asarray(box.vertices), diameter=0.25)
    return model, trimesh.sample.sample_surface(box, 20000, seed=0)[0]


def silhouette_image(model, R, t):
    """Return an RGB image of the convex silhouette of the model's keypoints at R, t."""
    uv = projected_points(model.keypoints, R, t)
    image = np.full((480, 640, 3), 60, np.uint8)
    cv2.fillConvexPoly(image, cv2.convexHull(np.rint(uv).astype(np.int32)), (190, 190, 190))
    return image


def projected_points(points, R, t):
    """Return (N, 2) pixels of object points (N, 3) at pose R, t through K."""
    camera = points @ R.T + t
    return camera[:, :2] / camera[:, 2:] @ K[:2, :2].T + K[:2, 2]


def test_rms_covariance_and_thresholds_describe_the_refined_pose():
    model, surface = box_scene()
    R, t = ground_truth()
    predictor = OraclePredictor(model, R, t)  # keypoints at (R, t) ...
    image = silhouette_image(model, R, t + np.array([0.008, 0.0, 0.0]))  # ... edges 5 px off
    estimator = estimator_with(predictor, model, refine_iou_below=0.0)
    estimator.objects['widget'].surface = surface
    box = true_box(model, R, t)
    pose = estimator(image, K, boxes=[box])[0]
    moved_px = np.linalg.norm(projected_points(model.keypoints, pose.R, pose.t)
                              - projected_points(model.keypoints, R, t), axis=1)
    assert moved_px.mean() > 0.5  # the refinement moved the pose off the keypoints' fit
    # rms_px: the keypoints' RMS error at the published pose (equal confidences: plain RMS)
    residual = projected_points(model.keypoints, pose.R, pose.t) - pose.keypoints
    assert pose.result.rms_px == pytest.approx(np.sqrt((residual ** 2).sum(1).mean()), rel=1e-6)
    assert np.allclose(pose.result.R, pose.R) and np.allclose(pose.result.t, pose.t)
    # covariance: the keypoint fit's at that pose (was ~0: the exact fit before refinement)
    assert np.trace(pose.covariance[:3, :3]) > 1e-9
    # a reprojection limit the refined pose exceeds (the keypoint fit alone would pass it)
    estimator.set_thresholds(max_reprojection_error_px=0.5 * pose.result.rms_px)
    assert estimator(image, K, boxes=[box]) == []


def test_a_symmetric_object_is_published_without_flips():
    """A fit landing on either of two equivalent poses is published without flips.

    The object looks the same turned half a turn about z: tracked, the published rotation moves
    continuously; untracked, either equivalent input gives the same published pose.
    """
    from pose_kp_ros.geometry.symmetry import Symmetry
    half = np.random.default_rng(5).uniform(-0.1, 0.1, (4, 3))
    turn = np.diag([-1.0, -1.0, 1.0])                 # 180 degrees about z
    model = ObjectModel(name='widget', keypoint_names=[f'k{i}' for i in range(8)],
                        keypoints=np.concatenate([half, half @ turn.T]), diameter=0.3,
                        symmetric=True,
                        symmetries=(Symmetry(np.array([0.0, 0, 1]), 180.0, np.zeros(3)),))
    R, t = ground_truth()
    predictor = OraclePredictor(model, R, t)
    estimator = estimator_with(predictor, model, detector=OracleDetector(predictor))
    tracker = PoseTracker(estimator, TrackingConfig(verify_interval=0))
    rng = np.random.default_rng(6)
    published = []
    for frame in range(12):
        R_true = so3_exp([0.0, 0.0, 0.05 * frame]) @ R
        predictor.R = R_true @ turn if rng.random() < 0.5 else R_true  # either equivalent
        tracked = tracker.update(IMAGE, K)
        assert len(tracked) == 1
        published.append(tracked[0].pose.R)
        untracked = estimator(IMAGE, K, boxes=[true_box(model, R_true, t)])[0].R
        predictor.R = predictor.R @ turn                            # the other equivalent
        again = estimator(IMAGE, K, boxes=[true_box(model, R_true, t)])[0].R
        assert np.allclose(untracked, again, atol=1e-6)
    steps = [np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1)))
             for a, b in zip(published, published[1:])]
    assert max(steps) < 3.5                                      # 2.9 degrees per frame


def test_keypoints_are_undistorted_once_and_the_silhouette_stage_reuses_them(monkeypatch):
    """One undistortion per keypoint stage; the published keypoints stay the image's pixels."""
    import pose_kp_ros.pipeline.object_pose as object_pose_module
    model, surface = box_scene()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t, distortion=D), model,
                               refine_iou_below=0.0, contour_search_px=(2.0, 1.0))
    estimator.objects['widget'].surface = surface
    calls = []
    undistort = object_pose_module.undistort_pixels
    monkeypatch.setattr(object_pose_module, 'undistort_pixels',
                        lambda *args: calls.append(1) or undistort(*args))
    image = silhouette_image(model, R, t)
    pose = estimator(image, K, boxes=[true_box(model, R, t)], D=D)[0]
    assert len(calls) == 1  # the keypoint stage's; the silhouette stage reused `measured`
    distorted = cv2.projectPoints(model.keypoints @ R.T + t, np.zeros(3), np.zeros(3), K, D)[0]
    np.testing.assert_allclose(pose.keypoints, distorted[:, 0], atol=1e-9)
    np.testing.assert_allclose(pose.measured, projected_points(model.keypoints, R, t), atol=1e-6)
    np.testing.assert_allclose(pose.weights, 0.9)


def test_defaults_come_from_the_pipeline_config():
    model = make_model()
    R, t = ground_truth()
    estimator = estimator_with(OraclePredictor(model, R, t), model)
    assert estimator.config == PipelineConfig(objects=())
    estimator.set_thresholds(min_score=0.5)
    assert estimator.thresholds == Thresholds(min_score=0.5) == estimator.config.thresholds
    with pytest.raises(PipelineConfigError):
        estimator_with(OraclePredictor(model, R, t), model,
                       thresholds=Thresholds(min_valid_keypoints=2))


def test_a_track_whose_pose_scored_low_is_verified_on_the_next_frame():
    predictor, detector, tracker = moving_scene(CropBiasedPredictor, verify_below_score=0.8)
    t = predictor.t
    confident = tracker.update(IMAGE, K)[0].pose.score
    assert confident >= 0.8 and detector.calls == 1
    predictor.t = t + np.array([0.03, 0.0, 0.0])  # the track's crop is off from now on
    doubtful = tracker.update(IMAGE, K)[0].pose
    assert doubtful.request.source == 'track' and doubtful.score < 0.8
    assert detector.calls == 1  # no verification was due
    tracked = tracker.update(IMAGE, K)  # the low score asks for a search, which wins
    assert detector.calls == 2 and tracked[0].pose.request.source == 'search'
    assert np.linalg.norm(tracked[0].pose.t - predictor.t) < 1e-6
    tracker.update(IMAGE, K)
    assert detector.calls == 2  # confident again: tracked without a search
    with pytest.raises(ValueError, match='verify_below_score'):
        TrackingConfig(verify_below_score=1.5).validated()
