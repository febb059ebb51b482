"""What a pipeline config names, loaded: object runtimes and full-image detectors.

Each keypoint network or detector file is loaded once, however many objects list it.
"""

from typing import TYPE_CHECKING

import torch

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.network.checkpoint import check_keypoints
from pose_kp_ros.network.predictor import KeypointPredictor
from pose_kp_ros.pipeline.config import PipelineConfig, PipelineConfigError
from pose_kp_ros.pipeline.object_runtime import ObjectRuntime

if TYPE_CHECKING:
    from pose_kp_ros.network.detector import ObjectDetector


def load_object_runtimes(config: PipelineConfig, device: torch.device) -> list[ObjectRuntime]:
    """Return one ObjectRuntime per config object, in the config's order.

    A keypoint network listed by several objects is loaded once and checked against each
    object's keypoint names. Raises PipelineConfigError for an object listed twice,
    ObjectModelError or CheckpointError for a file at fault (one-line messages).
    """
    models = [ObjectModel.from_yaml(entry.object_path) for entry in config.objects]
    names = [model.name for model in models]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise PipelineConfigError(
                f'{config.source or "<config>"}: objects[{index}].object: object '
                f'{name!r} is already objects[{names.index(name)}] (list each object once; '
                'max_instances sets how many instances are kept)')
    runtimes, predictors = [], {}
    for entry, model in zip(config.objects, models):
        path = entry.keypoint_model_path
        if path in predictors:
            check_keypoints(predictors[path].meta, model.keypoint_names, model.name, path)
        else:
            predictors[path] = KeypointPredictor.from_file(
                path, expected_keypoint_names=model.keypoint_names, object_name=model.name,
                device=device)
        runtimes.append(ObjectRuntime(model, predictors[path], entry.max_instances))
    return runtimes


def load_detectors(config: PipelineConfig, object_names: list[str],
                   device: torch.device) -> list['ObjectDetector']:
    """Return the detectors of the config: one per file, each reporting the objects it serves.

    object_names: the name of each config object, in its order. An object's own `detector`
    overrides the config's shared one; objects with neither are not searched for.
    """
    served = {}  # detector file -> the objects it searches for
    for entry, name in zip(config.objects, object_names):
        path = entry.detector_path or config.detector_path
        if path is not None:
            served.setdefault(path, []).append(name)
    if not served:
        return []
    from pose_kp_ros.network.detector import ObjectDetector
    return [ObjectDetector.from_file(path, object_names=names, device=device)
            for path, names in served.items()]
