"""The library tracks worth labelling next (active learning).

A track is worth a label when the model is unsure of it (small margin between its two
best class scores), when it stands for many other tracks (its neighbours in the library
are close: a label there spreads), and when it is unlike the tracks already picked (no
two near-copies, one artist not asked twice while others wait). :func:`suggest_tracks`
picks greedily on ``worth − redundancy`` (maximal marginal relevance).
"""

from __future__ import annotations

import numpy as np

from slapp.models.self_training import knn_graph, unit_rows

NEAR_COPY = 0.95  # cosine similarity above which two tracks count as the same music
NEIGHBOURS = 10   # the neighbourhood that measures how many tracks a track stands for


def worth(scores: np.ndarray, unit: np.ndarray, *, k: int = NEIGHBOURS) -> np.ndarray:
    """Per track ``(n,)``: uncertainty ``1 − (best − second best score)`` of ``scores``
    ``(n, n_classes)`` times density (mean cosine similarity to its ``k`` nearest
    tracks, ``unit`` ``(n, width)`` rows of length 1, clipped at 0)."""
    ordered = np.sort(scores, axis=1)
    margin = ordered[:, -1] - (ordered[:, -2] if scores.shape[1] > 1 else 0.0)
    density = knn_graph(unit, k).weights.mean(axis=1) if len(unit) > 1 else np.ones(1)
    return (1.0 - margin) * density


def suggest_tracks(scores: np.ndarray, embeddings: np.ndarray, n: int, *,
                   groups: list | None = None, redundancy: float = 1.0,
                   near_copy: float = NEAR_COPY) -> np.ndarray:
    """Indices of the ``n`` tracks to label next, best first.

    ``scores`` ``(n_tracks, n_classes)``: the model's track scores; ``embeddings``
    ``(n_tracks, width)``: mean snippet embeddings (or any per-track vector); ``groups``:
    per track an artist (or None): a group already picked waits until every other
    group has had a turn. A track whose cosine similarity to a picked one exceeds
    ``near_copy`` is never picked (1.0: only the picked tracks themselves, for vectors
    that are not embeddings).
    """
    count = len(scores)
    if count == 0 or n <= 0:
        return np.zeros(0, np.int64)
    emb = np.asarray(embeddings, np.float64)
    unit = unit_rows(emb, emb.mean(axis=0), emb.std(axis=0) + 1e-6)
    value = worth(np.asarray(scores, np.float64), unit)
    value = value / max(float(value.max()), 1e-12)
    closest = np.full(count, -1.0)  # largest similarity to a picked track
    open_ = np.ones(count, bool)
    used_groups: set = set()
    picked: list[int] = []
    while len(picked) < min(n, count) and open_.any():
        gain = value - redundancy * np.clip(closest, 0.0, None)
        if groups is not None:
            waiting = np.array([g is None or g not in used_groups for g in groups]) & open_
            if waiting.any():  # a new artist first, while there is one
                gain = np.where(waiting, gain, -np.inf)
        gain = np.where(open_, gain, -np.inf)
        best = int(np.argmax(gain))
        picked.append(best)
        if groups is not None and groups[best] is not None:
            used_groups.add(groups[best])
        sim = unit @ unit[best]
        closest = np.maximum(closest, sim)
        open_ &= closest <= near_copy
        open_[best] = False
    return np.asarray(picked, np.int64)
