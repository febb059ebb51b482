"""Pipeline configuration: which objects, which models, which thresholds (one YAML file).

```yaml
device: auto                      # auto (CUDA when present, else CPU) | cpu | cuda | cuda:1
objects:
  - object: ../objects/driller.yaml    # object model YAML (paths relative to this file)
    keypoint_model: ../models/driller/keypoints.pt   # or its export: .onnx (ONNX Runtime), .pt2
    max_instances: 1              # poses kept per frame for this object
    # detector: ../runs/my_part_detector/best.pt  # optional: this object's own detector
detector: ../models/driller/detector.onnx # optional: full-image search (no external boxes) for
                                  # the objects without a detector of their own
thresholds:
  min_keypoint_confidence: 0.1    # keypoints at or below are ignored by the fit
  min_valid_keypoints: 5          # fewer usable keypoints: no pose
  max_reprojection_error_px: 12.0 # larger RMS reprojection error: no pose
  min_score: 0.2                  # lower mean keypoint confidence: no pose
solver:                           # options of pose_kp_ros.solve_pose
  robust: huber
  robust_scale_px: 4.0
  max_iterations: 20
refine_iou_below: 0.8             # re-crop around the fitted pose when its box overlaps the crop
                                  # box less than this (0 disables the second pass)
search_candidates: 3              # detector boxes cropped per instance
search_relative_score: 0.5        # a box beyond the instances' own is cropped only when it
                                  # scores at least this x the instances-th best (0: always)
contour_search_px: [6, 4, 2, 2, 1]  # pose refined on the silhouette's edges: edge search half-
                                  # ranges, pixels, one step each ([] disables; needs the mesh)
contour_balance: 10.0             # weight of the silhouette term over the keypoints' in that fit
contour_depth_starts: [0.95, 1.0, 1.05]  # that fit runs from the keypoint pose's depth times
                                  # each factor; the outline on the strongest edges wins
```
"""

from dataclasses import dataclass, field, replace
import logging
import math
from pathlib import Path
import re

import torch
import yaml

from pose_kp_ros.geometry.object_model import key_text, yaml_error_text
from pose_kp_ros.geometry.solver import option_error

LOGGER = logging.getLogger(__name__)
DEVICE_PATTERN = r'auto|cpu|cuda(:[0-9]+)?'
"""Device names the pipeline accepts (config `device`, node parameter `device`)."""


class PipelineConfigError(ValueError):
    """A pipeline configuration mistake; the message names the file and the field."""


def resolve_device(name: str) -> torch.device:
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


@dataclass(frozen=True)
class Thresholds:
    """Acceptance thresholds of a pose (changeable at run time, e.g. by ROS parameters)."""

    min_keypoint_confidence: float = 0.1
    min_valid_keypoints: int = 5
    max_reprojection_error_px: float = 12.0
    min_score: float = 0.2
    min_detection_score: float = 0.3
    """Full-image detector boxes below this score are not cropped."""

    def validated(self, where: str = 'thresholds') -> 'Thresholds':
        """Return self after checking every value's range; raise PipelineConfigError if not."""
        def number(value):
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        checks = [
            ('min_keypoint_confidence', '[0, 1)',
             lambda v: number(v) and 0.0 <= v < 1.0),
            ('min_valid_keypoints', 'an integer >= 4',
             lambda v: number(v) and isinstance(v, int) and v >= 4),
            ('max_reprojection_error_px', '> 0', lambda v: number(v) and v > 0),
            ('min_score', '[0, 1]', lambda v: number(v) and 0.0 <= v <= 1.0),
            ('min_detection_score', '[0, 1]', lambda v: number(v) and 0.0 <= v <= 1.0),
        ]
        for name, expected, ok in checks:
            if not ok(getattr(self, name)):
                raise PipelineConfigError(
                    f'{where}.{name}: expected {expected}, got {getattr(self, name)!r}')
        return self


