"""Random synthetic scenes of one object: pose, lights, distractors, background, camera noise.

Everything random in sample `index` comes from `numpy.random.default_rng([seed, index])`, so a
sample is the same whichever process renders it and in whatever order. A drawn scene whose object
is less than `min_visible_fraction` visible is redrawn from the same stream.

Sampling (documented in docs/custom_object.md):
- rotation uniform on SO(3) (random unit quaternion), or, with `upright_probability`, the object
  standing on its `upright_axis` (tilted up to `upright_tilt_deg`, any yaw) seen from a camera
  `elevation_deg` above the supporting plane with up to `camera_roll_deg` roll; object centre
  depth uniform in `distance_m`; its pixel uniform over the image widened by `centre_outside` on
  each side, so objects may be cut by the image border;
- ambient light plus 1-3 directional or point lights of random direction, colour and intensity;
- `distractor_count` distractors (primitives of random colour and size, and other meshes such as
  the other LM-O objects), one of them placed between the camera and the object with
  `occluder_probability`, each of the others beside the object (clutter, within
  `NEAR_OFFSET_DIAMETERS`) with `near_distractor_probability`, else anywhere in view;
- the object's saturation and brightness scaled (`object_saturation`, `object_brightness`) and
  its hue shifted (`object_hue_shift_deg`, (low, high) degrees): scanned vertex colours are
  duller than photos;
- a random crop of a real photo behind everything, then colour jitter, blur, noise, JPEG.
"""

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
import trimesh

from pose_kp_ros.geometry.camera import project
from pose_kp_ros.geometry.mesh import load_mesh
from pose_kp_ros.rendering.backgrounds import load_photos, random_background
from pose_kp_ros.rendering.camera_noise import apply_camera_noise, random_jpeg_quality
from pose_kp_ros.rendering.mesh import mesh_diameter
from pose_kp_ros.rendering.renderer import Light, Placement, SceneRenderer

