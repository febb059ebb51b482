"""Layer 4: the rclpy node and message conversions (the only layer that imports ROS)."""
