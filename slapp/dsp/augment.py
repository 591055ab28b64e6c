"""Data augmentation of training snippets (pure; the feed calls it per batch).

Applied to normalised log-mel batches ``(batch, n_frames, n_mels)`` with one-hot labels
``(batch, n_classes)``:

- random gain: one offset per snippet, uniform in ``±gain_db`` dB, added in the
  normalised scale (``db_scale`` per mel bin: ``1/std`` for standard normalisation);
- time and frequency masking (SpecAugment, Park et al. 2019): ``time_masks`` bands of up
  to 1/8 of the frames and ``freq_masks`` bands of up to 1/8 of the mel bins are set to 0,
  the training mean after standard normalisation;
- band limiting: a share ``lowpass`` of the snippets lose every mel bin whose centre lies
  above a random cut-off (uniform from ``lowpass_min_hz`` to the top of the mel band),
  set to the log floor: what a 16 kHz or 8 kHz file, or a low-bitrate MP3, looks like
  after resampling (see :func:`lowpass_bins`);
- mixup (Zhang et al. 2018): each snippet is mixed with another of the batch,
  ``λ·a + (1-λ)·b`` for inputs and labels, ``λ ~ Beta(α, α)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    gain_db: float = 0.0
    time_masks: int = 0
    freq_masks: int = 0
    mixup_alpha: float = 0.0
    lowpass: float = 0.0
    lowpass_min_hz: float = 3500.0

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.time_masks or self.freq_masks or self.mixup_alpha
                    or self.lowpass)


def lowpass_bins(stats: dict, *, sample_rate: int, n_mels: int, fmin: float,
                 fmax: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(centre Hz (n_mels,), the log floor after normalisation (n_mels,))``: what band
    limiting needs to know of the features (librosa's mel scale; ``stats`` of stage 2)."""
    import librosa

    from slapp.dsp.normalization import apply

    top = sample_rate / 2 if fmax is None else fmax
    centres = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=top)[1:-1]
    floor = apply(np.full(n_mels, stats["floor_db"], np.float32), stats)
    return centres.astype(np.float32), floor.astype(np.float32)


def db_scale(stats: dict, n_mels: int) -> np.ndarray:
    """How much 1 dB moves each mel bin after the normalisation ``stats``: ``(n_mels,)``."""
    method = stats["method"]
    if method == "standard":
        return 1.0 / np.maximum(np.asarray(stats["std"], np.float32), 1e-6)
    if method in ("minmax", "nonzero_minmax"):
        span = max(float(stats["max"]) - float(stats["range_min"]), 1e-6)
        return np.full(n_mels, 1.0 / span, np.float32)
    return np.ones(n_mels, np.float32)


def augment_batch(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                  aug: Augmentation, scale: np.ndarray,
                  bins: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of ``x`` ``(batch, n_frames, n_mels)`` float32 and ``y``
    ``(batch, n_classes)`` float32; ``scale`` is :func:`db_scale`, ``bins``
    :func:`lowpass_bins` (needed for ``aug.lowpass``)."""
    x = np.array(x, dtype=np.float32, copy=True)
    y = np.array(y, dtype=np.float32, copy=True)
    n, n_frames, n_mels = x.shape
    if aug.gain_db:
        gains = rng.uniform(-aug.gain_db, aug.gain_db, size=(n, 1, 1)).astype(np.float32)
        x += gains * scale[None, None, :].astype(np.float32)
    if aug.lowpass:
        centres, floor = bins
        hit = rng.random(n) < aug.lowpass
        cutoffs = rng.uniform(min(aug.lowpass_min_hz, centres[-1]), centres[-1], size=n)
        for i in np.nonzero(hit)[0]:
            above = centres > cutoffs[i]
            x[i][:, above] = floor[above]
    for axis, count, size in ((1, aug.time_masks, n_frames), (2, aug.freq_masks, n_mels)):
        widest = max(1, size // 8)
        for i in range(n):
            for _ in range(count):
                width = int(rng.integers(0, widest + 1))
                start = int(rng.integers(0, size - width + 1))
                if axis == 1:
                    x[i, start:start + width, :] = 0.0
                else:
                    x[i, :, start:start + width] = 0.0
    if aug.mixup_alpha and n > 1:
        lam = rng.beta(aug.mixup_alpha, aug.mixup_alpha, size=n).astype(np.float32)
        lam = np.maximum(lam, 1.0 - lam)  # the snippet keeps most of itself
        other = rng.permutation(n)
        x = lam[:, None, None] * x + (1.0 - lam[:, None, None]) * x[other]
        y = lam[:, None] * y + (1.0 - lam[:, None]) * y[other]
    return x, y
