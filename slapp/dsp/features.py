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


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0)
                    / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)),
                    (200.0 / 3) * mel)


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
              fmax: float | None = None) -> np.ndarray:
    """Triangular Slaney-normalised mel filters ``(n_mels, 1 + n_fft // 2)`` float32, as
    ``librosa.filters.mel`` makes them (a test compares the two); computed here so that
    prediction does not import librosa's scipy stack (a second of cold start)."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_hz = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (librosa's and scipy's ``get_window('hann', n_fft)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def stft_power(segment: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Power spectrum ``(n_frames, 1 + n_fft // 2)`` float32 of the Hann-windowed frames
    ``segment[t·hop : t·hop + n_fft]`` (no centring: the caller pads)."""
    n = 1 + (len(segment) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        segment, shape=(n, n_fft), strides=(segment.strides[0] * hop_length,
                                            segment.strides[0]), writeable=False)
    spec = np.fft.rfft(frames * _hann(n_fft), axis=1)
    return (spec.real ** 2 + spec.imag ** 2).astype(np.float32, copy=False)


def _block_power(y: np.ndarray, first: int, stop: int, *, n_samples: int, sample_rate: int,
                 n_fft: int, hop_length: int, n_mels: int, fmin: float,
                 fmax: float | None) -> np.ndarray:
    """Mel power ``(stop - first, n_mels)`` of frames ``first..stop-1`` of the centred,
    zero-padded STFT of ``y`` treated as ``n_samples`` long."""
    lo = first * hop_length - n_fft // 2
    hi = (stop - 1) * hop_length - n_fft // 2 + n_fft
    segment = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, len(y), n_samples)
    if b > a:
        segment[a - lo:b - lo] = y[a:b]
    power = stft_power(segment, n_fft=n_fft, hop_length=hop_length)
    return power @ mel_basis(sample_rate, n_fft, n_mels, float(fmin), fmax).T


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