@dataclass(frozen=True)
class ObjectEntry:
    """One object the pipeline looks for: its model YAML, keypoint network and own detector.

    detector_path: a detector for this object alone (None: the pipeline's `detector`, if any).
    """

    object_path: Path
    keypoint_model_path: Path
    max_instances: int = 1
    detector_path: Path | None = None


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `KeypointPoseEstimator` needs, with paths resolved."""

    objects: tuple
    detector_path: Path = None
    device: str = 'auto'
    thresholds: Thresholds = field(default_factory=Thresholds)
    solver: dict = field(default_factory=dict)
    refine_iou_below: float = 0.8
    search_candidates: int = 3
    search_relative_score: float = 0.0
    contour_search_px: tuple = (6.0, 4.0, 2.0, 2.0, 1.0)
    contour_balance: float = 10.0
    contour_depth_starts: tuple = (0.95, 1.0, 1.05)
    source: Path = None

    @classmethod
    def load(cls, path_or_dict: Path | str | dict) -> 'PipelineConfig':
        """Read a YAML path or an already-parsed dict (relative paths: from the YAML's folder)."""
        if isinstance(path_or_dict, dict):
            return cls.from_dict(path_or_dict, base=Path.cwd(), where='<config>')
        path = Path(path_or_dict)
        if not path.is_file():
            relative = '' if path.is_absolute() else f' (relative to {Path.cwd()})'
            raise PipelineConfigError(f'{path}: pipeline config not found{relative}')
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise PipelineConfigError(f'{path}: not valid YAML: {yaml_error_text(error)}') \
                from None
        if not isinstance(data, dict):
            raise PipelineConfigError(f'{path}: expected a mapping at the top level')
        return cls.from_dict(data, base=path.parent, where=str(path), source=path)

    @classmethod
    def from_dict(cls, data: dict, base: Path | str, where: str,
                  source: Path | None = None) -> 'PipelineConfig':
        """Validate a parsed config; raise PipelineConfigError naming `where` and the field."""
        def fail(field_name, message):
            raise PipelineConfigError(f'{where}: {field_name}: {message}')

        known = {'device', 'objects', 'detector', 'thresholds', 'solver', 'refine_iou_below',
                 'search_candidates', 'search_relative_score', 'contour_search_px',
                 'contour_balance', 'contour_depth_starts'}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            fail(key_text(unknown[0]), f'unknown field (known: {", ".join(sorted(known))})')
        entries = data.get('objects')
        if not isinstance(entries, list) or not entries:
            fail('objects', 'expected a non-empty list of {object, keypoint_model}')
        objects = []
        for index, entry in enumerate(entries):
            name = f'objects[{index}]'
            if not isinstance(entry, dict):
                fail(name, f'expected a mapping, got {entry!r}')
            for key in ('object', 'keypoint_model'):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    fail(f'{name}.{key}', 'expected a file path')
            extra = sorted(set(entry) - {'object', 'keypoint_model', 'max_instances',
                                         'detector'}, key=str)
            if extra:
                fail(f'{name}.{key_text(extra[0])}', 'unknown field')
            max_instances = entry.get('max_instances', 1)
            if isinstance(max_instances, bool) or not isinstance(max_instances, int) \
                    or max_instances < 1:
                fail(f'{name}.max_instances', f'expected an integer >= 1, got {max_instances!r}')
            own_detector = entry.get('detector')
            if own_detector is not None and (not isinstance(own_detector, str)
                                             or not own_detector):
                fail(f'{name}.detector', f'expected a file path, got {own_detector!r}')
            objects.append(ObjectEntry(
                _resolve(base, entry['object']), _resolve(base, entry['keypoint_model']),
                max_instances, _resolve(base, own_detector) if own_detector else None))
        detector = data.get('detector')
        if detector is not None and (not isinstance(detector, str) or not detector):
            fail('detector', f'expected a file path, got {detector!r}')
        device = data.get('device', cls.device)
        if not isinstance(device, str) or re.fullmatch(DEVICE_PATTERN, device) is None:
            fail('device', f'expected auto, cpu, cuda or cuda:N, got {device!r}')
        thresholds = data.get('thresholds', {}) or {}
        if not isinstance(thresholds, dict):
            fail('thresholds', 'expected a mapping')
        unknown = sorted(set(thresholds) - set(Thresholds.__dataclass_fields__), key=str)
        if unknown:
            fail(f'thresholds.{key_text(unknown[0])}', 'unknown field')
        limits = replace(Thresholds(), **thresholds).validated(f'{where}: thresholds')
        solver = data.get('solver', {}) or {}
        if not isinstance(solver, dict):
            fail('solver', 'expected a mapping of solve_pose options')
        if 'min_confidence' in solver:
            fail('solver.min_confidence', 'set thresholds.min_keypoint_confidence instead')
        for name in sorted(solver, key=str):
            reason = option_error(name, solver[name])
            if reason:
                fail('solver', reason)
        refine = data.get('refine_iou_below', cls.refine_iou_below)
        if isinstance(refine, bool) or not isinstance(refine, (int, float)) \
                or not 0.0 <= refine <= 1.0:
            fail('refine_iou_below', f'expected a number in [0, 1], got {refine!r}')
        candidates = data.get('search_candidates', cls.search_candidates)
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            fail('search_candidates', f'expected an integer >= 1, got {candidates!r}')
        relative = data.get('search_relative_score', cls.search_relative_score)
        if isinstance(relative, bool) or not isinstance(relative, (int, float)) \
                or not 0.0 <= relative <= 1.0:
            fail('search_relative_score', f'expected a number in [0, 1], got {relative!r}')
        contour = data.get('contour_search_px', list(cls.contour_search_px))
        if not isinstance(contour, list) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 50
                for v in contour):
            fail('contour_search_px', 'expected a list of pixel ranges in (0, 50] ([] disables), '
                 f'got {contour!r}')
        balance = data.get('contour_balance', cls.contour_balance)
        if isinstance(balance, bool) or not isinstance(balance, (int, float)) \
                or not 0 < balance < math.inf:
            fail('contour_balance', f'expected a number > 0, got {balance!r}')
        starts = data.get('contour_depth_starts', list(cls.contour_depth_starts))
        if not isinstance(starts, list) or not starts or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.5 <= v <= 2
                for v in starts):
            fail('contour_depth_starts', 'expected a non-empty list of depth factors in '
                 f'[0.5, 2] ([1.0]: one start), got {starts!r}')
        return cls(objects=tuple(objects),
                   detector_path=_resolve(base, detector) if detector else None,
                   device=device, thresholds=limits, solver=dict(solver),
                   refine_iou_below=float(refine), search_candidates=candidates,
                   search_relative_score=float(relative),
                   contour_search_px=tuple(float(v) for v in contour),
                   contour_balance=float(balance),
                   contour_depth_starts=tuple(float(v) for v in starts), source=source)

    def check_files(self) -> None:
        """Raise PipelineConfigError naming the field of the first file that does not exist."""
        where = self.source if self.source is not None else '<config>'
        fields = [(f'objects[{i}].{key}', path) for i, entry in enumerate(self.objects)
                  for key, path in (('object', entry.object_path),
                                    ('keypoint_model', entry.keypoint_model_path),
                                    ('detector', entry.detector_path)) if path is not None]
        if self.detector_path is not None:
            fields.append(('detector', self.detector_path))
        for name, path in fields:
            if not Path(path).is_file():
                raise PipelineConfigError(f'{where}: {name}: file not found: {path} (relative '
                                          "paths are taken from the config file's folder)")


def _resolve(base, path):
    """Return `path` if absolute, else `base / path` resolved."""
    path = Path(path)
    return path if path.is_absolute() else (Path(base) / path).resolve()
