"""Normalisation statistics of log-mel snippets: computed in one streaming pass over the
training snippets only, saved as a small JSON file, applied by training and prediction.

Methods (``process.normalization``):

- ``standard`` (default): per-mel-bin standardisation, ``(x - mean[b]) / std[b]``.
- ``minmax``: one global range, ``(x - min) / (max - min)`` → [0, 1] on training data,
  the original SLAPP's scaling.
- ``nonzero_minmax``: as ``minmax`` but ``min`` ignores values at the log floor
  (silence and zero padding, ``<= floor_db``), so padding does not stretch the range;
  values below ``min`` are clipped to 0. The original SLAPP's "non-zero" variant.
- ``none``: values unchanged (a pretrained backbone normalises its own input).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ("standard", "minmax", "nonzero_minmax", "none")


@dataclass
class RunningStats:
    """Accumulates per-mel-bin count, mean and M2 (Chan et al.), plus min/max.

    Feed it ``(n_snippets, n_frames, n_mels)`` batches with :meth:`update`.
    """

    n_mels: int
    floor_db: float
    count: int = 0
    mean: np.ndarray = field(default=None)
    m2: np.ndarray = field(default=None)
    minimum: float = np.inf
    maximum: float = -np.inf
    nonzero_minimum: float = np.inf

    def __post_init__(self):
        self.mean = np.zeros(self.n_mels, np.float64)
        self.m2 = np.zeros(self.n_mels, np.float64)

    def update(self, x: np.ndarray) -> None:
        flat = np.asarray(x, dtype=np.float64).reshape(-1, self.n_mels)
        n = flat.shape[0]
        if n == 0:
            return
        mean = flat.mean(axis=0)
        m2 = ((flat - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * n / total)
        self.count = total
        self.minimum = min(self.minimum, float(flat.min()))
        self.maximum = max(self.maximum, float(flat.max()))
        above = flat[flat > self.floor_db]
        if above.size:
            self.nonzero_minimum = min(self.nonzero_minimum, float(above.min()))

    def finish(self, method: str) -> dict:
        """The statistics file's content for ``method`` (JSON-ready)."""
        if self.count == 0:
            raise ValueError("no training snippets to compute statistics from")
        std = np.sqrt(self.m2 / self.count)
        lo = self.nonzero_minimum if method == "nonzero_minmax" else self.minimum
        if not np.isfinite(lo):
            lo = self.minimum
        return {"method": method, "n_values_per_bin": self.count,
                "mean": self.mean.tolist(), "std": std.tolist(),
                "min": self.minimum, "max": self.maximum, "range_min": lo,
                "floor_db": self.floor_db}


def apply(x: np.ndarray, stats: dict) -> np.ndarray:
    """Normalise ``(..., n_mels)`` dB values with ``stats``; returns float32."""
    x = np.asarray(x, dtype=np.float32)
    method = stats["method"]
    if method == "none":
        return x
    if method == "standard":
        mean = np.asarray(stats["mean"], np.float32)
        std = np.maximum(np.asarray(stats["std"], np.float32), 1e-6)
        return (x - mean) / std
    lo, hi = np.float32(stats["range_min"]), np.float32(stats["max"])
    out = (x - lo) / max(hi - lo, np.float32(1e-6))
    if method == "nonzero_minmax":
        out = np.maximum(out, 0.0)
    return out.astype(np.float32, copy=False)
