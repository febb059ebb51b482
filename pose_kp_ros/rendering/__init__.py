"""Synthetic training data: meshes, keypoint selection, offscreen rendering, scene composition."""
