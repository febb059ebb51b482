"""Layer 2: the stacked-hourglass keypoint network, heatmap codec, crops and checkpoints (no ROS)."""
