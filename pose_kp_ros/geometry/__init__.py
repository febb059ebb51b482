"""Layer 1: object models, camera projection, the pose solver and pose-error metrics (no ROS, no network)."""
