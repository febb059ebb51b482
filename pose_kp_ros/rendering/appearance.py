"""Object appearance in renders: colours shifted towards what cameras see, random materials."""

import cv2
import numpy as np


def object_colour_jitter(rng: np.random.Generator, rgb: np.ndarray, mask: np.ndarray,
                         saturation: tuple[float, float], brightness: tuple[float, float],
                         hue_shift_deg: tuple[float, float]) -> np.ndarray:
    """Scale saturation and brightness and shift the hue of the object's pixels (mask).

    saturation, brightness: (low, high) factors; hue_shift_deg: (low, high) degrees added.
    Scanned vertex colours are duller than most cameras see the object (LM-O driller: median HSV
    saturation 18/255 and value 119/255 in the mesh, 62 and 52 in the photos); rgb (H, W, 3) uint8
    RGB, returns a new array.
    """
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(*hue_shift_deg) / 2.0, 180.0)
    hsv[..., 1] *= rng.uniform(*saturation)
    hsv[..., 2] *= rng.uniform(*brightness)
    jittered = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return np.where(mask[..., None], jittered, rgb)


def random_material(rng: np.random.Generator, metallic: tuple[float, float] | None,
                    roughness: tuple[float, float] | None) -> tuple | None:
    """Draw an object's (metallic, roughness) PBR factors, each uniform in its (low, high).

    An unset range gives None for that factor (the mesh's own); returns None, drawing nothing,
    when neither is set (`Placement.material`).
    """
    if metallic is None and roughness is None:
        return None
    return tuple(None if bounds is None else float(rng.uniform(*bounds))
                 for bounds in (metallic, roughness))
