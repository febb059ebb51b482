"""Object instances from several crops: the best pose of each, by score and distance."""

import numpy as np


def suppress_duplicates(poses, diameter, max_instances):
    """Keep the best-scoring pose of each group closer than 0.3 diameter, at most max_instances.

    Poses from tracks win ties with new ones, so an instance keeps its identity.
    """
    keep = distinct_best([p.t for p in poses], [p.score for p in poses],
                          [p.request.source == 'track' for p in poses], diameter, max_instances)
    return [poses[i] for i in keep]


def distinct_best(positions, scores, from_track, diameter, limit):
    """Return indices, best score first (tracks +0.05), each > 0.3 diameter from those kept.

    positions: (M, 3) metres; scores: (M,); from_track: (M,) bool; at most `limit` indices.
    """
    order = sorted(range(len(scores)), key=lambda i: scores[i] + (0.05 if from_track[i] else 0),
                   reverse=True)
    kept = []
    for i in order:
        if all(np.linalg.norm(np.subtract(positions[i], positions[j])) > 0.3 * diameter
               for j in kept):
            kept.append(i)
        if len(kept) == limit:
            break
    return kept