PRIMITIVE_COPIES = 2
"""How many instances of each primitive shape a scene may hold."""
SAME_SURFACE_M = 1e-4
"""Depth difference (metres) below which two depth buffers see the same surface."""
SMOOTH = ('sphere', 'capsule', 'torus')
"""Primitives shaded with smooth normals (the others have sharp edges)."""
AREA_ZOOM = 3
"""The amodal area of a border-cut object is measured in a view zoomed out by this factor."""
NEAR_OFFSET_DIAMETERS = (1.2, 0.6)
"""A near distractor's centre is within these (sideways, depth) offsets x the object diameter."""


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
                     'min_visible_fraction'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        for name in ('distance_m', 'distractor_count', 'elevation_deg', 'object_saturation',
                     'object_brightness'):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f'{name} must be [low, high] with 0 <= low <= high, got '
                                 f'{list(getattr(self, name))}')

    def to_dict(self):
        """Return the settings as plain YAML-friendly types."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}


class SampleRejectedError(RuntimeError):
    """No scene with enough of the object visible was found within max_attempts."""


def primitive_meshes():
    """Return {key: unit-size trimesh primitive}: box, sphere, cylinder, capsule, cone, torus."""
    shapes = {
        'box': trimesh.creation.box(extents=(1.0, 1.0, 1.0)),
        'sphere': trimesh.creation.icosphere(subdivisions=2, radius=0.5),
        'cylinder': trimesh.creation.cylinder(radius=0.5, height=1.0, sections=24),
        'capsule': trimesh.creation.capsule(height=0.5, radius=0.25, count=(16, 16)),
        'cone': trimesh.creation.cone(radius=0.5, height=1.0, sections=24),
        'torus': trimesh.creation.torus(major_radius=0.35, minor_radius=0.15),
    }
    return {f'{name}{copy}': mesh.copy() for name, mesh in shapes.items()
            for copy in range(PRIMITIVE_COPIES)}


def random_rotation(rng):
    """Return a rotation (3, 3) drawn uniformly on SO(3) (normalised Gaussian quaternion)."""
    return Rotation.from_quat(rng.normal(size=4)).as_matrix()


def rotation_between(a, b):
    """Return the rotation (3, 3) turning unit vector a (3,) onto unit vector b (3,)."""
    axis = np.cross(a, b)
    sine, cosine = np.linalg.norm(axis), float(np.dot(a, b))
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        perpendicular = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * perpendicular / np.linalg.norm(perpendicular)
                                    ).as_matrix()
    return Rotation.from_rotvec(axis / sine * np.arctan2(sine, cosine)).as_matrix()


def upright_rotation(rng, upright_axis, elevation_deg, tilt_deg, roll_deg):
    """Return an object-to-camera rotation (3, 3) of an object standing on a table.

    The object's `upright_axis` (object frame) points up (world +z), tilted by up to `tilt_deg`,
    with uniform yaw; the camera looks down at `elevation_deg` (low, high) above the horizontal,
    rolled about its optical axis by up to +-`roll_deg`.
    """
    axis = np.asarray(upright_axis, dtype=np.float64)
    world_from_object = rotation_between(axis / np.linalg.norm(axis), np.array([0.0, 0.0, 1.0]))
    tilt_axis = rng.normal(size=3)
    tilt = Rotation.from_rotvec(tilt_axis / np.linalg.norm(tilt_axis)
                                * np.radians(rng.uniform(0.0, tilt_deg))).as_matrix()
    yaw = Rotation.from_euler('z', rng.uniform(0.0, 2 * np.pi)).as_matrix()
    world_from_object = yaw @ world_from_object @ tilt
    elevation = np.radians(rng.uniform(*elevation_deg))
    forward = np.array([np.cos(elevation), 0.0, -np.sin(elevation)])
    down = np.array([0.0, 0.0, -1.0]) - np.sin(elevation) * forward
    down /= np.linalg.norm(down)
    camera_from_world = np.stack([np.cross(down, forward), down, forward])
    roll = Rotation.from_euler('z', np.radians(rng.uniform(-roll_deg, roll_deg))).as_matrix()
    return roll @ camera_from_world @ world_from_object


def occluder_position(rng, object_centre_cam, diameter, up_cam=None, low_probability=0.0):
    """Return an occluder's centre (3,) metres, camera frame: 55-85% of the way to the object.

    Offset sideways by up to 0.5 diameter (scaled to its depth); with `low_probability` (and the
    object's up axis `up_cam` (3,) known) lowered by 0.2-0.6 diameter along it, as something on
    the table in front hides the object's lower part. No extra random draw when
    `low_probability` is 0 (datasets rendered before the option stay reproducible).
    """
    fraction = rng.uniform(0.55, 0.85)
    offset = rng.uniform(-0.5, 0.5, size=2) * diameter * fraction
    position = object_centre_cam * fraction + np.array([*offset, 0.0])
    if up_cam is not None and low_probability > 0 and rng.random() < low_probability:
        position = position - np.asarray(up_cam) * rng.uniform(0.2, 0.6) * diameter * fraction
    return position


def project_points(points_obj, R, t, K):
    """Project object points (N, 3) metres with pose (R, t) and K; return uv (N, 2), z (N,)."""
    points_cam = points_obj @ np.asarray(R).T + np.asarray(t)
    return project(points_cam, K), points_cam[:, 2]


def keypoint_visibility(uv, z, depth, tolerance_m):
    """Return visibility flags (N,) int: 2 visible, 1 in the image but occluded, 0 outside.

    uv (N, 2) pixels (OpenCV centre convention), z (N,) keypoint depths in metres, depth (H, W)
    the rendered depth buffer (0 = no surface). A keypoint is occluded when the surface seen at its
    pixel is nearer than z - tolerance_m (by a distractor or by the object itself).
    """
    height, width = depth.shape
    pixel = np.rint(uv).astype(np.int64)
    inside = ((pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0)
              & (pixel[:, 1] < height) & (z > 0))
    seen = np.zeros(len(uv), dtype=np.float64)
    seen[inside] = depth[pixel[inside, 1], pixel[inside, 0]]
    occluded = inside & (seen > 0) & (seen < z - tolerance_m)
    return np.where(inside, np.where(occluded, 1, 2), 0)


def visible_box(mask):
    """Return the tight box [x0, y0, x1, y1] (pixel edges) of a boolean mask (H, W), or None."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return None
    return [float(cols[0]) - 0.5, float(rows[0]) - 0.5, float(cols[-1]) + 0.5,
            float(rows[-1]) + 0.5]


def object_colour_jitter(rng, rgb, mask, saturation, brightness, hue_shift_deg):
    """Scale saturation and brightness and shift the hue of the object's pixels (mask).

    saturation, brightness: (low, high) factors; hue_shift_deg: (low, high) degrees added.
    Scanned vertex colours are duller than most cameras see the object (LM-O driller: median HSV
    saturation 18/255 and value 119/255 in the mesh, 62 and 52 in the photos); rgb (H, W, 3) uint8
    RGB, returns a new array.
    """
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(*hue_shift_deg) / 2.0, 180.0)
    hsv[..., 1] *= rng.uniform(*saturation)
    hsv[..., 2] *= rng.uniform(*brightness)
    jittered = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return np.where(mask[..., None], jittered, rgb)


