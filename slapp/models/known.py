"""How much a track looks like the trained classes: the ``known`` score and ``none``.

A track's vector is the mean of its snippets' embeddings, L2-normalised. Its raw score
is the mean cosine similarity to its :data:`K` nearest training tracks (the kNN
out-of-distribution score of Sun et al. 2022). The raw score is turned into ``known``
(0–1) by the training tracks themselves: each training track is scored against the
others *by other artists* (so the figure is what music by an artist the model never
heard looks like), and ``known`` is the share of those scores that the track's raw
score reaches or passes. A track whose ``known`` is below the bundle's threshold (a
share: 0.05 = less like the classes than 95 % of that reference) is labelled ``none``.
"""

from __future__ import annotations

import numpy as np

K = 5            # nearest training tracks averaged
THRESHOLD = 0.05  # default: below the 5th percentile of the leave-artist-out scores
NONE = "none"     # the label of a track unlike every class


def track_vectors(embeddings: list[np.ndarray]) -> np.ndarray:
    """``(n_tracks, width)`` float32: each track's mean snippet embedding
    (``(n_snippets, width)`` each), L2-normalised."""
    v = np.stack([np.asarray(e, dtype=np.float64).mean(axis=0) for e in embeddings])
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v.astype(np.float32)


def similarity(vectors: np.ndarray, reference: np.ndarray, k: int = K,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """``(n,)``: mean cosine similarity of each row of ``vectors`` to its ``k`` most
    similar rows of ``reference`` (both L2-normalised); ``exclude`` ``(n, n_ref)`` bool
    masks reference rows a vector may not use."""
    sims = vectors.astype(np.float64) @ reference.T.astype(np.float64)
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    k = max(1, min(k, reference.shape[0]))
    top = -np.sort(-sims, axis=1)[:, :k]
    top = np.where(np.isfinite(top), top, -1.0)  # fewer than k allowed: count as opposite
    return top.mean(axis=1)


def calibrate(reference: np.ndarray, artists: list[str | None], k: int = K) -> np.ndarray:
    """Sorted ``(n,)`` raw scores of the training tracks, each against the training tracks
    by other artists (a track without an artist leaves out only itself)."""
    names = np.array([a if a else f"\0{i}" for i, a in enumerate(artists)], dtype=object)
    same = names[:, None] == names[None, :]
    return np.sort(similarity(reference, reference, k, exclude=same))


def known_scores(raw: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """``(n,)`` in [0, 1]: the share of ``calibration`` (sorted) at or below each raw
    score."""
    return np.searchsorted(calibration, raw, side="right") / max(1, len(calibration))
