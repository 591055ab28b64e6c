"""What a waveform looks like and how it is levelled (pure functions).

- :func:`bandwidth_hz`: where the long-term spectrum falls to the noise floor (a 16 kHz file
  resampled to 22.05 kHz stops near 7.8 kHz; a GTZAN MP3 near 10 kHz);
- :func:`loudness_db`: gated RMS level in dBFS (blocks quieter than -70 dBFS do not count,
  so leading silence does not lower it);
- :func:`trim_silence` and :func:`normalize_loudness`: the optional waveform preparation
  (``audio.trim_silence``, ``audio.loudness_db``) that build and prediction share through
  :func:`prepare_waveform`.
"""

from __future__ import annotations

import numpy as np

GATE_DB = -70.0         # blocks below this level are silence for the loudness measure
BLOCK_SECONDS = 0.4
SPECTRUM_FFT = 4096
SPECTRUM_FRAMES = 64
DYNAMIC_RANGE_DB = 70.0  # content more than this below the spectrum's peak is not counted
FLOOR_MARGIN_DB = 10.0   # ... nor content less than this above 16-bit quantisation noise


def _block_power(y: np.ndarray, block: int) -> np.ndarray:
    """Mean power of each whole block of ``block`` samples (one block for a short y)."""
    if len(y) < block:
        return np.array([float(np.mean(np.square(y, dtype=np.float64))) if len(y) else 0.0])
    n = len(y) // block
    blocks = y[:n * block].reshape(n, block)
    return np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64) / block


def block_powers(y: np.ndarray, block: int) -> np.ndarray:
    """Mean power of each whole block of ``block`` samples of ``y`` (float64); what
    :func:`loudness_db` and :func:`trim_bounds` read, computable block-aligned piece by
    piece for a track that is streamed."""
    return _block_power(np.asarray(y, np.float32), block)


def loudness_db(y: np.ndarray, *, sample_rate: int) -> float:
    """Gated RMS level of ``y`` ``(n_samples,)`` in dBFS (a full-scale sine: -3.0); the
    plain RMS level when no block passes the gate; -inf for digital silence."""
    return loudness_from_powers(_block_power(np.asarray(y, np.float32),
                                             int(BLOCK_SECONDS * sample_rate)))


def loudness_from_powers(power: np.ndarray) -> float:
    """:func:`loudness_db` from the powers of its 0.4 s blocks."""
    loud = power[power > 10 ** (GATE_DB / 10)]
    mean = float(np.mean(loud if len(loud) else power))
    return float(10 * np.log10(mean)) if mean > 0 else float("-inf")


