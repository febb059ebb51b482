"""A scene's random lighting: ambient light and 1-3 lights, casting shadows with a probability."""

from dataclasses import replace

import numpy as np

from pose_kp_ros.rendering.renderer import Light


def random_lights(rng: np.random.Generator, object_centre_cam: np.ndarray,
                  shadow_probability: float = 0.0) -> tuple[np.ndarray, list[Light]]:
    """Draw the ambient light (3,) RGB and 1-3 directional or point lights (camera frame).

    Directional lights shine away from the camera onto the scene; point lights stand 0.3-1.5 m
    from object_centre_cam (metres). With shadow_probability all of them cast shadows
    (rendering/shadows.py); that draw is made only when shadow_probability > 0, so scenes
    without shadows draw what they always drew.
    """
    ambient = rng.uniform(0.05, 0.5) * rng.uniform(0.8, 1.0, size=3)
    lights = []
    for _ in range(int(rng.integers(1, 4))):
        colour = tuple(1.0 - rng.uniform(0.0, 0.3, size=3))
        direction = rng.normal(size=3)
        direction[2] = abs(direction[2]) + 0.3  # shine away from the camera, onto the scene
        if rng.random() < 0.6:
            lights.append(Light('directional', colour, rng.uniform(1.0, 6.0),
                                direction=tuple(direction)))
        else:
            distance = rng.uniform(0.3, 1.5)
            position = object_centre_cam - distance * direction / np.linalg.norm(direction)
            lights.append(Light('point', colour, rng.uniform(1.0, 6.0) * distance ** 2,
                                position=tuple(position)))
    if shadow_probability > 0 and rng.random() < shadow_probability:
        lights = [replace(light, casts_shadow=True) for light in lights]
    return ambient, lights
