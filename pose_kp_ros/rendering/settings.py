"""Scene settings of `pose-kp render` (saved with every dataset in render_config.yaml).

The meaning of every field, with its default, is in docs/custom_object.md ("What a scene is made
of") and, for scenes of several objects, docs/dataset_format.md.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

COLOUR_FIELDS = ('object_saturation', 'object_brightness', 'object_hue_shift_deg')
"""The colour settings an entry of `object_colours` may override for one object."""
MAX_OBJECTS_PER_SCENE = 255
"""Instance ids are stored in an 8-bit mask image (0: no labelled instance)."""


@dataclass
class RenderSettings:
    """Parameters of the random scenes (saved with every dataset in render_config.yaml)."""

    distance_m: tuple = (0.45, 1.5)
    centre_outside: float = 0.1
    min_visible_fraction: float = 0.3
    distractor_count: tuple = (0, 6)
    occluder_probability: float = 0.5
    visibility_tolerance: float = 0.04
    """A keypoint is occluded if the depth buffer is nearer than its depth by this x diameter."""
    max_attempts: int = 50
    upright_axis: tuple = None
    """Object-frame axis that points up when the object stands on a table (None: no such pose)."""
    upright_probability: float = 0.0
    elevation_deg: tuple = (10.0, 80.0)
    upright_tilt_deg: float = 10.0
    camera_roll_deg: float = 20.0
    near_distractor_probability: float = 0.0
    low_occluder_probability: float = 0.0
    """An upright object's occluder is lowered along the up axis to hide its lower part."""
    object_saturation: tuple = (1.0, 2.2)
    object_brightness: tuple = (0.8, 1.3)
    object_hue_shift_deg: tuple = (0.0, 0.0)
    object_colours: dict = None
    """{object name: {colour field: (low, high)}}: that object's own colour ranges."""
    object_metallic: tuple = None
    """Each object's PBR metallic factor uniform in (low, high) (None: the mesh's own, 0.2)."""
    object_roughness: tuple = None
    """Each object's PBR roughness factor uniform in (low, high) (None: the mesh's own, 0.8)."""
    objects_per_scene: tuple = (1, 1)
    """How many of the listed objects one scene shows (at most as many as are listed)."""
    table_spacing: tuple = (0.6, 1.1)
    """Centre distance of neighbours on the table / the sum of their outline radii."""
    table_probability: float = 0.0
    """A table top of random colour is drawn under the objects that stand on a table."""
    shadow_probability: float = 0.0
    """A scene's lights cast shadows (on the table top, objects, distractors; shadows.py)."""
    texture_probability: float = 0.0
    """The background and the table top each get a procedural pattern (textures.py), no photo."""
    sequence_length: int = 1
    """Frames per video: > 1 renders videos of one scene each (rendering/sequence.py)."""
    sequence_sweep_deg: tuple = (10.0, 30.0)
    """How far the camera orbits the first object over one video, degrees (low, high)."""

    def __post_init__(self):
        """Check the fields (ValueError naming the field)."""
        if self.upright_probability > 0 and self.upright_axis is None:
            raise ValueError('upright_probability > 0 needs upright_axis (the object-frame axis '
                             'that points up when it stands on a table)')
        if self.upright_axis is not None:
            axis = np.asarray(self.upright_axis, dtype=np.float64)
            if axis.shape != (3,) or not np.isfinite(axis).all() or np.linalg.norm(axis) == 0:
                raise ValueError(f'upright_axis must be a non-zero 3-vector, got '
                                 f'{self.upright_axis}')
        for name in ('upright_probability', 'near_distractor_probability',
                     'occluder_probability', 'low_occluder_probability',
                     'min_visible_fraction', 'table_probability', 'shadow_probability',
                     'texture_probability'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        for name in ('distance_m', 'distractor_count', 'elevation_deg', 'object_saturation',
                     'object_brightness', 'objects_per_scene', 'table_spacing'):
            check_range(name, getattr(self, name))
        if not isinstance(self.sequence_length, int) or self.sequence_length < 1:
            raise ValueError(f'sequence_length must be an integer >= 1, got '
                             f'{self.sequence_length!r}')
        check_range('sequence_sweep_deg', self.sequence_sweep_deg)
        for name in ('object_metallic', 'object_roughness'):
            values = getattr(self, name)
            if values is not None:
                check_range(name, values)
                if values[1] > 1:
                    raise ValueError(f'{name} must lie in [0, 1], got {list(values)}')
        low, high = self.objects_per_scene
        if low < 1 or high > MAX_OBJECTS_PER_SCENE:
            raise ValueError(f'objects_per_scene must lie in [1, {MAX_OBJECTS_PER_SCENE}], got '
                             f'{list(self.objects_per_scene)}')
        if self.table_spacing[1] == 0:
            raise ValueError('table_spacing must not be [0, 0]')
        self.object_colours = {
            name: colour_ranges(name, ranges) for name, ranges in (self.object_colours or {})
            .items()} or None

    def check_objects(self, names: Sequence[str]) -> None:
        """Raise ValueError unless object `names` are unique and include `object_colours`'s."""
        if not names or len(set(names)) != len(names):
            raise ValueError(f'objects to render must be given once each, got {list(names)}')
        unknown = sorted(set(self.object_colours or {}) - set(names))
        if unknown:
            raise ValueError(f'object_colours names objects not rendered: {unknown}')

    def colour_ranges(self, object_name: str) -> tuple[tuple[float, float], ...]:
        """Return the (saturation, brightness, hue shift in degrees) ranges of one object."""
        own = (self.object_colours or {}).get(object_name, {})
        return tuple(own.get(field, getattr(self, field)) for field in COLOUR_FIELDS)

    def to_dict(self) -> dict:
        """Return the settings as plain YAML-friendly types."""
        return {key: _plain(value) for key, value in asdict(self).items()}


def check_range(name: str, values: Sequence[float]) -> None:
    """Raise ValueError unless `values` is [low, high] with 0 <= low <= high."""
    low, high = values
    if not 0 <= low <= high:
        raise ValueError(f'{name} must be [low, high] with 0 <= low <= high, got {list(values)}')


def colour_ranges(object_name: str, ranges: dict) -> dict[str, tuple[float, ...]]:
    """Return one `object_colours` entry checked, its ranges as tuples (ValueError naming it)."""
    where = f'object_colours.{object_name}'
    if not isinstance(ranges, dict) or not ranges:
        raise ValueError(f'{where} must map some of {list(COLOUR_FIELDS)} to [low, high]')
    unknown = sorted(set(ranges) - set(COLOUR_FIELDS))
    if unknown:
        raise ValueError(f'{where}: unknown field(s) {unknown}; known: {list(COLOUR_FIELDS)}')
    checked = {}
    for field, values in ranges.items():
        values = tuple(values)
        if field != 'object_hue_shift_deg':
            check_range(f'{where}.{field}', values)
        elif len(values) != 2 or values[0] > values[1]:
            raise ValueError(f'{where}.{field} must be [low, high] degrees with low <= high')
        checked[field] = values
    return checked


def _plain(value):
    """Return `value` with tuples as lists, inside dicts too (for YAML)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return list(value) if isinstance(value, tuple) else value
