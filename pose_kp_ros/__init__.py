"""pose_kp_ros: 6-DoF object pose from semantic keypoints (Pavlakos et al., ICRA 2017) for ROS 2.

The public API is imported lazily so that light modules (message conversions, configuration)
do not pull in torch:

    >>> import pose_kp_ros
    >>> model = pose_kp_ros.ObjectModel.from_yaml('objects/driller.yaml')  # doctest: +SKIP
    >>> result = pose_kp_ros.solve_pose(uv, conf, K, model)  # doctest: +SKIP
"""

import importlib

__version__ = '0.1.0'

_PUBLIC = {
    'ObjectModel': 'pose_kp_ros.geometry.object_model',
    'ObjectModelError': 'pose_kp_ros.geometry.object_model',
    'solve_pose': 'pose_kp_ros.geometry.solver',
    'PoseResult': 'pose_kp_ros.geometry.solver',
    'KeypointPredictor': 'pose_kp_ros.network.predictor',
    'KeypointPrediction': 'pose_kp_ros.network.predictor',
    'load_checkpoint': 'pose_kp_ros.network.checkpoint',
    'load_model': 'pose_kp_ros.network.checkpoint',
    'CheckpointError': 'pose_kp_ros.network.checkpoint',
    'ObjectDetector': 'pose_kp_ros.network.detector',
    'KeypointPoseEstimator': 'pose_kp_ros.pipeline.estimator',
    'ObjectPose': 'pose_kp_ros.pipeline.estimator',
    'PoseTracker': 'pose_kp_ros.pipeline.tracking',
    'PipelineConfigError': 'pose_kp_ros.pipeline.config',
}

__all__ = sorted(_PUBLIC) + ['__version__']


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(module), name)
