"""Layer 3: image + K (+ boxes) -> object poses, and per-object tracks (no ROS)."""
