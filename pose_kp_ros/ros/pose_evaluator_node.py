"""Live evaluation: compare a pose node's output with ground truth arriving on other topics.

Parameter `objects`: the objects measured (a list, or one name; default driller). Subscribes
(remappable), per object:
  ground_truth/<object>  geometry_msgs/PoseStamped, the true pose (e.g. lmo_camera's
                         ~/ground_truth/<object>), only on the frames that show the object
  pose/<object>          geometry_msgs/PoseStamped, the estimate (e.g. pose_kp's ~/pose/<object>)
and once:
  /tf           tf2_msgs/TFMessage, counts the transforms seen per object (child frame
                `<tf_prefix><object>_<track id>`, as the pose node names them)
  detections    vision_msgs/Detection3DArray (e.g. pose_kp's ~/detections, sent for every frame
                it processes, empty or not): the frames answered, against those the node
                dropped (`frames_answered` of each object's ground-truth frames)
  debug_image   sensor_msgs/Image (best effort), every `mosaic_every`-th one is kept for a mosaic
                (mosaic_every 0: not subscribed)
  camera_info   sensor_msgs/CameraInfo, K for the 2D projection error
Estimates are matched to ground truth by header stamp; latency = arrival time - stamp, where the
arrival time is when the middleware received the pose (its `received_timestamp`; the clock at
the callback when the middleware does not report it), so time this evaluator's own callbacks
spend does not count. Each object is measured with ADD, or ADD-S when its YAML declares a
symmetry (multi_evaluation.error_metric).
Prints progress once per second; after `expected_frames` frames with ground truth (or once the
ground-truth publishers are gone) and `settle_s` without news, or after `timeout_s` in all, it
writes its files, prints the summaries and exits 0. One object (and no `table_objects`):
<output_dir>/<stem>_{summary.json, frames.json, frames.csv, accuracy.png, mosaic.png}. Several
objects, or `table_objects` (the rows of the table; those not in `objects` are 'no model' rows):
<stem>_<object>_{summary.json, frames.json, frames.csv, accuracy.png} per object and the table
<stem>_all_{summary.json, accuracy.png, mosaic.png} (rows and mean beside the published LM-O
figures, `training_data` naming what the models were trained on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
import re
import sys
import time
from typing import TYPE_CHECKING

from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import quaternion_xyzw_to_matrix
from pose_kp_ros.paths import data_path
from pose_kp_ros.pipeline.evaluation import (
    FrameResult,
    frame_errors,
    model_points,
    summarize,
    summary_table,
    write_evaluation,
)
from pose_kp_ros.pipeline.multi_evaluation import (
    OTHER_TRAINING,
    error_metric,
    object_row,
    write_objects_table,
)
from pose_kp_ros.ros.image_conversions import ImageConversionError, image_to_rgb
from pose_kp_ros.ros.messages import stamp_seconds
from pose_kp_ros.ros.spin import spin_node

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time

StampKey = tuple[int, int]
"""A header stamp as (sec, nanosec): frames are matched by it."""
SCORED_DEPTH = 1000
"""History depth of the scored topics (ground truth, poses, detections): the reader keeps this
many messages a topic that this node has not yet taken. At depth 50 an evaluator kept from
the later objects' topics for a few seconds (two loaded cores, eight objects at 10 Hz) lost the
oldest ground truths of five objects (`make demo`: 145-190 of 154-200 scored); 1000 holds five
whole LM-O replays of small messages."""


def pose_from_msg(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    """Return (R (3, 3), t (3,) metres) of a PoseStamped."""
    q = msg.pose.orientation
    p = msg.pose.position
    return quaternion_xyzw_to_matrix([q.x, q.y, q.z, q.w]), np.array([p.x, p.y, p.z])


def stamp_key(stamp: Time) -> StampKey:
    """Return a hashable key of a builtin_interfaces/Time."""
    return (stamp.sec, stamp.nanosec)


def name_list(value: str | Iterable[str] | None) -> list[str]:
    """Return a list-of-names parameter as a list (one name, a list, or unset: empty)."""
    return [value] if isinstance(value, str) else list(value or [])


def load_object(name: str) -> ObjectModel:
    """Return the ObjectModel of objects/<name>.yaml."""
    return ObjectModel.from_yaml(data_path('objects', f'{name}.yaml'))


class LiveObject:
    """What the evaluator gathers about one object: ground truths and estimates by stamp."""

    def __init__(self, name: str) -> None:
        self.model = load_object(name)
        self.metric = error_metric(self.model)
        self.points = model_points(self.model)  # the point set of pose-kp eval-lmo
        self.truth, self.estimates, self.tf_frames = {}, {}, 0
        # {stamp key: (estimate, FrameResult)} under the camera matrix errors_K: each frame's
        # errors are computed once (ADD-S over a whole mesh takes milliseconds), not at every
        # progress line.
        self.errors, self.errors_K = {}, None

    def answered(self, stamps: set[StampKey]) -> int:
        """Return how many of this object's ground-truth frames are among `stamps`."""
        return len(stamps.intersection(self.truth))

    def results(self, K: np.ndarray, frame_index: Mapping[StampKey, int]) -> list[FrameResult]:
        """Return the FrameResults of the frames with ground truth, in stamp order.

        K: (3, 3) intrinsics (NaN until a camera_info came); frame_index: {stamp key: index of
        the frame among every frame seen}.
        """
        if self.errors_K is None or not np.array_equal(self.errors_K, K, equal_nan=True):
            self.errors, self.errors_K = {}, K.copy()
        results = []
        for key in sorted(self.truth):
            estimate = self.estimates.get(key)
            cached = self.errors.get(key)
            if cached is None or cached[0] is not estimate:
                R, t, latency = estimate or (None, None, float('nan'))
                cached = self.errors[key] = (estimate, frame_errors(
                    0, R, t, *self.truth[key], self.points, K, self.metric == 'ADD-S',
                    latency_ms=latency, symmetries=self.model.symmetries))
            results.append(replace(cached[1], frame=str(frame_index[key])))
        return results

    def summary(self, results: Sequence[FrameResult]) -> dict:
        """Return the summary of results with this object's counts."""
        summary = summarize(results, self.model.diameter)
        summary.update({'object': self.model.name, 'metric': self.metric,
                        'poses_received': len(self.estimates),
                        'tf_transforms_received': self.tf_frames,
                        'model_points': len(self.points)})
        return summary


