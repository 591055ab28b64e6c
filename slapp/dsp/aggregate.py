"""Divide & conquer: from the class scores of a track's snippets to one label.

Rules (``--aggregate``):

- ``sum`` (default, the article's): add the snippets' probability vectors.
- ``mean-log``: average log-probabilities (a product of experts; one confident snippet
  cannot outvote the rest).
- ``vote``: each snippet votes for its top class; ties go to the larger summed probability.

Each returns a ``(n_classes,)`` score vector normalised to sum to 1, so it reads as a
confidence.
"""

from __future__ import annotations

import numpy as np

RULES = ("sum", "mean-log", "vote")


def aggregate(probs: np.ndarray, rule: str = "sum") -> np.ndarray:
    """``(n_snippets, n_classes)`` probabilities → ``(n_classes,)`` track scores (sum 1)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"expected (n_snippets, n_classes) probabilities, got {probs.shape}")
    if rule == "sum":
        scores = probs.sum(axis=0)
    elif rule == "mean-log":
        logs = np.log(np.clip(probs, 1e-12, 1.0)).mean(axis=0)
        scores = np.exp(logs - logs.max())
    elif rule == "vote":
        votes = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).astype(float)
        scores = votes + 1e-6 * probs.sum(axis=0) / len(probs)  # tie-break only
    else:
        raise ValueError(f"unknown aggregation rule {rule!r}; expected one of {RULES}")
    return scores / scores.sum()


def aggregate_tracks(probs: np.ndarray, track_ids: np.ndarray, rule: str = "sum"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Group snippet rows by ``track_ids``: ``(sorted unique ids, (n_tracks, n_classes))``."""
    track_ids = np.asarray(track_ids)
    ids = np.unique(track_ids)
    return ids, np.stack([aggregate(probs[track_ids == t], rule) for t in ids])
