"""The node's frame scheduling without ROS: newest-frame slot, held frame, changes, counters."""
