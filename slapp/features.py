"""Log-mel spectrograms of snippets (pure; the same function serves build and predict).

Decibels use a fixed reference power (``reference``, default 1.0; a full-scale 1 kHz sine
then peaks near +39 dB and the floor is ``10·log10(amin)`` = -100 dB) rather than each
snippet's maximum: a per-snippet maximum makes every snippet peak at 0 dB, so a quiet
intro and a loud chorus look alike and loudness, a real genre cue, is thrown away; it
also makes the scale of one snippet depend on its loudest bin.
"""

from __future__ import annotations

import numpy as np


def n_frames(snippet_samples: int, *, hop_length: int) -> int:
    """Frames of a centred STFT over one snippet (130 for 66150 samples, hop 512)."""
    return 1 + snippet_samples // hop_length


def log_mel(snippets: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int,
            n_mels: int, fmin: float = 0.0, fmax: float | None = None,
            reference: float = 1.0, amin: float = 1e-10) -> np.ndarray:
    """Log-mel power spectrogram in dB of each snippet.

    Parameters
    ----------
    snippets : np.ndarray [shape=(n_snippets, n_samples)], float32 waveform in [-1, 1].

    Returns
    -------
    np.ndarray [shape=(n_snippets, n_frames, n_mels)], float32 dB relative to
    ``reference`` power, floored at ``10·log10(amin / reference)``.
    """
    power = mel_power(snippets, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                      n_mels=n_mels, fmin=fmin, fmax=fmax)
    db = 10.0 * np.log10(np.maximum(power, amin) / reference)
    return np.ascontiguousarray(db.transpose(0, 2, 1), dtype=np.float32)


def mel_power(snippets: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int,
              n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Mel power spectrogram (centred STFT, zero-padded edges) of each snippet.

    Parameters
    ----------
    snippets : np.ndarray [shape=(n_snippets, n_samples)], float32 waveform in [-1, 1].

    Returns
    -------
    np.ndarray [shape=(n_snippets, n_mels, n_frames)], float32 power (frequency first, as
    librosa returns it).
    """
    import librosa

    snippets = np.asarray(snippets, dtype=np.float32)
    if snippets.ndim != 2:
        raise ValueError(f"snippets must be 2-D (n_snippets, n_samples), got shape "
                         f"{snippets.shape}")
    power = librosa.feature.melspectrogram(
        y=snippets, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
        fmin=fmin, fmax=fmax, power=2.0, center=True, pad_mode="constant")
    return power.astype(np.float32, copy=False)
