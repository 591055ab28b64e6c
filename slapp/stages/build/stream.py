"""A long track prepared without holding its waveform: three passes over its decoding.

A track longer than :data:`STREAM_SECONDS` (a DJ set, a concert, an audiobook) would
otherwise sit in memory whole at the model's rate (0.3 GB per hour at 22.05 kHz). Here:

1. the checks and levels: length, peak, finiteness, the 50 ms block powers that place the
   silence trimming and the 0.4 s block powers of the loudness profile;
2. the bandwidth frames (their places depend on the length) and the loudness of the
   trimmed audio, which sets the levelling gain;
3. the features: :class:`StreamedWaveform` hands the feature code the samples it asks
   for, decoding forward and forgetting what lies behind.

Each pass computes exactly what the whole-waveform path computes (the same block powers,
frames, gain and samples), so the features are the same to the bit (tested); only time
grows (three decodings), not memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from slapp.dsp.audio import decode_blocks
from slapp.dsp.features import BLOCK_FRAMES
from slapp.dsp.levels import (BLOCK_SECONDS, SPECTRUM_FFT, block_powers,
                              bandwidth_from_frames, bounds_from_powers, levelling_gain,
                              loudness_from_powers, spectrum_starts, trim_block)

STREAM_SECONDS = 8 * 60  # longer tracks are prepared in passes, never held whole


class _Aligned:
    """Block powers of a stream from sample ``start`` to ``stop``: whole blocks only,
    as :func:`~slapp.dsp.levels.block_powers` gives them for ``y[start:stop]``."""

    def __init__(self, block: int, start: int = 0, stop: int | None = None):
        self.block, self.start, self.stop = block, start, stop
        self.carry = np.zeros(0, np.float32)
        self.powers: list[np.ndarray] = []

    def feed(self, chunk: np.ndarray, at: int) -> None:
        lo, hi = max(self.start, at), at + len(chunk)
        if self.stop is not None:
            hi = min(hi, self.stop)
        if hi <= lo:
            return
        data = np.concatenate([self.carry, chunk[lo - at:hi - at]])
        whole = len(data) // self.block * self.block
        if whole:
            self.powers.append(block_powers(data[:whole], self.block))
        self.carry = data[whole:]

    def result(self) -> np.ndarray:
        return np.concatenate(self.powers) if self.powers else np.zeros(0)


def _blocks(path: Path, params) -> Iterator[tuple[int, np.ndarray]]:
    at = 0
    for chunk in decode_blocks(path, sample_rate=params.audio.sample_rate,
                               mixdown=params.audio.mixdown):
        yield at, chunk
        at += len(chunk)


def measure(path: Path, params) -> dict:
    """Passes 1 and 2 (module docstring): ``{"n", "peak", "finite", "start", "end",
    "loudness_db", "bandwidth_hz", "gain"}`` of the decoded track."""
    a, rate = params.audio, params.audio.sample_rate
    trim, level = _Aligned(trim_block(rate)), _Aligned(int(BLOCK_SECONDS * rate))
    n, peak, finite = 0, 0.0, True
    for at, chunk in _blocks(path, params):
        trim.feed(chunk, at)
        level.feed(chunk, at)
        if len(chunk):
            finite = finite and bool(np.isfinite(np.sum(chunk, dtype=np.float64)))
            peak = max(peak, float(chunk.max()), -float(chunk.min()))
        n = at + len(chunk)
    start, end = (bounds_from_powers(trim.result(), n_samples=n, block=trim_block(rate),
                                     threshold_db=a.silence_threshold_db)
                  if a.trim_silence else (0, n))
    trimmed = _Aligned(int(BLOCK_SECONDS * rate), start, end)
    places = spectrum_starts(n)
    frames = np.zeros((len(places), SPECTRUM_FFT), np.float32)
    for at, chunk in _blocks(path, params):
        trimmed.feed(chunk, at)
        for i, s in enumerate(places):
            lo, hi = max(s, at), min(s + SPECTRUM_FFT, at + len(chunk))
            if hi > lo:
                frames[i, lo - s:hi - s] = chunk[lo - at:hi - at]
    gain = (levelling_gain(loudness_from_powers(trimmed.result()), a.loudness_db)
            if a.loudness_db is not None else None)
    return {"n": n, "peak": peak, "finite": finite, "start": start, "end": end,
            "loudness_db": loudness_from_powers(level.result()),
            "bandwidth_hz": bandwidth_from_frames(frames, sample_rate=rate), "gain": gain}


class StreamedWaveform:
    """The prepared waveform ``y`` (trimmed to ``start:end`` of the decoded track, times
    ``gain``) as far as the feature code reads it: ``len(y)`` and ``y[a:b]`` slices that
    go back at most one spectrogram block and one snippet (a new batch of snippets may
    start in the block the last one ended in) (pass 3). Holds only that much behind the
    last read."""

    def __init__(self, path: Path, params, *, start: int, end: int, gain):
        self.path, self.params, self.start, self.end, self.gain = path, params, start, end, gain
        f = params.features
        self._keep = (BLOCK_FRAMES + params.n_frames + 2) * f.hop_length + f.n_fft
        self._chunks = _blocks(path, params)
        self._buf, self._pos = np.zeros(0, np.float32), 0  # the buffer ends at _pos

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, key: slice) -> np.ndarray:
        a, b, _ = key.indices(len(self))
        lo, hi = self.start + a, self.start + b
        while self._pos < hi:
            at, chunk = next(self._chunks)
            self._buf = np.concatenate([self._buf, chunk])
            self._pos = at + len(chunk)
            self._buf = self._buf[max(0, len(self._buf) - (self._pos - lo + self._keep)):]
        first = self._pos - len(self._buf)
        if lo < first:
            raise ValueError(f"streamed waveform read backwards (sample {lo}, kept from "
                             f"{first})")
        out = self._buf[lo - first:hi - first]
        self._buf = self._buf[max(0, lo - self._keep - first):]  # forget what lies behind
        return out if self.gain is None else (out * self.gain).astype(np.float32, copy=False)
