"""Log-mel spectrograms of snippets (pure; the same function serves build and predict).

Decibels use a fixed reference power (``reference``, default 1.0; a full-scale 1 kHz sine
then peaks near +39 dB and the floor is ``10·log10(amin)`` = -100 dB) rather than each
snippet's maximum: a per-snippet maximum makes every snippet peak at 0 dB, so a quiet
intro and a loud chorus look alike and loudness, a real genre cue, is thrown away; it
also makes the scale of one snippet depend on its loudest bin.
"""

from __future__ import annotations

import functools

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


# --- one spectrogram per track ---------------------------------------------------------

BLOCK_FRAMES = 1024  # frames computed together; a fixed grid, so a frame's value never
                     # depends on which snippets asked for it


def frame_starts(sample_starts: np.ndarray, *, hop_length: int) -> np.ndarray:
    """Snippet starts in samples → the whole frame each snippet starts on, ``(n,)`` int64
    (floor: a snippet starts on the frame at or before its sample)."""
    return np.asarray(sample_starts, dtype=np.int64) // hop_length


def padded_length(n_samples: int, snippet_samples: int) -> int:
    """Samples the track is treated as having: a track shorter than one snippet is
    zero-padded to one snippet (as the build always did)."""
    return max(n_samples, snippet_samples)


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
               fmax: float | None) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                               fmax=fmax).astype(np.float32)


def _block_power(y: np.ndarray, first: int, stop: int, *, n_samples: int, sample_rate: int,
                 n_fft: int, hop_length: int, n_mels: int, fmin: float,
                 fmax: float | None) -> np.ndarray:
    """Mel power ``(stop - first, n_mels)`` of frames ``first..stop-1`` of the centred,
    zero-padded STFT of ``y`` treated as ``n_samples`` long."""
    import librosa

    lo = first * hop_length - n_fft // 2
    hi = (stop - 1) * hop_length - n_fft // 2 + n_fft
    segment = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, len(y), n_samples)
    if b > a:
        segment[a - lo:b - lo] = y[a:b]
    spec = librosa.stft(segment, n_fft=n_fft, hop_length=hop_length, center=False)
    power = spec.real ** 2 + spec.imag ** 2
    basis = _mel_basis(sample_rate, n_fft, n_mels, float(fmin), fmax)
    return (power.T @ basis.T).astype(np.float32, copy=False)


def snippet_mel_power(y: np.ndarray, first_frames: np.ndarray, *, n_frames: int,
                      snippet_samples: int, sample_rate: int, n_fft: int, hop_length: int,
                      n_mels: int, fmin: float = 0.0, fmax: float | None = None
                      ) -> np.ndarray:
    """Mel power of snippets cut in frame space from one spectrogram of the track.

    The track's centred STFT (zero-padded edges, a track shorter than one snippet padded
    to one snippet) is computed once, on a fixed grid of :data:`BLOCK_FRAMES`-frame blocks
    and only where a snippet needs it; snippet ``i`` is frames ``first_frames[i]`` to
    ``first_frames[i] + n_frames - 1``. Overlapping snippets share their frames, so each
    second of audio is transformed once; build and predict get the same values for the
    same frame.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float32 waveform in [-1, 1].
    first_frames : np.ndarray [shape=(n_snippets,)], int frame index of each snippet's
        first frame (see :func:`frame_starts`).

    Returns
    -------
    np.ndarray [shape=(n_snippets, n_frames, n_mels)], float32 power.
    """
    first_frames = np.asarray(first_frames, dtype=np.int64)
    n_samples = padded_length(len(y), snippet_samples)
    total = 1 + n_samples // hop_length
    if len(first_frames) and (first_frames.min() < 0
                              or first_frames.max() + n_frames > total):
        raise ValueError(f"snippets at frames {first_frames.min()}..{first_frames.max()} "
                         f"of {n_frames} frames do not fit the track's {total} frames")
    out = np.empty((len(first_frames), n_frames, n_mels), np.float32)
    blocks: dict[int, np.ndarray] = {}
    for i, first in enumerate(first_frames):
        for block in range(first // BLOCK_FRAMES, (first + n_frames - 1) // BLOCK_FRAMES + 1):
            if block not in blocks:
                start = block * BLOCK_FRAMES
                blocks[block] = _block_power(
                    y, start, min(start + BLOCK_FRAMES, total), n_samples=n_samples,
                    sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                    n_mels=n_mels, fmin=fmin, fmax=fmax)
            start = block * BLOCK_FRAMES
            lo, hi = max(first, start), min(first + n_frames, start + BLOCK_FRAMES)
            out[i, lo - first:hi - first] = blocks[block][lo - start:hi - start]
        # blocks no later snippet needs (snippets come in order) are dropped
        if i + 1 < len(first_frames):
            for block in [b for b in blocks if b < first_frames[i + 1] // BLOCK_FRAMES]:
                del blocks[block]
    return out


def power_to_db(power: np.ndarray, *, reference: float = 1.0, amin: float = 1e-10
                ) -> np.ndarray:
    """``10·log10(max(power, amin) / reference)``, float32, same shape."""
    return (10.0 * np.log10(np.maximum(power, amin) / reference)).astype(np.float32,
                                                                          copy=False)
