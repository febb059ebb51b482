"""Object model: named 3D keypoints (metres), optional PCA shape basis, mesh, diameter, symmetry.

The YAML format is documented in docs/object_config.md. Arrays are numpy float64.

Example:
    >>> import numpy as np
    >>> model = ObjectModel('cube', ['a', 'b', 'c', 'd'], np.eye(4, 3), diameter=1.5)
    >>> model.num_keypoints, model.num_basis
    (4, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
import re

import numpy as np
from numpy.typing import ArrayLike
import yaml

from pose_kp_ros.data.package_data import PKGDATA_SCHEME, PackageDataError, resolve_pkgdata
from pose_kp_ros.geometry.symmetry import Symmetry

NAME_PATTERN = re.compile(r'[a-z0-9_]+')


class ObjectModelError(ValueError):
    """An object model (YAML file or arrays) is invalid; the message names the file and field."""


@dataclass(eq=False)
class ObjectModel:
    """A rigid or deformable object described by N semantic keypoints.

    Attributes:
        name: object name, [a-z0-9_]+ (used in topic and TF frame names).
        keypoint_names: N unique names, in the network's heatmap order.
        keypoints: (N, 3) float64, object frame, metres; the mean shape B0.
        basis: (M, N, 3) float64 PCA basis shapes in metres, or None (M = 0).
        prior_scale: (M,) float64 standard deviation of each shape coefficient (empty if M = 0).
        diameter: largest distance between mesh vertices, metres (> 0).
        symmetric: True if ADD-S, not ADD, is the right error measure (always with symmetries).
        symmetries: discrete symmetries (geometry.symmetry.Symmetry, object frame, metres) that
            map the object onto itself; () when none is known.
        mesh_path: mesh as written in the YAML (relative, absolute or 'pkgdata:...'), or None.
        mesh_scale: factor from mesh units to metres (e.g. 0.001 for millimetres).
        source: the YAML file the model came from (relative mesh paths start there), or None.
    """

    name: str
    keypoint_names: tuple
    keypoints: np.ndarray
    basis: np.ndarray = None
    prior_scale: np.ndarray = None
    diameter: float = None
    symmetric: bool = False
    symmetries: tuple = ()
    mesh_path: str = None
    mesh_scale: float = 1.0
    source: Path = field(default=None, repr=False)

    def __post_init__(self):
        where = str(self.source) if self.source is not None else '<ObjectModel>'

        def fail(field_name, message):
            raise ObjectModelError(f'{where}: {field_name}: {message}')

        if not isinstance(self.name, str) or NAME_PATTERN.fullmatch(self.name) is None:
            fail('name', f'expected a name matching [a-z0-9_]+, got {self.name!r}')
        names = self.keypoint_names
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            fail('keypoint_names', f'expected a list of non-empty strings, got {names!r}')
        names = tuple(names)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            fail('keypoint_names', f'names must be unique, repeated: {duplicates}')
        self.keypoint_names = names
        self.keypoints = _float_array(self.keypoints, (len(names), 3), 'keypoints_m', fail)
        if len(names) < 4:
            fail('keypoint_names', f'at least 4 keypoints are needed for a pose, got {len(names)}')
        if self.basis is None:
            if self.prior_scale is not None and len(self.prior_scale) > 0:
                fail('shape_basis.prior_scale', 'given without shape_basis.basis_m')
            self.basis = np.zeros((0, len(names), 3))
            self.prior_scale = np.zeros(0)
        else:
            self.basis = _float_array(self.basis, (None, len(names), 3), 'shape_basis.basis_m',
                                      fail)
            self.prior_scale = _float_array(self.prior_scale, (len(self.basis),),
                                            'shape_basis.prior_scale', fail)
            if (self.prior_scale <= 0).any():
                fail('shape_basis.prior_scale', 'every standard deviation must be > 0')
        if not _positive_number(self.diameter):
            fail('diameter_m', f'expected a positive number of metres, got {self.diameter!r}')
        self.diameter = float(self.diameter)
        if not isinstance(self.symmetric, (bool, np.bool_)):
            fail('symmetric', f'expected true or false, got {self.symmetric!r}')
        self.symmetric = bool(self.symmetric)
        symmetries = []
        for i, symmetry in enumerate(self.symmetries or ()):
            try:
                symmetries.append(symmetry if isinstance(symmetry, Symmetry)
                                  else Symmetry.from_dict(symmetry))
            except ValueError as error:
                fail(f'symmetries[{i}]', str(error))
        self.symmetries = tuple(symmetries)
        if self.symmetries and not self.symmetric:
            fail('symmetric', 'an object with symmetries is evaluated with ADD-S: set it true '
                              'or leave it out')
        if self.mesh_path is not None and (not isinstance(self.mesh_path, str)
                                           or not self.mesh_path):
            fail('mesh', f'expected a path string, got {self.mesh_path!r}')
        if not _positive_number(self.mesh_scale):
            fail('mesh_scale', f'expected a positive number, got {self.mesh_scale!r}')
        self.mesh_scale = float(self.mesh_scale)

    @property
    def num_keypoints(self) -> int:
        """Return N, the number of keypoints."""
        return len(self.keypoint_names)

    @property
    def num_basis(self) -> int:
        """Return M, the number of PCA shape basis vectors (0 for a rigid model)."""
        return len(self.basis)

    def shape(self, coeffs: ArrayLike | None = None) -> np.ndarray:
        """Return keypoints (..., N, 3) metres for shape coefficients (..., M); mean if None."""
        if coeffs is None:
            return self.keypoints.copy()
        coeffs = np.asarray(coeffs, dtype=float)
        return self.keypoints + np.tensordot(coeffs, self.basis, axes=([-1], [0]))

    @classmethod
    def from_yaml(cls, path: Path | str) -> ObjectModel:
        """Load and validate a model from a YAML file; raise ObjectModelError naming the field."""
        path = Path(path)
        if not path.is_file():
            raise ObjectModelError(f'{path}: cannot read: file not found')
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as error:
            raise ObjectModelError(f'{path}: cannot read: {error}') from error
        except yaml.YAMLError as error:
            raise ObjectModelError(f'{path}: not valid YAML: {yaml_error_text(error)}') from None
        if not isinstance(data, dict):
            raise ObjectModelError(
                f'{path}: expected a mapping of fields, got {type(data).__name__}')
        known = {'name', 'keypoint_names', 'keypoints_m', 'diameter_m', 'symmetric',
                 'symmetries', 'mesh', 'mesh_scale', 'shape_basis'}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ObjectModelError(f'{path}: {key_text(unknown[0])}: unknown field '
                                   f'(known: {sorted(known)})')
        for required in ('name', 'keypoint_names', 'keypoints_m', 'diameter_m'):
            if required not in data:
                raise ObjectModelError(f'{path}: {required}: missing required field')
        shape_basis = data.get('shape_basis')
        basis = prior_scale = None
        if shape_basis is not None:
            if not isinstance(shape_basis, dict) or set(shape_basis) != {'basis_m', 'prior_scale'}:
                raise ObjectModelError(
                    f'{path}: shape_basis: expected a mapping with basis_m and prior_scale')
            basis, prior_scale = shape_basis['basis_m'], shape_basis['prior_scale']
        names = data['keypoint_names']
        if not isinstance(names, list):
            raise ObjectModelError(f'{path}: keypoint_names: expected a list, got {names!r}')
        model = cls(name=data['name'], keypoint_names=names, keypoints=data['keypoints_m'],
                    basis=basis, prior_scale=prior_scale, diameter=data['diameter_m'],
                    symmetric=data.get('symmetric', bool(data.get('symmetries'))),
                    symmetries=_symmetry_list(data.get('symmetries'), path),
                    mesh_path=data.get('mesh'),
                    mesh_scale=data.get('mesh_scale', 1.0), source=path)
        _check_units(model, path)
        return model

    def to_yaml(self, path: Path | str) -> None:
        """Write the model as YAML (format of docs/object_config.md) to path."""
        data = {'name': self.name, 'keypoint_names': list(self.keypoint_names),
                'keypoints_m': _rounded(self.keypoints), 'diameter_m': self.diameter,
                'symmetric': self.symmetric}
        if self.symmetries:
            data['symmetries'] = [symmetry.to_dict() for symmetry in self.symmetries]
        if self.mesh_path is not None:
            data['mesh'] = self.mesh_path
            data['mesh_scale'] = self.mesh_scale
        if self.num_basis > 0:
            data['shape_basis'] = {'basis_m': _rounded(self.basis),
                                   'prior_scale': _rounded(self.prior_scale)}
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))

    def resolve_mesh_path(self) -> Path | None:
        """Return the mesh file as an absolute Path, or None if the model has no mesh.

        'pkgdata:<package>/<path>' names a file inside an installed Python package, located
        with importlib.util.find_spec (the package is not imported). A relative path is taken
        from the YAML's folder (the current directory for models built from arrays).
        Raises ObjectModelError if the package or the file does not exist.
        """
        if self.mesh_path is None:
            return None
        where = f'{self.source if self.source is not None else "<ObjectModel>"}: mesh'
        if self.mesh_path.startswith(PKGDATA_SCHEME):
            try:
                path = resolve_pkgdata(self.mesh_path)
            except PackageDataError as error:
                raise ObjectModelError(f'{where}: {error}') from None
        else:
            path = Path(self.mesh_path).expanduser()
            if not path.is_absolute():
                base = self.source.parent if self.source is not None else Path.cwd()
                path = base / path
        if not path.is_file():
            raise ObjectModelError(f'{where}: file not found: {path}')
        return path.resolve()


MAX_DIAMETER_M = 100.0
"""Larger diameter_m values are taken for millimetres (or other wrong units) in a YAML file."""


def _check_units(model, path):
    """Raise ObjectModelError when sizes look like millimetres rather than metres.

    Keypoints lie on the object, so their spread (largest pairwise distance) is at most about
    diameter_m (a category's mean shape: less); a spread far above or below it, or a diameter
    above MAX_DIAMETER_M, means mixed or wrong units.
    """
    points = model.keypoints
    spread = float(np.linalg.norm(points[:, None] - points[None], axis=-1).max())
    if model.diameter > MAX_DIAMETER_M:
        raise ObjectModelError(f'{path}: diameter_m: {model.diameter:g} m is above '
                               f'{MAX_DIAMETER_M:g} m: sizes must be in metres, not millimetres')
    if spread > 1.5 * model.diameter:
        raise ObjectModelError(f'{path}: keypoints_m: keypoints span {spread:g} m but diameter_m '
                               f'is {model.diameter:g} m: both must be in metres')
    if spread < 0.01 * model.diameter:
        raise ObjectModelError(f'{path}: keypoints_m: keypoints span only {spread:g} m of '
                               f'diameter_m {model.diameter:g} m: both must be in metres, and '
                               'keypoints spread over the object')


def key_text(key: object) -> str:
    """Return a YAML mapping key for a one-line message (repr unless plain printable text)."""
    return key if isinstance(key, str) and key.isprintable() and key.strip() else repr(key)


def yaml_error_text(error: yaml.YAMLError) -> str:
    """Return a one-line description of a yaml.YAMLError ('line L, column C: problem')."""
    mark = getattr(error, 'problem_mark', None)
    problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
    where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark is not None else ''
    return f'{where}{problem}'


def _rounded(array):
    """Return array as nested lists rounded to 1e-10 (0.1 nm), for readable YAML."""
    return np.round(array, 10).tolist()


def _numeric(value):
    """Return True if value converts to a float numpy array."""
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _positive_number(value):
    """Return True for a finite int or float > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:  # an integer beyond the float range
        return False


def _symmetry_list(value, path):
    """Return the YAML's symmetries as a list (ObjectModel checks each entry)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ObjectModelError(f'{path}: symmetries: expected a list of {{axis, angle_deg, '
                               f'point_m}} mappings, got {value!r}')
    return value


def _float_array(value, shape, field_name, fail):
    """Return value as a finite float64 array of shape (None matches any size) or fail."""
    if value is None or not _numeric(value):
        fail(field_name, f'expected {_shape_text(shape)} numbers, got {_describe(value)}')
    array = np.array(value, dtype=float)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape,
                                                                                 array.shape)):
        fail(field_name, f'expected {_shape_text(shape)} numbers, got {array.shape}')
    if not np.isfinite(array).all():
        fail(field_name, 'values must be finite (no NaN or inf)')
    return array


def _shape_text(shape):
    """Return '(N, 3)'-style text for a shape with None for free sizes."""
    return '(' + ', '.join('M' if s is None else str(s) for s in shape) + \
        (',)' if len(shape) == 1 else ')')


def _describe(value):
    """Return a short description of a bad value for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'
