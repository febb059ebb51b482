"""Confidence-weighted full-perspective pose (and PCA shape) fit from 2D keypoints.

Minimises, per problem, over R in SO(3), t in R^3 and shape coefficients c in R^M:

    sum_i D_i rho(|| pi(K, R (B0_i + sum_j c_j B_ji) + t) - u_i ||^2)
        + shape_prior_weight * sum_j (c_j / prior_scale_j)^2

with D the keypoint confidences, rho a robust kernel on squared pixel errors and pi the pinhole
projection (Pavlakos et al., "6-DoF Object Pose from Semantic Keypoints", ICRA 2017, eq. 2-3,
here with full perspective). Levenberg-Marquardt with analytic Jacobians, compiled with numba
(one problem at a time in a loop over the batch), rotation updated on the left (R <- exp(dw) R,
dw in the camera frame); closed-form start from OpenCV's SQPnP (Terzakis and Lourakis, ECCV
2020) or a warm start. See docs/solver.md.

Modules: api (solve_pose, evaluate_pose, options, numpy or torch in and out, compile_solver),
problem (the sanitised inputs), start (closed-form and warm starts), iteration (cold and warm
fits), result (PoseResult); compiled_inputs (usable keypoints, weights, layouts, warm-start
checks) and compiled_fit (objective, normal equations, Levenberg-Marquardt, covariance) are the
numba-compiled parts.
"""

from pose_kp_ros.geometry.solver.api import (
    OPTION_CHECKS,
    compile_solver,
    completed_options,
    evaluate_pose,
    option_error,
    solve_pose,
)
from pose_kp_ros.geometry.solver.compiled_inputs import COLLINEAR_RATIO
from pose_kp_ros.geometry.solver.problem import ROBUST_KERNELS, fit_weights
from pose_kp_ros.geometry.solver.result import PoseResult, result_row, set_rows, stacked_results
from pose_kp_ros.geometry.solver.start import INIT_RELATIVE_CONFIDENCE

__all__ = ['COLLINEAR_RATIO', 'INIT_RELATIVE_CONFIDENCE', 'OPTION_CHECKS', 'ROBUST_KERNELS',
           'PoseResult', 'compile_solver', 'completed_options', 'evaluate_pose', 'fit_weights',
           'option_error', 'result_row', 'set_rows', 'solve_pose', 'stacked_results']