class PoseEvaluatorNode(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__('pose_evaluator')
        names = ParameterDescriptor(dynamic_typing=True)
        for name, default, descriptor in (
                ('objects', ['driller'], names), ('table_objects', [], names),
                ('training_data', OTHER_TRAINING, None), ('expected_frames', 0, None),
                ('settle_s', 3.0, None), ('timeout_s', 600.0, None),
                ('output_dir', 'results/demo', None), ('stem', 'demo', None),
                ('mosaic_every', 10, None), ('tf_prefix', '', None)):
            self.declare_parameter(name, default, descriptor or ParameterDescriptor())
        self.settings = {name: self.get_parameter(name).value for name in (
            'objects', 'table_objects', 'training_data', 'expected_frames', 'settle_s',
            'timeout_s', 'output_dir', 'stem', 'mosaic_every', 'tf_prefix')}
        objects = list(dict.fromkeys(name_list(self.settings['objects'])))
        if not objects:
            raise ValueError('parameter objects: no object named')
        self.objects = {name: LiveObject(name) for name in objects}
        self.table = name_list(self.settings['table_objects']) or (
            objects if len(objects) > 1 else [])
        self.K = np.full((3, 3), np.nan)
        self.tiles, self.debug_images = [], 0
        self.started = time.monotonic()
        self.last_news = self.started
        self.truth_topics = []
        for name, live in self.objects.items():
            truth = self.create_subscription(PoseStamped, f'ground_truth/{name}',
                                             partial(self._on_truth, live), SCORED_DEPTH)
            self.truth_topics.append(truth.topic_name)
            self.create_subscription(PoseStamped, f'pose/{name}', partial(self._on_pose, live),
                                     SCORED_DEPTH)
        self.create_subscription(TFMessage, '/tf', self._on_tf, 50)
        self.answered_stamps = set()
        self.create_subscription(Detection3DArray, 'detections', self._on_detections,
                                 SCORED_DEPTH)
        if self.settings['mosaic_every'] > 0:  # best effort, as for any image shown to people
            self.create_subscription(Image, 'debug_image', self._on_debug_image,
                                     qos_profile_sensor_data)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, 10)
        self.create_timer(1.0, self._progress)
        self.done = False

    def _on_truth(self, live, msg):
        live.truth[stamp_key(msg.header.stamp)] = pose_from_msg(msg)
        self.last_news = time.monotonic()

    def _on_camera_info(self, msg):
        self.K = np.asarray(msg.k, float).reshape(3, 3)

    def _on_pose(self, live, msg, info):
        received_ns = info.get('received_timestamp') or self.get_clock().now().nanoseconds
        arrival = received_ns * 1e-9
        stamp = stamp_seconds(msg.header.stamp)
        live.estimates[stamp_key(msg.header.stamp)] = (*pose_from_msg(msg),
                                                       (arrival - stamp) * 1e3)
        self.last_news = time.monotonic()

    def _on_detections(self, msg):
        self.answered_stamps.add(stamp_key(msg.header.stamp))
        self.last_news = time.monotonic()

    def _on_tf(self, msg):
        for name, live in self.objects.items():
            frame = re.compile(re.escape(self.settings['tf_prefix'] + name) + r'_[0-9]+')
            live.tf_frames += sum(1 for t in msg.transforms
                                  if frame.fullmatch(t.child_frame_id))

    def _on_debug_image(self, msg):
        self.debug_images += 1
        if (self.debug_images - 1) % self.settings['mosaic_every'] == 0 and len(self.tiles) < 20:
            try:
                self.tiles.append(image_to_rgb(msg))
            except ImageConversionError:
                pass

    def frames_seen(self) -> dict[StampKey, int]:
        """Return {stamp key: frame index} of every frame with a ground truth, in stamp order."""
        keys = set().union(*(live.truth for live in self.objects.values()))
        return {key: index for index, key in enumerate(sorted(keys))}

    def results(self) -> dict[str, list[FrameResult]]:
        """Return {object: FrameResults} for every ground-truth frame seen so far."""
        frames = self.frames_seen()
        return {name: live.results(self.K, frames) for name, live in self.objects.items()}

    def _progress(self):
        results = self.results()
        now = time.monotonic()
        frames = len(self.frames_seen())
        if len(self.objects) == 1 and frames:
            (live, found), = zip(self.objects.values(), results.values())
            summary = summarize(found, live.model.diameter)
            print(f"[evaluator] frames {summary['frames']:4d}  poses {len(live.estimates):4d}  "
                  f"ADD<0.1d {summary['add_0.1d_accuracy']:6.1%}  "
                  f"median rot {summary['median_rotation_deg']:6.2f} deg  "
                  f"latency median {summary['latency_median_ms']:6.0f} ms", flush=True)
        elif frames:
            figures = '  '.join(
                f"{name} {len(live.estimates)}/{len(results[name])} "
                f"{summarize(results[name], live.model.diameter)['add_0.1d_accuracy']:.0%}"
                for name, live in self.objects.items())
            print(f'[evaluator] frames {frames:4d}  poses/frames ADD(-S)<0.1d: {figures}',
                  flush=True)
        expected = self.settings['expected_frames']
        quiet = now - self.last_news > self.settings['settle_s']
        camera_gone = frames and all(self.count_publishers(topic) == 0
                                     for topic in self.truth_topics)
        finished = quiet and ((expected and frames >= expected) or camera_gone)
        if finished or now - self.started > self.settings['timeout_s']:
            self.done = True

    def spin_until_done(self) -> None:
        """Take callbacks until the evaluation is done (see the module docstring) or shutdown."""
        while rclpy.ok() and not self.done:
            rclpy.spin_once(self, timeout_sec=0.1)

    def write(self) -> dict[str, dict]:
        """Write the result files and print the summaries; return {object: summary dict}."""
        folder = Path(self.settings['output_dir'])
        stem = self.settings['stem']
        summaries, rows = {}, []
        for name, found in self.results().items():
            live = self.objects[name]
            summary = live.summary(found)
            summary['debug_images_received'] = self.debug_images
            summary['frames_answered'] = live.answered(self.answered_stamps)
            summaries[name] = summary
            if not self.table:  # one object: the files of a single-object run, mosaic included
                write_evaluation(found, summary, live.model.diameter, folder, stem,
                                 f'{name} (live)', self.tiles)
                print(summary_table(summary), flush=True)
                print(f"[evaluator] frames answered on detections: {summary['frames_answered']} "
                      f"of {summary['frames']}", flush=True)
                continue
            write_evaluation(found, summary, live.model.diameter, folder, f'{stem}_{name}',
                             f'{name} (live, {live.metric})', [])
            print(f'[evaluator] {name} ({live.metric})\n{summary_table(summary)}', flush=True)
        for name in self.table:
            if name in summaries:
                rows.append(object_row(name, self.objects[name].metric, summaries[name],
                                       f'{stem}_{name}_summary.json'))
            else:
                rows.append(object_row(name, error_metric(load_object(name))))
        if rows:
            frames = len(self.frames_seen())
            print(write_objects_table(
                rows, frames, self.settings['training_data'], folder, f'{stem}_all',
                f'live demo, {frames} LM-O photos: ADD(-S) < 0.1 d per object', self.tiles,
                frames_source='LM-O test photos, live over ROS 2'), flush=True)
        print(f'[evaluator] wrote {folder}/{stem}_*', flush=True)
        return summaries


def main(args: Sequence[str] | None = None) -> int:
    """Evaluate until done (see the module docstring), write results, exit 0."""
    return spin_node(PoseEvaluatorNode, args, work=PoseEvaluatorNode.spin_until_done,
                     cleanup=PoseEvaluatorNode.write)


if __name__ == '__main__':
    sys.exit(main())
