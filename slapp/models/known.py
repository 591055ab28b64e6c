"""How much a track looks like the trained classes: the ``known`` score and ``none``.

A track's vector is the mean of its snippets' embeddings, L2-normalised. Its raw score
is the mean cosine similarity to its :data:`K` nearest training tracks (the kNN
out-of-distribution score of Sun et al. 2022). The raw score is turned into ``known``
(0–1) by the training tracks themselves: each training track is scored against the
others *by other artists* (so the figure is what music by an artist the model never
heard looks like), and ``known`` is the share of those scores that the track's raw
score reaches or passes. A track whose ``known`` is below the bundle's threshold (a
share: 0.2 = less like the classes than 80 % of that reference) is labelled ``none``.
"""

from __future__ import annotations

import numpy as np

K = 5            # nearest training tracks averaged


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
    by other artists (a track without an artist leaves out only itself; artists compared
    case-blind)."""
    names = np.array([a.casefold() if a else f"\0{i}" for i, a in enumerate(artists)],
                     dtype=object)
    same = names[:, None] == names[None, :]
    return np.sort(similarity(reference, reference, k, exclude=same))


def known_scores(raw: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """``(n,)`` in [0, 1]: the share of ``calibration`` (sorted) at or below each raw
    score."""
    return np.searchsorted(calibration, raw, side="right") / max(1, len(calibration))


class KnownModel:
    """What a bundle keeps to score ``known``: the sorted ``calibration`` raw scores, the
    ``threshold`` (a share; 0: never ``none``) and, for the kNN score, the training tracks'
    ``reference`` vectors ``(n, width)``; without them the raw score is the track's
    confidence (a bundle whose network gives no embedding: the CRNN)."""

    def __init__(self, calibration: np.ndarray, threshold: float,
                 reference: np.ndarray | None = None, k: int = K):
        self.calibration = np.sort(np.asarray(calibration, dtype=np.float64))
        self.threshold, self.reference, self.k = float(threshold), reference, int(k)

    @property
    def method(self) -> str:
        return "knn-cosine" if self.reference is not None else "confidence"

    def raw(self, confidence: float, embedding: np.ndarray | None) -> float | None:
        """The raw score of one track: kNN similarity of its snippet embeddings
        ``(n_snippets, width)``, or its ``confidence``; None when the embedding is missing."""
        if self.reference is None:
            return float(confidence)
        if embedding is None or len(embedding) == 0:
            return None
        return float(similarity(track_vectors([embedding]), self.reference, self.k)[0])

    def score(self, confidence: float, embedding: np.ndarray | None) -> float | None:
        """``known`` in [0, 1] of one track (None: not measurable with this engine)."""
        raw = self.raw(confidence, embedding)
        return None if raw is None else float(known_scores(np.array([raw]), self.calibration)[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`from_arrays` reads back (the bundle's ``known.npz``)."""
        out = {"calibration": self.calibration, "k": np.array(self.k)}
        if self.reference is not None:
            out["reference"] = self.reference
        return out

    @classmethod
    def from_arrays(cls, data, threshold: float) -> KnownModel:
        ref = data["reference"] if "reference" in data else None
        return cls(data["calibration"], threshold, ref, int(data["k"]))
