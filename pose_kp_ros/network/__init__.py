"""Layer 2: stacked-hourglass network, heatmap codec, crops and checkpoints (no ROS)."""
