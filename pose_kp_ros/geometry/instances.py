"""Object instances from several crops: the best pose of each, by score and distance."""

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

Pose = TypeVar('Pose')
"""A pose with t (3,) metres, score and request.source (pipeline.object_pose.ObjectPose)."""


def suppress_duplicates(poses: Sequence[Pose], diameter: float, max_instances: int) -> list[Pose]:
    """Keep the best-scoring pose of each group closer than 0.3 diameter, at most max_instances.

    diameter: the object's, metres. Poses from tracks win ties with new ones, so an instance
    keeps its identity.
    """
    keep = distinct_best([p.t for p in poses], [p.score for p in poses],
                          [p.request.source == 'track' for p in poses], diameter, max_instances)
    return [poses[i] for i in keep]


def distinct_best(positions: ArrayLike, scores: ArrayLike, from_track: ArrayLike, diameter: float,
                  limit: int) -> list[int]:
    """Return indices, best score first (tracks win ties), each > 0.3 diameter from those kept.

    positions: (M, 3) metres; scores: (M,); from_track: (M,) bool; diameter: metres; at most
    `limit` indices. A track wins ties only: a head start let drifted tracks beat the
    detector's correct poses on held-out videos (models/driller/README.md, session 23).
    """
    order = sorted(range(len(scores)), key=lambda i: (scores[i], from_track[i]), reverse=True)
    kept = []
    for i in order:
        if all(np.linalg.norm(np.subtract(positions[i], positions[j])) > 0.3 * diameter
               for j in kept):
            kept.append(i)
        if len(kept) == limit:
            break
    return kept
