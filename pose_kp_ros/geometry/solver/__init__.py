"""Confidence-weighted full-perspective pose (and PCA shape) fit from 2D keypoints.

Minimises, per problem, over R in SO(3), t in R^3 and shape coefficients c in R^M:

    sum_i D_i rho(|| pi(K, R (B0_i + sum_j c_j B_ji) + t) - u_i ||^2)
        + shape_prior_weight * sum_j (c_j / prior_scale_j)^2

with D the keypoint confidences, rho a robust kernel on squared pixel errors and pi the pinhole
projection (Pavlakos et al., "6-DoF Object Pose from Semantic Keypoints", ICRA 2017, eq. 2-3,
here with full perspective). Levenberg-Marquardt with analytic Jacobians, batched over problems
in numpy, rotation updated on the left (R <- exp(dw) R, dw in the camera frame); closed-form
start from OpenCV's SQPnP (Terzakis and Lourakis, ECCV 2020) or a warm start. See docs/solver.md.

Modules: api (solve_pose, evaluate_pose, options, numpy or torch in and out), problem
(sanitising, robust objective, normal equations), start (closed-form and warm starts), iteration
(Levenberg-Marquardt), result (PoseResult, covariance, validity).
"""

from pose_kp_ros.geometry.solver.api import (
    OPTION_CHECKS,
    completed_options,
    evaluate_pose,
    option_error,
    solve_pose,
)
from pose_kp_ros.geometry.solver.problem import COLLINEAR_RATIO, ROBUST_KERNELS, fit_weights
from pose_kp_ros.geometry.solver.result import PoseResult, result_row, set_rows, stacked_results
from pose_kp_ros.geometry.solver.start import INIT_RELATIVE_CONFIDENCE

__all__ = ['COLLINEAR_RATIO', 'INIT_RELATIVE_CONFIDENCE', 'OPTION_CHECKS', 'ROBUST_KERNELS',
           'PoseResult', 'completed_options', 'evaluate_pose', 'fit_weights', 'option_error',
           'result_row', 'set_rows', 'solve_pose', 'stacked_results']
