"""The solver's problem: sanitised inputs of a batch.

B problems of N keypoints, M shape coefficients, P = 6 + M parameters ordered (t, w, c); the
sanitising itself is compiled (compiled_inputs), the objective too (compiled_fit); see
docs/solver.md.
"""

from dataclasses import dataclass

import numpy as np

from pose_kp_ros.geometry.camera import intrinsics_ok
from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.geometry.solver.compiled_fit import ROBUST_CODES
from pose_kp_ros.geometry.solver.compiled_inputs import keypoint_weights, sanitised

ROBUST_KERNELS = tuple(ROBUST_CODES)


@dataclass
class Problem:
    """Arrays of one batched solve.

    Attributes:
        uv: (B, N, 2) observed pixels, 0 where unusable.
        weight: (B, N) keypoint weights D (conf ** confidence_power), 0 where unusable.
        used: (B, N) bool, the keypoint is usable.
        weight_sum: (B,) sum of weight.
        K: (B, 3, 3) camera matrices (the identity where K was invalid).
        mean: (N, 3) mean shape B0, metres.
        basis: (M, N, 3) shape basis, metres per unit coefficient.
        prior: (M,) shape prior precisions lambda / s_j^2, px^2.
        robust: robust kernel name (ROBUST_KERNELS).
        robust_scale_px: kernel scale k, pixels.
    """

    uv: np.ndarray
    weight: np.ndarray
    used: np.ndarray
    weight_sum: np.ndarray
    K: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    prior: np.ndarray
    robust: str | None
    robust_scale_px: float

    def compiled_arrays(self) -> tuple:
        """Return the problem as compiled_fit.fit_rows takes it.

        (uv, weight, used, weight_sum, K, mean, basis, prior, robust code, scale), C-contiguous.
        """
        return (self.uv, self.weight, self.used, self.weight_sum, self.K, self.mean, self.basis,
                self.prior, ROBUST_CODES[self.robust], self.robust_scale_px)

    def select(self, index: np.ndarray) -> 'Problem':
        """Return the sub-problem of the batch rows `index` (a 1-D integer array)."""
        return Problem(self.uv[index], self.weight[index], self.used[index],
                       self.weight_sum[index], self.K[index], self.mean, self.basis, self.prior,
                       self.robust, self.robust_scale_px)


def fit_weights(uv: np.ndarray, conf: np.ndarray, min_confidence: float = 0.0,
                confidence_power: float = 1.0) -> np.ndarray:
    """Return the fit's keypoint weights (..., N): conf ** confidence_power, 0 where unused.

    uv (..., N, 2) pixels and conf (..., N) confidences, numpy arrays. A keypoint is used when
    its pixels and confidence are finite and its confidence exceeds min_confidence.
    """
    uv, conf = np.asarray(uv, dtype=np.float64), np.asarray(conf, dtype=np.float64)
    num_kp = conf.shape[-1] if conf.ndim else 1
    weight, _ = keypoint_weights(np.ascontiguousarray(uv.reshape(-1, num_kp, 2)),
                                 np.ascontiguousarray(conf.reshape(-1, num_kp)),
                                 float(min_confidence), float(confidence_power))
    return weight.reshape(conf.shape)


def prepare(uv: np.ndarray, conf: np.ndarray, K: np.ndarray, model: ObjectModel,
            min_confidence: float, confidence_power: float, robust: str | None,
            robust_scale_px: float, shape_prior_weight: float) -> tuple[Problem, np.ndarray]:
    """Sanitise inputs into a Problem and return it with ok (B,): solvable at all.

    uv (B, N, 2) px, conf (B, N), K (B, 3, 3) float64 arrays; model an ObjectModel. A problem
    is not solvable with fewer than 4 usable keypoints, a collinear usable layout or invalid K
    (compiled_inputs.sanitised).
    """
    uv, conf, K = (np.ascontiguousarray(x, dtype=np.float64) for x in (uv, conf, K))
    uv, weight, used, weight_sum, K, ok = sanitised(
        uv, conf, K, intrinsics_ok(K), model.keypoints, float(min_confidence),
        float(confidence_power))
    problem = Problem(uv=uv, weight=weight, used=used, weight_sum=weight_sum, K=K,
                      mean=model.keypoints, basis=np.ascontiguousarray(model.basis),
                      prior=shape_prior_weight / model.prior_scale ** 2, robust=robust,
                      robust_scale_px=float(robust_scale_px))
    return problem, ok
