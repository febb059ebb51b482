"""Random synthetic scenes of one or more objects: poses, table, lights, distractors, background.

Everything random in sample `index` comes from `numpy.random.default_rng([seed, index])`, so a
sample is the same whichever process renders it and in whatever order. A drawn scene whose first
object is less than `min_visible_fraction` visible is redrawn from the same stream.

Sampling, documented field by field in docs/custom_object.md ("What a scene is made of") and
docs/dataset_format.md: which objects (`objects_per_scene`); the first object's pose (uniform
on SO(3), or upright on a table seen from above) and pixel; the others side by side on the
table under it; the table top (a photo or a procedural pattern painted over its shading);
lights and shadows (lighting.py, shadows.py); distractors (an occluder, clutter beside the
object, others anywhere); each object's colours and material (appearance.py); a photo or a
pattern behind everything (backgrounds.py, textures.py); colour jitter, blur, noise, JPEG
(camera_noise.py).
With one object listed and no table top drawn, no draw is added to what lone-object scenes drew,
so datasets of one object render as they always did.
"""

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
import trimesh

from pose_kp_ros.geometry.mesh import load_mesh
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.rotations import random_rotations
from pose_kp_ros.rendering.appearance import object_colour_jitter, random_material
from pose_kp_ros.rendering.backgrounds import load_photos, random_background
from pose_kp_ros.rendering.camera_noise import (
    blur,
    colour_jitter,
    random_jpeg_quality,
    sensor_noise,
)
from pose_kp_ros.rendering.labels import instance_label, visible_mask
from pose_kp_ros.rendering.lighting import random_lights
from pose_kp_ros.rendering.mesh import mesh_diameter, primitive_meshes
from pose_kp_ros.rendering.poses import (
    camera_from_table,
    occluder_position,
    outline,
    plane_under,
    rest_on,
    side_by_side,
    table_rotation,
)
from pose_kp_ros.rendering.renderer import Placement, SceneRenderer
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.rendering.shadows import cast_shadows
from pose_kp_ros.rendering.textures import procedural_texture

SMOOTH = ('sphere', 'capsule', 'torus')
"""Primitives shaded with smooth normals (the others have sharp edges)."""
AREA_ZOOM = 3
"""The amodal area of a border-cut object is measured in a view zoomed out by this factor."""
NEAR_OFFSET_DIAMETERS = (1.2, 0.6)
"""A near distractor's centre is within these (sideways, depth) offsets x the object diameter."""
CAMERA_ABOVE_TABLE_M = 0.05
"""Scenes on a table top are redrawn unless the camera is at least this high above it."""
TABLE_SIDE_M = (0.6, 2.0)
"""Side length range of a drawn table top, metres."""
TABLE_THICKNESS_M = 0.03


class SampleRejectedError(RuntimeError):
    """No scene with enough of the object visible was found within max_attempts."""


