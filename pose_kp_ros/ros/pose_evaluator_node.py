"""Live evaluation: compare a pose node's output with ground truth arriving on another topic.

Subscribes (remappable):
  ground_truth  geometry_msgs/PoseStamped, the true pose (e.g. lmo_camera's ~/ground_truth/<obj>)
  pose          geometry_msgs/PoseStamped, the estimate (e.g. pose_kp's ~/pose/<obj>)
  /tf           tf2_msgs/TFMessage, counts the transforms seen for the object
  debug_image   sensor_msgs/Image (best effort), every `mosaic_every`-th one is kept for a mosaic
                (mosaic_every 0: not subscribed)
  camera_info   sensor_msgs/CameraInfo, K for the 2D projection error
Estimates are matched to ground truth by header stamp; latency = arrival time - stamp, where the
arrival time is when the middleware received the pose (its `received_timestamp`; the clock at
the callback when the middleware does not report it), so time this evaluator's own callbacks
spend does not count.
Prints progress once per second; after `expected_frames` ground truths (or once the ground-truth
publisher is gone) and `settle_s` without news, or after `timeout_s` in all, it writes
<output_dir>/<stem>_{summary.json, frames.json, frames.csv, accuracy.png, mosaic.png}, prints the
summary table and exits 0.
"""

from pathlib import Path
import sys
import time

from geometry_msgs.msg import PoseStamped
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import quaternion_xyzw_to_matrix
from pose_kp_ros.paths import data_path
from pose_kp_ros.pipeline.evaluation import (
    frame_errors,
    model_points,
    summarize,
    summary_table,
    write_evaluation,
)
from pose_kp_ros.ros.image_conversions import ImageConversionError, image_to_rgb
from pose_kp_ros.ros.messages import stamp_seconds
from pose_kp_ros.ros.spin import spin_node


def pose_from_msg(msg):
    """Return (R (3, 3), t (3,)) of a PoseStamped."""
    q = msg.pose.orientation
    p = msg.pose.position
    return quaternion_xyzw_to_matrix([q.x, q.y, q.z, q.w]), np.array([p.x, p.y, p.z])


def stamp_key(stamp):
    """Return a hashable key of a builtin_interfaces/Time."""
    return (stamp.sec, stamp.nanosec)


class PoseEvaluatorNode(Node):
    """See the module docstring."""

    def __init__(self):
        super().__init__('pose_evaluator')
        for name, default in (('object', 'driller'), ('expected_frames', 0),
                              ('settle_s', 3.0), ('timeout_s', 600.0),
                              ('output_dir', 'results/demo'), ('stem', 'demo'),
                              ('mosaic_every', 10)):
            self.declare_parameter(name, default)
        self.settings = {name: self.get_parameter(name).value for name in (
            'object', 'expected_frames', 'settle_s', 'timeout_s', 'output_dir', 'stem',
            'mosaic_every')}
        self.model = ObjectModel.from_yaml(data_path('objects', f'{self.settings["object"]}.yaml'))
        self.points = model_points(self.model)  # the point set of pose-kp eval-lmo
        self.K = np.full((3, 3), np.nan)
        self.truth, self.estimates, self.tf_frames, self.tiles = {}, {}, 0, []
        self.debug_images = 0
        self.started = time.monotonic()
        self.last_news = self.started
        truth = self.create_subscription(PoseStamped, 'ground_truth', self._on_truth, 50)
        self.truth_topic = truth.topic_name
        self.create_subscription(PoseStamped, 'pose', self._on_pose, 50)
        self.create_subscription(TFMessage, '/tf', self._on_tf, 50)
        if self.settings['mosaic_every'] > 0:  # best effort, as for any image shown to people
            self.create_subscription(Image, 'debug_image', self._on_debug_image,
                                     qos_profile_sensor_data)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, 10)
        self.create_timer(1.0, self._progress)
        self.done = False

    def _on_truth(self, msg):
        self.truth[stamp_key(msg.header.stamp)] = pose_from_msg(msg)
        self.last_news = time.monotonic()

    def _on_camera_info(self, msg):
        self.K = np.asarray(msg.k, float).reshape(3, 3)

    def _on_pose(self, msg, info):
        received_ns = info.get('received_timestamp') or self.get_clock().now().nanoseconds
        arrival = received_ns * 1e-9
        stamp = stamp_seconds(msg.header.stamp)
        self.estimates[stamp_key(msg.header.stamp)] = (*pose_from_msg(msg),
                                                       (arrival - stamp) * 1e3)
        self.last_news = time.monotonic()

    def _on_tf(self, msg):
        self.tf_frames += sum(1 for t in msg.transforms
                              if t.child_frame_id.startswith(self.settings['object']))

    def _on_debug_image(self, msg):
        self.debug_images += 1
        if (self.debug_images - 1) % self.settings['mosaic_every'] == 0 and len(self.tiles) < 20:
            try:
                self.tiles.append(image_to_rgb(msg))
            except ImageConversionError:
                pass

    def results(self):
        """Return FrameResults for every ground-truth frame seen so far, in stamp order."""
        results = []
        for index, key in enumerate(sorted(self.truth)):
            R_gt, t_gt = self.truth[key]
            R, t, latency = self.estimates.get(key, (None, None, float('nan')))
            results.append(frame_errors(index, R, t, R_gt, t_gt, self.points, self.K,
                                        self.model.symmetric, latency_ms=latency,
                                        symmetries=self.model.symmetries))
        return results

    def _progress(self):
        results = self.results()
        now = time.monotonic()
        if results:
            summary = summarize(results, self.model.diameter)
            print(f"[evaluator] frames {summary['frames']:4d}  poses {len(self.estimates):4d}  "
                  f"ADD<0.1d {summary['add_0.1d_accuracy']:6.1%}  "
                  f"median rot {summary['median_rotation_deg']:6.2f} deg  "
                  f"latency median {summary['latency_median_ms']:6.0f} ms", flush=True)
        expected = self.settings['expected_frames']
        quiet = now - self.last_news > self.settings['settle_s']
        camera_gone = self.truth and self.count_publishers(self.truth_topic) == 0
        finished = quiet and ((expected and len(self.truth) >= expected) or camera_gone)
        if finished or now - self.started > self.settings['timeout_s']:
            self.done = True

    def spin_until_done(self) -> None:
        """Take callbacks until the evaluation is done (see the module docstring) or shutdown."""
        while rclpy.ok() and not self.done:
            rclpy.spin_once(self, timeout_sec=0.1)

    def write(self):
        """Write the result files and print the summary; return the summary dict."""
        results = self.results()
        summary = summarize(results, self.model.diameter)
        summary.update({'object': self.model.name, 'poses_received': len(self.estimates),
                        'tf_transforms_received': self.tf_frames,
                        'debug_images_received': self.debug_images,
                        'model_points': len(self.points)})
        folder = Path(self.settings['output_dir'])
        stem = self.settings['stem']
        write_evaluation(results, summary, self.model.diameter, folder, stem,
                         f'{self.model.name} (live)', self.tiles)
        print(summary_table(summary), flush=True)
        print(f'[evaluator] wrote {folder}/{stem}_*', flush=True)
        return summary


def main(args=None):
    """Evaluate until done (see the module docstring), write results, exit 0."""
    return spin_node(PoseEvaluatorNode, args, work=PoseEvaluatorNode.spin_until_done,
                     cleanup=PoseEvaluatorNode.write)


if __name__ == '__main__':
    sys.exit(main())