def spectrum_starts(n_samples: int) -> np.ndarray:
    """Where :func:`bandwidth_hz` takes its frames in a track of ``n_samples`` (at least
    one frame long)."""
    count = min(SPECTRUM_FRAMES, 1 + (n_samples - SPECTRUM_FFT) // (SPECTRUM_FFT // 2))
    return np.linspace(0, n_samples - SPECTRUM_FFT, count).astype(np.int64)


def bandwidth_hz(y: np.ndarray, *, sample_rate: int) -> float:
    """Effective bandwidth of ``y`` ``(n_samples,)`` in Hz: the highest frequency whose
    smoothed long-term power spectrum (up to 64 Hann frames of 4096 samples spread over
    the track) stays within 70 dB of its peak and 10 dB above the noise of 16-bit
    quantisation; at most ``sample_rate / 2``, 0 for silence."""
    y = np.asarray(y, np.float32)
    if len(y) < SPECTRUM_FFT:
        y = np.pad(y, (0, SPECTRUM_FFT - len(y)))
    return bandwidth_from_frames(
        np.stack([y[s:s + SPECTRUM_FFT] for s in spectrum_starts(len(y))]),
        sample_rate=sample_rate)


def bandwidth_from_frames(frames: np.ndarray, *, sample_rate: int) -> float:
    """:func:`bandwidth_hz` from its frames ``(n, 4096)`` (see :func:`spectrum_starts`)."""
    window = np.hanning(SPECTRUM_FFT).astype(np.float32)
    frames = frames * window
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    db = 10 * np.log10(np.maximum(power, 1e-20))
    smooth = np.convolve(np.pad(db, 4, mode="edge"), np.ones(9) / 9, mode="valid")
    peak = smooth.max()
    # white noise of one 16-bit step (variance 2^-30 / 12) through the window, per bin
    quantisation = 10 * np.log10(2.0 ** -30 / 12 * float(np.sum(window ** 2)))
    threshold = max(peak - DYNAMIC_RANGE_DB, quantisation + FLOOR_MARGIN_DB)
    above = np.nonzero(smooth > threshold)[0]
    freqs = np.fft.rfftfreq(SPECTRUM_FFT, 1.0 / sample_rate)
    return float(freqs[above[-1]]) if len(above) else 0.0


def trim_block(sample_rate: int) -> int:
    """Samples in one block of :func:`trim_bounds` (50 ms)."""
    return max(1, int(0.05 * sample_rate))


def trim_bounds(y: np.ndarray, *, sample_rate: int, threshold_db: float) -> tuple[int, int]:
    """``(start, end)`` sample indices of ``y`` without its leading and trailing blocks
    (50 ms) quieter than ``threshold_db`` dBFS RMS; ``(0, len(y))`` when nothing is."""
    block = trim_block(sample_rate)
    return bounds_from_powers(_block_power(y, block), n_samples=len(y), block=block,
                              threshold_db=threshold_db)


def bounds_from_powers(power: np.ndarray, *, n_samples: int, block: int,
                       threshold_db: float) -> tuple[int, int]:
    """:func:`trim_bounds` from the powers of its 50 ms blocks."""
    loud = np.nonzero(power > 10 ** (threshold_db / 10))[0]
    if not len(loud):
        return 0, n_samples
    end = n_samples if loud[-1] == len(power) - 1 else (loud[-1] + 1) * block
    return int(loud[0] * block), int(end)


def trim_silence(y: np.ndarray, *, sample_rate: int, threshold_db: float) -> np.ndarray:
    """``y`` between its :func:`trim_bounds` (a view)."""
    start, end = trim_bounds(y, sample_rate=sample_rate, threshold_db=threshold_db)
    return y[start:end]


def normalize_loudness(y: np.ndarray, *, sample_rate: int, target_db: float) -> np.ndarray:
    """``y`` scaled so that :func:`loudness_db` is ``target_db`` (float32, may exceed
    ±1: features need no headroom); silence is returned unchanged."""
    gain = levelling_gain(loudness_db(y, sample_rate=sample_rate), target_db)
    if gain is None:
        return y
    return (y * gain).astype(np.float32, copy=False)


def levelling_gain(level_db: float, target_db: float) -> np.float32 | None:
    """The factor that takes a track at ``level_db`` to ``target_db`` (None: silence)."""
    if not np.isfinite(level_db):
        return None
    return np.float32(10 ** ((target_db - level_db) / 20))


def prepare_waveform(y: np.ndarray, *, sample_rate: int, trim_silence: bool,
                     silence_threshold_db: float, loudness_db: float | None
                     ) -> tuple[np.ndarray, int]:
    """``(waveform the features are computed from, the sample of y where it starts)`` of
    ``y`` ``(n_samples,)`` at ``sample_rate`` Hz: silence below ``silence_threshold_db``
    trimmed when ``trim_silence``, levelled to ``loudness_db`` (dBFS; None: as it is).
    Snippet times add the offset, so they stay times in the file."""
    start, end = 0, len(y)
    if trim_silence:
        start, end = trim_bounds(y, sample_rate=sample_rate, threshold_db=silence_threshold_db)
    y = y[start:end]
    if loudness_db is not None:
        y = normalize_loudness(y, sample_rate=sample_rate, target_db=loudness_db)
    return y, start
