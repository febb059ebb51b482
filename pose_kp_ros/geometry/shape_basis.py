"""PCA shape basis of a category from several keypoint sets (Pavlakos et al., ICRA 2017).

Keypoint sets (K, N, 3) in metres share the keypoint order. They are first brought into one frame
(rigid generalised Procrustes: centroid to the origin, rotation to the mean, no scaling, since
size is part of the shape), then PCA gives the mean B0 (N, 3), unit-norm basis shapes (M, N, 3)
and the standard deviation of each coefficient over the examples (prior_scale, metres, because
the basis shapes have unit norm).
"""

import numpy as np
from numpy.typing import ArrayLike


def kabsch_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return the rotation R (3, 3) minimising sum ||R source_i - target_i||^2 (centred inputs).

    source, target: (N, 3) points, centred on the origin.
    Reference: Kabsch, Acta Cryst. A32 (1976); reflection excluded (det R = +1).
    """
    u, _, vt = np.linalg.svd(target.T @ source)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def procrustes_align(shapes: ArrayLike, iterations: int = 20) -> np.ndarray:
    """Rigidly align shapes (K, N, 3) to their mean; return the aligned shapes (K, N, 3).

    Centroids go to the origin; the result keeps the orientation of the first shape's frame.
    """
    shapes = np.asarray(shapes, float)
    aligned = shapes - shapes.mean(1, keepdims=True)
    reference = aligned[0]
    for _ in range(iterations):
        aligned = np.stack([s @ kabsch_rotation(s, reference).T for s in aligned])
        mean = aligned.mean(0)
        if np.allclose(mean, reference, atol=1e-12):
            break
        reference = mean
    first = shapes[0] - shapes[0].mean(0)
    back = kabsch_rotation(aligned.mean(0), first)
    return aligned @ back.T


def pca_shape_basis(shapes: ArrayLike, num_components: int | None = None, align: bool = True,
                    min_relative_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (mean (N, 3), basis (M, N, 3), prior_scale (M,)) from shapes (K, N, 3) metres.

    num_components: M, at most K - 1; None keeps every component whose standard deviation is
    above min_relative_std times the largest. align: run procrustes_align first (else the
    shapes must already share a frame). Each basis shape has unit Frobenius norm and its sign
    makes its largest-magnitude entry positive (of entries equal in magnitude to 1e-6, e.g. a
    box's symmetric corners, the first: rounding noise does not pick the sign).
    """
    shapes = np.asarray(shapes, float)
    if shapes.ndim != 3 or shapes.shape[2] != 3 or len(shapes) < 2:
        raise ValueError(f'shapes: expected (K >= 2, N, 3), got {shapes.shape}')
    if align:
        shapes = procrustes_align(shapes)
    flat = shapes.reshape(len(shapes), -1)
    mean = flat.mean(0)
    _, singular, vt = np.linalg.svd(flat - mean, full_matrices=False)
    std = singular / np.sqrt(len(shapes) - 1)
    keep = std > min_relative_std * std[0] if std[0] > 0 else np.zeros_like(std, bool)
    count = int(keep.sum()) if num_components is None else int(num_components)
    if not 0 <= count <= int(keep.sum()):
        raise ValueError(f'num_components: {num_components} requested, the shapes support at '
                         f'most {int(keep.sum())}')
    basis = vt[:count]
    magnitude = np.abs(basis)
    largest = (magnitude >= (1.0 - 1e-6) * magnitude.max(1, keepdims=True)).argmax(1)
    signs = np.sign(basis[np.arange(count), largest])
    basis = basis * signs[:, None]
    return mean.reshape(-1, 3), basis.reshape(count, -1, 3), std[:count]
