"""What the estimator keeps per object: its model, keypoint network, outline and surface points."""

from pose_kp_ros.geometry.contour_alignment import compile_refinement
from pose_kp_ros.geometry.mesh import mesh_outline_points, object_mesh, surface_points
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.solver import compile_solver
from pose_kp_ros.geometry.symmetry import symmetry_group
from pose_kp_ros.network.predictor import KeypointPredictor


class ObjectRuntime:
    """An object model with its keypoint network, outline points (crop boxes) and surface points.

    `surface` is (P, 3) metres sampled on the mesh for the silhouette refinement, or None when
    the model has no usable mesh (poses are then not refined).
    """

    def __init__(self, model: ObjectModel, predictor: KeypointPredictor,
                 max_instances: int = 1) -> None:
        """predictor: a KeypointPredictor (or anything with its `predict_objects`) for `model`."""
        self.model = model
        self.predictor = predictor
        self.max_instances = max_instances
        mesh = object_mesh(model)
        self.outline = mesh_outline_points(model, mesh)
        self.surface = None if mesh is None else surface_points(mesh)
        self.symmetry_group = symmetry_group(model.symmetries) if model.symmetries else None
        compile_solver()  # once per machine; no frame waits for the compiler
        if self.surface is not None:
            compile_refinement()

    @property
    def name(self) -> str:
        """Return the object's name."""
        return self.model.name
