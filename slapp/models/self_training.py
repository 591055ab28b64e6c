"""Learning from the unlabelled library: track scores, a neighbourhood graph of the
library's tracks, label propagation over it, and the pseudo-labels a second training
round learns from.

All functions are pure numpy on per-track arrays: scores ``(n_tracks, n_classes)``
(probabilities, rows summing to 1) and embeddings ``(n_tracks, width)`` (a track's mean
snippet embedding). Label propagation is Zhou et al. (2004), "Learning with local and
global consistency": ``F ← α S F + (1 − α) Y`` on the symmetric normalised k-nearest-
neighbour graph ``S``, with ``Y`` the model's own track scores for library tracks and the
one-hot truth for labelled ones; a track's label then also listens to its neighbours
(in practice: the other tracks of its artist and album).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def track_means(rows: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
    """Mean of ``rows`` ``(n_snippets, width)`` per track index ``track`` ``(n_snippets,)``
    → ``(n_tracks, width)`` float64 (a track without rows: zeros)."""
    sums = np.zeros((n_tracks, rows.shape[1]))
    np.add.at(sums, track, rows)
    counts = np.bincount(track, minlength=n_tracks)[:, None]
    return sums / np.maximum(counts, 1)


def unit_rows(emb: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``emb`` ``(n, width)`` standardised by ``center``/``scale`` ``(width,)`` and each
    row scaled to length 1 (dot products are then cosine similarities)."""
    z = (emb - center) / np.maximum(scale, 1e-8)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Graph:
    """A k-nearest-neighbour graph: per node, ``neighbours`` ``(n, k)`` indices and
    ``weights`` ``(n, k)`` cosine similarities (clipped at 0)."""

    neighbours: np.ndarray
    weights: np.ndarray


def knn_graph(unit: np.ndarray, k: int, *, block: int = 2048) -> Graph:
    """The ``k`` most similar other rows of ``unit`` ``(n, width)`` (rows of length 1),
    computed in blocks of ``block`` rows (memory ``block × n``)."""
    n = len(unit)
    k = max(1, min(k, n - 1))
    neighbours = np.empty((n, k), np.int64)
    weights = np.empty((n, k))
    for lo in range(0, n, block):
        sim = unit[lo:lo + block] @ unit.T
        sim[np.arange(len(sim)), np.arange(lo, lo + len(sim))] = -np.inf  # not itself
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        neighbours[lo:lo + block] = top
        weights[lo:lo + block] = np.take_along_axis(sim, top, axis=1)
    return Graph(neighbours, np.clip(weights, 0.0, None))


def propagate(prior: np.ndarray, graph: Graph, *, alpha: float, iterations: int = 40
              ) -> np.ndarray:
    """Label propagation: ``prior`` ``(n, n_classes)`` smoothed over ``graph`` (made
    symmetric, normalised ``D^-1/2 W D^-1/2``) with weight ``alpha`` in [0, 1) on the
    neighbours; returns ``(n, n_classes)`` rows summing to 1."""
    n = len(prior)
    rows = np.repeat(np.arange(n), graph.neighbours.shape[1])
    cols = graph.neighbours.ravel()
    w = graph.weights.ravel()
    # symmetric: an edge either way counts once, with the larger similarity
    pairs = np.concatenate([rows * n + cols, cols * n + rows])
    values = np.concatenate([w, w])
    order = np.lexsort((-values, pairs))
    pairs, values = pairs[order], values[order]
    first = np.ones(len(pairs), bool)
    first[1:] = pairs[1:] != pairs[:-1]
    pairs, values = pairs[first], values[first]
    src, dst = pairs // n, pairs % n
    degree = np.bincount(src, weights=values, minlength=n)
    norm = values / np.sqrt(np.maximum(degree[src] * degree[dst], 1e-12))
    f = prior.astype(np.float64).copy()
    for _ in range(iterations):
        spread = np.zeros_like(f)
        np.add.at(spread, src, norm[:, None] * f[dst])
        f = alpha * spread + (1 - alpha) * prior
    return f / np.maximum(f.sum(axis=1, keepdims=True), 1e-12)


def pseudo_labels(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(track indices, class indices)`` of the rows of ``scores`` ``(n, n_classes)``
    whose largest score is at least ``threshold``."""
    best = scores.argmax(axis=1)
    keep = np.flatnonzero(scores.max(axis=1) >= threshold)
    return keep, best[keep]
