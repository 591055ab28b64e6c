"""One track, file → snippets → log-mel features: the per-track work of the build."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import numpy as np

from .audio import decode
from .errors import AudioError
from .backbones import snippet_features
from .levels import bandwidth_hz, loudness_db, prepare_waveform
from .params import PipelineParams
from .slicing import select_snippets, snippet_starts


@dataclass(frozen=True)
class TrackFeatures:
    """Features of one track.

    ``mel``: ``(n_snippets, n_frames, n_mels)`` float32 dB; ``starts``: ``(n_snippets,)``
    float32 snippet start times in seconds; ``seconds``: decoded length; ``bandwidth_hz``
    and ``loudness_db``: the decoded audio's :mod:`slapp.levels` profile (before any
    levelling); ``notes``: warnings worth a line in the summary (the track is still used).
    """

    mel: np.ndarray
    starts: np.ndarray
    seconds: float
    source_rate: int
    source_channels: int
    bandwidth_hz: float = 0.0
    loudness_db: float = 0.0
    notes: tuple[str, ...] = ()


def check_waveform(y: np.ndarray, *, sample_rate: int, min_seconds: float,
                   silence_threshold_db: float) -> None:
    """Refuse a ``(n_samples,)`` waveform that is too short, silent or not finite."""
    seconds = len(y) / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"too short: {seconds:.2f} s of audio, expected at least "
                         f"{min_seconds:g} s (slicing.min_track_seconds)")
    if not np.isfinite(np.sum(y, dtype=np.float64)):  # NaN and inf propagate; no copy
        raise AudioError("the decoded audio contains NaN or infinite samples")
    peak = max(float(y.max()), -float(y.min())) if len(y) else 0.0
    peak_db = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < silence_threshold_db:
        raise AudioError(f"silent: peak level {peak_db:.1f} dBFS, expected above "
                         f"{silence_threshold_db:g} dBFS (audio.silence_threshold_db)")


def track_rng(seed: int, key: str) -> np.random.Generator:
    """Per-track generator: the same snippets whatever the worker or the order."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def extract_track(path: str | os.PathLike, params: PipelineParams, *, key: str
                  ) -> TrackFeatures:
    """Decode ``path`` once, check it, select snippets and compute their log-mels.

    Raises :class:`AudioError` (message without the file name) for an unusable track.
    """
    a, s = params.audio, params.slicing
    decoded = decode(path, sample_rate=a.sample_rate, mixdown=a.mixdown)
    y = decoded.y
    check_waveform(y, sample_rate=a.sample_rate, min_seconds=s.min_track_seconds,
                   silence_threshold_db=a.silence_threshold_db)
    seconds = len(y) / a.sample_rate
    bandwidth = bandwidth_hz(y, sample_rate=a.sample_rate)
    loudness = loudness_db(y, sample_rate=a.sample_rate)
    y, offset = prepare_waveform(y, a)
    notes = []
    if decoded.source_rate < a.sample_rate:
        notes.append(f"{decoded.source_rate} Hz source upsampled to {a.sample_rate} Hz: "
                     f"it has nothing above {decoded.source_rate / 2:g} Hz")
    if decoded.declared_seconds and seconds < 0.9 * decoded.declared_seconds - 0.5:
        notes.append(f"decoded {seconds:.1f} s of the {decoded.declared_seconds:.1f} s its "
                     "header declares (truncated file?); kept the decodable part")
    if len(y) < params.snippet_samples:
        notes.append(f"{seconds:.2f} s is shorter than one snippet: zero-padded to "
                     f"{s.snippet_seconds:g} s")
    starts = snippet_starts(len(y), snippet_samples=params.snippet_samples,
                            hop_samples=params.hop_samples)
    chosen = select_snippets(len(starts), max_snippets=s.max_snippets_per_track,
                             selection=s.selection, rng=track_rng(s.seed, key))
    mel, starts = snippet_features(y, starts[chosen], params)
    times = ((starts + offset) / a.sample_rate).astype(np.float32)  # in the file
    return TrackFeatures(mel=mel, starts=times,
                         seconds=seconds, source_rate=decoded.source_rate,
                         source_channels=decoded.source_channels, bandwidth_hz=bandwidth,
                         loudness_db=loudness, notes=tuple(notes))