class SampleRenderer:
    """Renders annotated random scenes of one object; one instance per process.

    model: `ObjectModel` with a mesh; K (3, 3) pixels; size (width, height); distractor_meshes:
    mesh files or `pkgdata:` references (metres, or millimetre meshes with `mesh_scale` 0.001 given
    as (path, scale) pairs); photos: background RGB arrays (default: the packaged photos).
    """

    def __init__(self, model, K, size, distractor_meshes=(), settings=None, photos=None):
        self.model = model
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = size
        self.settings = settings or RenderSettings()
        mesh = load_mesh(model.resolve_mesh_path(), model.mesh_scale)
        self.centre = mesh.bounds.mean(axis=0)
        self.diameter = model.diameter
        self.renderer = SceneRenderer(self.width, self.height)
        self.renderer.add_mesh('object', mesh)
        self.primitives = primitive_meshes()
        for key, primitive in self.primitives.items():
            self.renderer.add_mesh(key, primitive, smooth=key.rstrip('0123456789') in SMOOTH)
        self.distractors = {}
        for number, (path, scale) in enumerate(distractor_meshes):
            distractor = load_mesh(path, scale)
            distractor.apply_translation(-distractor.bounds.mean(axis=0))
            key = f'mesh{number}'
            self.renderer.add_mesh(key, distractor)
            self.distractors[key] = mesh_diameter(distractor.vertices)
        self.photos = load_photos() if photos is None else photos
        axis = self.settings.upright_axis
        self._up_axis = None if axis is None else np.asarray(axis, float) / np.linalg.norm(axis)

    def _object_pose(self, rng):
        """Draw the object's pose: R (3, 3), t (3,) metres (object-to-camera), upright (bool)."""
        settings = self.settings
        upright = rng.random() < settings.upright_probability
        if upright:
            R = upright_rotation(rng, settings.upright_axis, settings.elevation_deg,
                                 settings.upright_tilt_deg, settings.camera_roll_deg)
        else:
            R = random_rotation(rng)
        depth = rng.uniform(*self.settings.distance_m)
        margin = self.settings.centre_outside
        u = rng.uniform(-margin, 1.0 + margin) * self.width
        v = rng.uniform(-margin, 1.0 + margin) * self.height
        centre_cam = depth * np.linalg.solve(self.K, np.array([u, v, 1.0]))
        return R, centre_cam - R @ self.centre, upright

    def _distractor_placements(self, rng, object_centre_cam, up_cam=None):
        """Draw distractors: primitives and meshes at random poses, one maybe as an occluder.

        up_cam: (3,) the upright object's up axis in the camera frame, or None.
        """
        low, high = self.settings.distractor_count
        keys = list(self.primitives) + list(self.distractors)
        count = min(int(rng.integers(low, high + 1)), len(keys))
        placements = []
        for number, index in enumerate(rng.permutation(len(keys))[:count]):
            key = keys[index]
            if number == 0 and rng.random() < self.settings.occluder_probability:
                position = occluder_position(rng, object_centre_cam, self.diameter, up_cam,
                                             self.settings.low_occluder_probability)
                size_factor = (0.15, 0.5)
            elif rng.random() < self.settings.near_distractor_probability:
                sideways, depth = NEAR_OFFSET_DIAMETERS
                offset = rng.uniform(-1.0, 1.0, size=3) * self.diameter * np.array(
                    [sideways, sideways, depth])
                position = object_centre_cam + offset
                size_factor = (0.2, 0.8)
            else:
                pixel = rng.uniform((0.0, 0.0), (self.width, self.height))
                position = rng.uniform(0.35, 2.0) * np.linalg.solve(self.K, [*pixel, 1.0])
                size_factor = (0.2, 1.0)
            if key in self.primitives:
                scale = tuple(rng.uniform(*size_factor, size=3) * self.diameter)
                colour = (*rng.uniform(0.05, 1.0, size=3), 1.0)
            else:
                scale = (rng.uniform(0.8, 1.5),) * 3
                colour = None
            placements.append(Placement(key, random_rotation(rng), position, scale, colour))
        return placements

    def _lights(self, rng, object_centre_cam):
        """Draw the ambient light (3,) and 1-3 directional or point lights."""
        ambient = rng.uniform(0.05, 0.5) * rng.uniform(0.8, 1.0, size=3)
        lights = []
        for _ in range(int(rng.integers(1, 4))):
            colour = tuple(1.0 - rng.uniform(0.0, 0.3, size=3))
            direction = rng.normal(size=3)
            direction[2] = abs(direction[2]) + 0.3  # shine away from the camera, onto the scene
            if rng.random() < 0.6:
                lights.append(Light('directional', colour, rng.uniform(1.0, 6.0),
                                    direction=tuple(direction)))
            else:
                distance = rng.uniform(0.3, 1.5)
                position = object_centre_cam - distance * direction / np.linalg.norm(direction)
                lights.append(Light('point', colour, rng.uniform(1.0, 6.0) * distance ** 2,
                                    position=tuple(position)))
        return ambient, lights

    def _amodal_area(self, object_placement, object_depth):
        """Return the object's full silhouette area in pixels, parts outside the image included."""
        inside = object_depth > 0
        touches_border = (inside[0].any() or inside[-1].any() or inside[:, 0].any()
                          or inside[:, -1].any())
        if not touches_border:
            return float(inside.sum())
        zoom_K = self.K.copy()
        zoom_K[:2, :2] /= AREA_ZOOM
        zoom_K[0, 2] = (self.K[0, 2] - self.width / 2) / AREA_ZOOM + self.width / 2
        zoom_K[1, 2] = (self.K[1, 2] - self.height / 2) / AREA_ZOOM + self.height / 2
        _, zoom_depth = self.renderer.render(zoom_K, [object_placement], depth_only=True)
        return float((zoom_depth > 0).sum()) * AREA_ZOOM ** 2

    def render_sample(self, index, seed):
        """Render sample `index` of the dataset with `seed`.

        Returns (image (H, W, 3) uint8 RGB, visible mask (H, W) bool, instance dict with R, t,
        box_xyxy, keypoints_uvv and visible_fraction, JPEG quality). Raises SampleRejectedError.
        """
        rng = np.random.default_rng([seed, index])
        for _ in range(self.settings.max_attempts):
            R, t, upright = self._object_pose(rng)
            object_placement = Placement('object', R, t)
            object_centre_cam = R @ self.centre + t
            up_cam = R @ self._up_axis if upright else None
            placements = [object_placement] + self._distractor_placements(rng, object_centre_cam,
                                                                          up_cam)
            ambient, lights = self._lights(rng, object_centre_cam)
            _, object_depth = self.renderer.render(self.K, [object_placement], depth_only=True)
            if not (object_depth > 0).any():
                continue
            area = self._amodal_area(object_placement, object_depth)
            rgb, depth = self.renderer.render(self.K, placements, lights, ambient)
            mask = (object_depth > 0) & (depth >= object_depth - SAME_SURFACE_M)
            visible_fraction = min(1.0, mask.sum() / max(area, 1.0))
            if visible_fraction < self.settings.min_visible_fraction:
                continue
            rgb = object_colour_jitter(rng, rgb, mask, self.settings.object_saturation,
                                       self.settings.object_brightness,
                                       self.settings.object_hue_shift_deg)
            background = random_background(rng, self.photos, self.width, self.height)
            image = np.where((depth > 0)[..., None], rgb, background)
            image = apply_camera_noise(rng, image)
            uv, z = project_points(self.model.keypoints, R, t, self.K)
            visibility = keypoint_visibility(
                uv, z, depth, self.settings.visibility_tolerance * self.diameter)
            instance = {
                'object': self.model.name,
                'box_xyxy': visible_box(mask),
                'keypoints_uvv': [[round(float(u), 3), round(float(v), 3), int(flag)]
                                  for (u, v), flag in zip(uv, visibility)],
                'R': np.round(R, 9).tolist(),
                't': np.round(t, 7).tolist(),
                'visible_fraction': round(float(visible_fraction), 4),
            }
            return image, mask, instance, random_jpeg_quality(rng)
        raise SampleRejectedError(
            f'sample {index}: no scene with at least {self.settings.min_visible_fraction:.0%} '
            f'of the object visible in {self.settings.max_attempts} attempts')

    def close(self):
        """Release the renderer."""
        self.renderer.close()
