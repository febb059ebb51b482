"""Layer 1: object models, camera projection, pose solver, pose-error metrics (no ROS)."""
