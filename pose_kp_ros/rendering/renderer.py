"""Offscreen rendering on CPU (pyrender + OSMesa) in OpenCV camera conventions.

Poses are object-to-camera (R, t) in the OpenCV optical frame (x right, y down, z forward),
metres. Intrinsics K follow OpenCV's pixel-centre convention; pyrender/OpenGL put pixel centres at
half-integers, so the principal point is passed as (cx + 0.5, cy + 0.5), which makes renders agree
with `cv2.projectPoints` of the mesh (regression test: test/unit/rendering/test_renderer.py).

`PYOPENGL_PLATFORM=osmesa` must be set before PyOpenGL is imported; importing this module sets it
unless the caller chose a platform already (e.g. 'egl' on a machine with a GPU).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import functools
import os
from typing import TYPE_CHECKING

import numpy as np

from pose_kp_ros.rendering.shadows import cast_shadows

if TYPE_CHECKING:
    import trimesh

os.environ.setdefault('PYOPENGL_PLATFORM', 'osmesa')

_OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
Z_NEAR_M = 0.02
Z_FAR_M = 20.0


class RendererUnavailableError(RuntimeError):
    """pyrender or libOSMesa is missing: run scripts/install_renderer_deps.sh."""


@functools.lru_cache(maxsize=1)
def renderer_unavailable_reason() -> str | None:
    """Return None if offscreen rendering works here, else a one-line reason."""
    try:
        import pyrender
        renderer = pyrender.OffscreenRenderer(8, 8)
        renderer.delete()
    except Exception as error:  # ImportError, missing libOSMesa, no GL context...
        return (f'offscreen renderer unavailable ({type(error).__name__}: {error}); '
                'run scripts/install_renderer_deps.sh')
    return None


def _stable_context_ids():
    """Make PyOpenGL's current-context id compare by value (fixes a leak under OSMesa).

    Under OSMesa, `OpenGL.contextdata.getContext()` returns a new ctypes pointer object on every
    call; such objects hash alike but never compare equal, so pyrender's shader-program cache
    (keyed by the context id) misses on every draw and compiles new programs: about 3 MB leaked
    and a recompile per render. Returning the pointer's integer address fixes the key.
    """
    import ctypes

    import OpenGL.contextdata as contextdata
    if getattr(contextdata.getContext, 'returns_address', False):
        return
    original = contextdata.getContext

    def get_context(context=None):
        context = original(context)
        if isinstance(context, ctypes._Pointer):
            return ctypes.cast(context, ctypes.c_void_p).value
        return context

    get_context.returns_address = True
    contextdata.getContext = get_context


@dataclass
class Light:
    """A light in the camera's OpenCV frame.

    kind: 'directional' (shines along `direction`) or 'point' (at `position`, metres).
    colour: (3,) RGB in [0, 1]; intensity: lux for directional, candela for point lights.
    casts_shadow: the surfaces it does not reach are rendered without it (shadows.py).
    """

    kind: str
    colour: tuple
    intensity: float
    direction: tuple = (0.0, 0.0, 1.0)
    position: tuple = (0.0, 0.0, 0.0)
    casts_shadow: bool = False


@dataclass
class Placement:
    """One mesh instance in the camera's OpenCV frame.

    key: name given to `SceneRenderer.add_mesh`; R (3, 3), t (3,) metres: mesh-to-camera;
    scale: (3,) per-axis factor on the mesh; colour: (4,) RGBA base colour or None (mesh's own);
    material: (metallic, roughness) PBR factors in [0, 1], either None for the mesh's own
    (pyrender gives vertex-coloured meshes 0.2 / 0.8), or None for both.
    """

    key: str
    R: np.ndarray
    t: np.ndarray
    scale: tuple = (1.0, 1.0, 1.0)
    colour: tuple = None
    material: tuple = None


def _pose_matrix(R, t, scale=(1.0, 1.0, 1.0)):
    """Return the 4x4 OpenGL-camera-frame matrix of an OpenCV-frame pose (R, t) with scale."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(R, dtype=np.float64) * np.asarray(scale, dtype=np.float64)
    matrix[:3, 3] = t
    return _OPENCV_TO_OPENGL @ matrix


def _light_matrix(light):
    """Return the 4x4 OpenGL-frame pose of a light (pyrender lights shine along their -z axis)."""
    direction = np.asarray(light.direction, dtype=np.float64)
    direction = direction / np.linalg.norm(direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x_axis = np.cross(helper, -direction)
    x_axis /= np.linalg.norm(x_axis)
    R = np.stack([x_axis, np.cross(-direction, x_axis), -direction], axis=1)
    return _pose_matrix(R, light.position)


class SceneRenderer:
    """A persistent offscreen scene of registered meshes, rendered from an OpenCV camera.

    One instance per process (an OpenGL context is not shareable across processes). Meshes are
    uploaded once (`add_mesh`); each `render` call shows only the meshes it places.
    """

    def __init__(self, width: int, height: int) -> None:
        reason = renderer_unavailable_reason()
        if reason is not None:
            raise RendererUnavailableError(reason)
        import pyrender
        _stable_context_ids()
        self._pyrender = pyrender
        self.width, self.height = int(width), int(height)
        self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
        self._scene = pyrender.Scene(bg_color=np.zeros(4), ambient_light=np.zeros(3))
        self._camera = pyrender.IntrinsicsCamera(1.0, 1.0, 0.0, 0.0, znear=Z_NEAR_M, zfar=Z_FAR_M)
        self._scene.add(self._camera, pose=np.eye(4))
        self._nodes = {}
        self._own_materials = {}
        self._light_nodes = []

    def add_mesh(self, key: str, mesh: 'trimesh.Trimesh', smooth: bool = True) -> None:
        """Register a trimesh mesh (metres) under `key`; its own colours/texture are kept.

        smooth: interpolate vertex normals (curved surfaces) or shade each face flat (boxes).
        """
        if key in self._nodes:
            raise ValueError(f"mesh key '{key}' is already registered")
        render_mesh = self._pyrender.Mesh.from_trimesh(mesh, smooth=smooth)
        render_mesh.is_visible = False
        self._nodes[key] = self._scene.add(render_mesh, pose=np.eye(4))
        self._own_materials[key] = [(primitive.material.metallicFactor,
                                     primitive.material.roughnessFactor)
                                    for primitive in render_mesh.primitives]

    def render(self, K: np.ndarray, placements: Iterable[Placement], lights: Iterable[Light] = (),
               ambient: Sequence[float] = (0.3, 0.3, 0.3),
               depth_only: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
        """Render `placements` seen through intrinsics K (3, 3), pixels, OpenCV convention.

        ambient: RGB in [0, 1]; lights marked casts_shadow cast shadows (shadows.py). Returns
        (rgb (H, W, 3) uint8 or None if depth_only, depth (H, W) float32 z in metres, 0 where no
        surface).
        """
        self._camera.fx, self._camera.fy = float(K[0, 0]), float(K[1, 1])
        self._camera.cx, self._camera.cy = float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5
        placements = list(placements)
        for node in self._nodes.values():
            node.mesh.is_visible = False
        for placement in placements:
            node = self._nodes[placement.key]
            if node.mesh.is_visible:
                raise ValueError(f"mesh '{placement.key}' placed twice in one render")
            node.mesh.is_visible = True
            self._scene.set_pose(node, _pose_matrix(placement.R, placement.t, placement.scale))
            if placement.colour is not None:
                for primitive in node.mesh.primitives:
                    primitive.material.baseColorFactor = np.asarray(placement.colour, np.float32)
            self._set_material(placement)
        if depth_only:
            depth = self._renderer.render(self._scene, flags=self._pyrender.RenderFlags.DEPTH_ONLY)
            return None, depth
        lights = list(lights)
        self._set_lights(lights, ambient)
        rgb, depth = self._renderer.render(self._scene)
        if any(light.casts_shadow for light in lights):
            rgb = cast_shadows(self, K, placements, lights, ambient, rgb, depth)
        return rgb, depth

    def _set_material(self, placement):
        """Give a placed mesh the placement's metallic / roughness factors, else its own."""
        metallic, roughness = placement.material or (None, None)
        for primitive, (own_metallic, own_roughness) in zip(
                self._nodes[placement.key].mesh.primitives, self._own_materials[placement.key]):
            primitive.material.metallicFactor = own_metallic if metallic is None else metallic
            primitive.material.roughnessFactor = own_roughness if roughness is None else roughness

    def _set_lights(self, lights, ambient):
        """Replace the scene's lights."""
        for node in self._light_nodes:
            self._scene.remove_node(node)
        self._light_nodes = []
        self._scene.ambient_light = np.asarray(ambient, dtype=np.float64)
        for light in lights:
            if light.kind == 'directional':
                source = self._pyrender.DirectionalLight(color=light.colour,
                                                         intensity=light.intensity)
            elif light.kind == 'point':
                source = self._pyrender.PointLight(color=light.colour, intensity=light.intensity)
            else:
                raise ValueError(f"unknown light kind '{light.kind}'")
            self._light_nodes.append(self._scene.add(source, pose=_light_matrix(light)))

    def close(self) -> None:
        """Release the OpenGL context."""
        self._renderer.delete()