class SampleRenderer:
    """Renders annotated random scenes of the listed objects; one instance per process.

    models: `ObjectModel`s with meshes and unique names (their order is the dataset's object
    order); K (3, 3) pixels; size (width, height); distractor_meshes: (mesh file or `pkgdata:`
    reference, scale to metres) pairs; photos: background RGB arrays (default: the packaged
    photos).
    """

    def __init__(self, models: Iterable[ObjectModel], K: ArrayLike, size: tuple[int, int],
                 distractor_meshes: Iterable[tuple[Path | str, float]] = (),
                 settings: RenderSettings | None = None,
                 photos: list[np.ndarray] | None = None) -> None:
        self.models = list(models)
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = size
        self.settings = settings or RenderSettings()
        self.settings.check_objects([model.name for model in self.models])
        self.renderer = SceneRenderer(self.width, self.height)
        self.centres, self._points = [], {}
        for number, model in enumerate(self.models):
            mesh = load_mesh(model.resolve_mesh_path(), model.mesh_scale)
            self.centres.append(mesh.bounds.mean(axis=0))
            self._add(f'object{number}', mesh)
        self.primitives = primitive_meshes()
        for key, primitive in self.primitives.items():
            self._add(key, primitive, smooth=key.rstrip('0123456789') in SMOOTH)
        self.distractors = {}
        for number, (path, scale) in enumerate(distractor_meshes):
            distractor = load_mesh(path, scale)
            distractor.apply_translation(-distractor.bounds.mean(axis=0))
            key = f'mesh{number}'
            self._add(key, distractor)
            self.distractors[key] = mesh_diameter(distractor.vertices)
        self._add('table', trimesh.creation.box(extents=(1.0, 1.0, 1.0)), smooth=False)
        self.photos = load_photos() if photos is None else photos
        axis = self.settings.upright_axis
        self._up_axis = None if axis is None else np.asarray(axis, float) / np.linalg.norm(axis)

    def _add(self, key, mesh, smooth=True):
        """Register a mesh with the renderer and keep its convex hull's vertices (V, 3)."""
        self.renderer.add_mesh(key, mesh, smooth=smooth)
        self._points[key] = np.asarray(mesh.convex_hull.vertices, dtype=np.float64)

    def _choose_objects(self, rng):
        """Return the model numbers of one scene, the first placed first (no draw for one)."""
        count = len(self.models)
        low, high = (min(bound, count) for bound in self.settings.objects_per_scene)
        if count == 1:
            return [0]
        shown = low if low == high else int(rng.integers(low, high + 1))
        return [int(number) for number in rng.permutation(count)[:shown]]

    def _first_pose(self, rng, number):
        """Draw the first object's pose.

        Returns R (3, 3), t (3,) metres (object-to-camera), the camera-from-table rotation
        (3, 3) if it stands on a table (else None) and its up axis (3,) in the camera frame (or
        None).
        """
        settings = self.settings
        table = up_cam = None
        if rng.random() < settings.upright_probability:
            table_from_object = table_rotation(rng, settings.upright_axis,
                                               settings.upright_tilt_deg)
            table = camera_from_table(rng, settings.elevation_deg, settings.camera_roll_deg)
            R = table @ table_from_object
            up_cam = R @ self._up_axis
        else:
            R = random_rotations(rng, 1)[0]
        depth = rng.uniform(*settings.distance_m)
        margin = settings.centre_outside
        u = rng.uniform(-margin, 1.0 + margin) * self.width
        v = rng.uniform(-margin, 1.0 + margin) * self.height
        centre_cam = depth * np.linalg.solve(self.K, np.array([u, v, 1.0]))
        return R, centre_cam - R @ self.centres[number], table, up_cam

    def _neighbours(self, rng, numbers, first, plane):
        """Draw the other objects' rotations and stand them beside the first on the table.

        numbers: model numbers; first: (number, R, t) of the first object. Returns a list of
        (number, R, t) for those that found room and stand in front of the camera.
        """
        settings = self.settings
        rotations = []
        for _ in numbers:
            if rng.random() < settings.upright_probability:
                rotations.append(plane.camera_from_table @ table_rotation(
                    rng, settings.upright_axis, settings.upright_tilt_deg))
            else:
                rotations.append(random_rotations(rng, 1)[0])
        first_number, first_R, first_t = first
        shapes = [outline(plane, (self._points[f'object{number}'] - self.centres[number]) @ R.T)
                  for number, R in zip([first_number, *numbers], [first_R, *rotations])]
        offsets = side_by_side(rng, shapes, settings.table_spacing)
        first_centre = first_R @ self.centres[first_number] + first_t
        placed = []
        for number, R, offset in zip(numbers, rotations, offsets[1:]):
            if offset is None:
                continue
            t = first_centre + plane.camera_from_table[:, :2] @ offset - R @ self.centres[number]
            t = t + rest_on(plane, self._points[f'object{number}'] @ R.T + t)
            if (R @ self.centres[number] + t)[2] > self.models[number].diameter:
                placed.append((number, R, t))
        return placed

    def _distractor_placements(self, rng, object_centre_cam, diameter, up_cam=None, plane=None):
        """Draw distractors: primitives and meshes at random poses, one maybe as an occluder.

        object_centre_cam (3,) metres and diameter (metres) of the first object; up_cam: (3,)
        its up axis in the camera frame when it stands upright, or None; plane: the table top
        (SupportPlane) near distractors stand on, or None.
        """
        low, high = self.settings.distractor_count
        keys = list(self.primitives) + list(self.distractors)
        count = min(int(rng.integers(low, high + 1)), len(keys))
        placements = []
        for number, index in enumerate(rng.permutation(len(keys))[:count]):
            key = keys[index]
            near = False
            if number == 0 and rng.random() < self.settings.occluder_probability:
                position = occluder_position(rng, object_centre_cam, diameter, up_cam,
                                             self.settings.low_occluder_probability)
                size_factor = (0.15, 0.5)
            elif rng.random() < self.settings.near_distractor_probability:
                sideways, depth = NEAR_OFFSET_DIAMETERS
                offset = rng.uniform(-1.0, 1.0, size=3) * diameter * np.array(
                    [sideways, sideways, depth])
                position = object_centre_cam + offset
                size_factor = (0.2, 0.8)
                near = True
            else:
                pixel = rng.uniform((0.0, 0.0), (self.width, self.height))
                position = rng.uniform(0.35, 2.0) * np.linalg.solve(self.K, [*pixel, 1.0])
                size_factor = (0.2, 1.0)
            if key in self.primitives:
                scale = tuple(rng.uniform(*size_factor, size=3) * diameter)
                colour = (*rng.uniform(0.05, 1.0, size=3), 1.0)
            else:
                scale = (rng.uniform(0.8, 1.5),) * 3
                colour = None
            R = random_rotations(rng, 1)[0]
            if near and plane is not None:
                position = position + rest_on(plane, (self._points[key] * scale) @ R.T
                                              + position)
            placements.append(Placement(key, R, position, scale, colour))
        return placements

    def _table_top(self, rng, object_centre_cam, plane):
        """Draw the table top under an object centre (3,) metres: a Placement of a flat box."""
        side = rng.uniform(*TABLE_SIDE_M)
        offset = rng.uniform(-0.3, 0.3, size=2) * side
        drop = object_centre_cam @ plane.up - plane.height + TABLE_THICKNESS_M / 2
        position = (object_centre_cam - drop * plane.up
                    + plane.camera_from_table[:, :2] @ offset)
        colour = (*rng.uniform(0.6, 1.0, size=3), 1.0)
        return Placement('table', plane.camera_from_table, position,
                         (side, side, TABLE_THICKNESS_M), colour)

    def _texture_table(self, rng, rgb, depth, table):
        """Paint a random photo over the table top's pixels, keeping their shading.

        rgb (H, W, 3) uint8 and depth (H, W) metres: the whole scene's render; table: the table
        top's Placement (rendered in a light colour). Returns the new rgb.
        """
        _, own_depth = self.renderer.render(self.K, [table], depth_only=True)
        photo = self._backdrop(rng)
        textured = np.clip(rgb.astype(np.float32) * photo / 255.0, 0, 255).astype(np.uint8)
        return np.where(visible_mask(own_depth, depth)[..., None], textured, rgb)

    def _backdrop(self, rng):
        """Return an (H, W, 3) uint8 background or table texture (a photo or a pattern).

        With `texture_probability` a procedural pattern replaces the photo; when it is 0 no draw
        is made for it, so scenes render as they did before the setting existed.
        """
        probability = self.settings.texture_probability
        if probability > 0 and rng.random() < probability:
            return procedural_texture(rng, self.width, self.height)
        return random_background(rng, self.photos, self.width, self.height)

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

    def draw_scene(self, rng: np.random.Generator) -> tuple | None:
        """Draw one scene: (objects [(number, R, t)], placements, ambient, lights), or None."""
        settings = self.settings
        chosen = self._choose_objects(rng)
        R, t, table, up_cam = self._first_pose(rng, chosen[0])
        if table is None and len(chosen) > 1:
            table = camera_from_table(rng, settings.elevation_deg, settings.camera_roll_deg)
        table_top = (table is not None and settings.table_probability > 0
                     and rng.random() < settings.table_probability)
        objects, plane = [(chosen[0], R, t)], None
        if len(chosen) > 1 or table_top:
            plane = plane_under(self._points[f'object{chosen[0]}'] @ R.T + t, table)
            if plane.height > -CAMERA_ABOVE_TABLE_M:
                return None
            objects += self._neighbours(rng, chosen[1:], objects[0], plane)
        centre = R @ self.centres[chosen[0]] + t
        placements = [Placement(f'object{number}', R, t, material=random_material(
            rng, settings.object_metallic, settings.object_roughness)) for number, R, t in objects]
        placements += self._distractor_placements(rng, centre, self.models[chosen[0]].diameter,
                                                  up_cam, plane)
        if table_top:
            placements.append(self._table_top(rng, centre, plane))
        ambient, lights = random_lights(rng, centre, settings.shadow_probability)
        return objects, placements, ambient, lights

    def label_instances(self, objects: list, depth: np.ndarray,
                        min_visible: float | None) -> tuple[np.ndarray, list | None]:
        """Return the instance id image (H, W) uint8 and [(number, R, t, mask, fraction)].

        Objects [(number, R, t)] are labelled in order where each is seen (at least one pixel);
        the list is None when the first is seen less than `min_visible` (a fraction; 0: not at
        all; None: never). depth: the whole scene's (H, W).
        """
        ids = np.zeros(depth.shape, np.uint8)
        labelled = []
        for number, R, t in objects:
            placement = Placement(f'object{number}', R, t)
            _, own_depth = self.renderer.render(self.K, [placement], depth_only=True)
            mask = visible_mask(own_depth, depth) & (ids == 0)
            if mask.any():
                fraction = min(1.0, mask.sum() / max(self._amodal_area(placement, own_depth),
                                                     1.0))
            else:
                fraction = 0.0
            if not labelled and min_visible is not None and fraction < max(min_visible, 1e-12):
                return ids, None
            if fraction > 0:
                ids[mask] = len(labelled) + 1
                labelled.append((number, R, t, mask, fraction))
        return ids, labelled

    def render_sample(self, index: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray, list[dict], int]:
        """Render sample `index` of the dataset with `seed` (a still image).

        Returns (image (H, W, 3) uint8 RGB, instance ids (H, W) uint8: 0 where no labelled
        object is seen, k where the k-th instance is, instances: list of dicts with object,
        box_xyxy, keypoints_uvv, R, t and visible_fraction (`instance_label`), JPEG quality).
        Raises SampleRejectedError.
        """
        rng = np.random.default_rng([seed, index])
        scene, rgb, depth, ids, labelled = self.render_scene(rng, f'sample {index}')
        return self.finish_sample(rgb, depth, ids, labelled, scene[1], rng)

    def render_scene(self, rng: np.random.Generator, what: str) -> tuple:
        """Draw and render a scene whose first object is seen enough; redraw until it is.

        Returns (scene as draw_scene's, rgb (H, W, 3) uint8, depth (H, W) metres, instance ids,
        labelled as label_instances'). Raises SampleRejectedError naming `what`.
        """
        for _ in range(self.settings.max_attempts):
            scene = self.draw_scene(rng)
            if scene is None:
                continue
            objects, placements, ambient, lights = scene
            unshadowed = [replace(light, casts_shadow=False) for light in lights]
            rgb, depth = self.renderer.render(self.K, placements, unshadowed, ambient)
            ids, labelled = self.label_instances(objects, depth,
                                                 self.settings.min_visible_fraction)
            if labelled is not None:  # shadows only for the scene kept: two renders a light
                if any(light.casts_shadow for light in lights):
                    rgb = cast_shadows(self.renderer, self.K, placements, lights, ambient, rgb,
                                       depth)
                return scene, rgb, depth, ids, labelled
        raise SampleRejectedError(
            f'{what}: no scene with at least {self.settings.min_visible_fraction:.0%} '
            f'of the first object visible in {self.settings.max_attempts} attempts')

    def finish_sample(self, rgb: np.ndarray, depth: np.ndarray, ids: np.ndarray,
                      labelled: list, placements: list, rng: np.random.Generator,
                      noise_rng: np.random.Generator | None = None,
                      colour_rngs: dict | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, list[dict], int]:
        """Paint a rendered scene and label it: render_sample's return value.

        Table texture, object colours, background photo, colour jitter and blur draw from
        `rng`; sensor noise and JPEG quality from `noise_rng` (None: rng); an object's colour
        from `colour_rngs[number]` where given (a video keeps each object's colour).
        """
        noise_rng = rng if noise_rng is None else noise_rng
        if placements[-1].key == 'table':
            rgb = self._texture_table(rng, rgb, depth, placements[-1])
        for number, _, _, mask, _ in labelled:
            saturation, brightness, hue = self.settings.colour_ranges(self.models[number].name)
            rgb = object_colour_jitter((colour_rngs or {}).get(number, rng), rgb, mask,
                                       saturation, brightness, hue)
        background = self._backdrop(rng)
        image = np.where((depth > 0)[..., None], rgb, background)
        image = sensor_noise(noise_rng, blur(rng, colour_jitter(rng, image)))
        tolerance = self.settings.visibility_tolerance
        instances = [instance_label(self.models[number], R, t, self.K, depth, mask, fraction,
                                    tolerance * self.models[number].diameter)
                     for number, R, t, mask, fraction in labelled]
        return image, ids, instances, random_jpeg_quality(noise_rng)

    def close(self) -> None:
        """Release the renderer."""
        self.renderer.close()
