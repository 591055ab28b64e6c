"""One track, file → checked, levelled waveform → snippet features: the per-track path that
the build and prediction share (they differ only in which snippet starts they ask for)."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.dsp.audio import (SOUNDFILE_KINDS, Decoded, check_regular_file, decode, sniff,
                             soundfile_info)
from slapp.dsp.levels import bandwidth_hz, loudness_db, prepare_waveform
from slapp.errors import AudioError
from slapp.models.backbones import snippet_features
from slapp.params import PipelineParams
from slapp.stages.build import stream
from slapp.stages.build.stream import StreamedWaveform, measure


@dataclass(frozen=True)
class PreparedTrack:
    """A decoded, checked and levelled track.

    ``y``: ``(n_samples,)`` float32 at ``audio.sample_rate``, after trimming and levelling
    (for a track longer than :data:`~slapp.stages.build.stream.STREAM_SECONDS`, a
    :class:`~slapp.stages.build.stream.StreamedWaveform` that the feature code reads forward);
    ``offset``: the sample of the decoded file where ``y`` starts; ``seconds``: decoded
    length; ``bandwidth_hz`` and ``loudness_db``: the decoded audio's
    :mod:`slapp.dsp.levels` profile (before levelling); ``notes``: warnings worth a line
    (the track is still used).
    """

    y: np.ndarray
    offset: int
    seconds: float
    sample_rate: int
    source_rate: int
    source_channels: int
    bandwidth_hz: float
    loudness_db: float
    notes: tuple[str, ...]

    def features(self, starts: np.ndarray, params: PipelineParams
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(features (n, n_frames, n_mels) in features.dtype, start times (n,) float64
        seconds in the file)`` of the snippets of ``y`` at ``starts`` (samples); each start
        moves back to a whole frame, and the times say where the snippets really start."""
        x, first = snippet_features(self.y, starts, params)
        times = (first + self.offset) / self.sample_rate
        return x.astype(params.features.dtype, copy=False), times


def check_waveform(y: np.ndarray, *, sample_rate: int, min_seconds: float,
                   silence_threshold_db: float) -> None:
    """Refuse a ``(n_samples,)`` waveform that is too short, silent or not finite."""
    check_levels(seconds=len(y) / sample_rate,
                 finite=bool(np.isfinite(np.sum(y, dtype=np.float64))),  # NaN, inf: no copy
                 peak=max(float(y.max()), -float(y.min())) if len(y) else 0.0,
                 min_seconds=min_seconds, silence_threshold_db=silence_threshold_db)


def check_levels(*, seconds: float, finite: bool, peak: float, min_seconds: float,
                 silence_threshold_db: float) -> None:
    """:func:`check_waveform` from the track's length, finiteness and peak."""
    if seconds < min_seconds:
        raise AudioError(f"too short: {seconds:.2f} s of audio, expected at least "
                         f"{min_seconds:g} s (slicing.min_track_seconds)")
    if not finite:
        raise AudioError("the decoded audio contains NaN or infinite samples")
    peak_db = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < silence_threshold_db:
        raise AudioError(f"silent: peak level {peak_db:.1f} dBFS, expected above "
                         f"{silence_threshold_db:g} dBFS (audio.silence_threshold_db)")


def prepare_track(path: str | os.PathLike, params: PipelineParams, *,
                  min_seconds: float | None = None) -> PreparedTrack:
    """Decode ``path`` once, check it, profile it and level it.

    ``min_seconds`` defaults to ``slicing.min_track_seconds``. Raises :class:`AudioError`
    (message without the file name) for an unusable track.
    """
    a, s = params.audio, params.slicing
    check_regular_file(path)
    if stream_it(path):
        return _prepare_streamed(Path(path), params, min_seconds)
    decoded = decode(path, sample_rate=a.sample_rate, mixdown=a.mixdown)
    check_waveform(decoded.y, sample_rate=a.sample_rate,
                   min_seconds=s.min_track_seconds if min_seconds is None else min_seconds,
                   silence_threshold_db=a.silence_threshold_db)
    seconds = len(decoded.y) / a.sample_rate
    bandwidth = bandwidth_hz(decoded.y, sample_rate=a.sample_rate)
    loudness = loudness_db(decoded.y, sample_rate=a.sample_rate)
    y, offset = prepare_waveform(decoded.y, sample_rate=a.sample_rate,
                                 trim_silence=a.trim_silence,
                                 silence_threshold_db=a.silence_threshold_db,
                                 loudness_db=a.loudness_db)
    return PreparedTrack(y=y, offset=offset, seconds=seconds, sample_rate=a.sample_rate,
                         source_rate=decoded.source_rate,
                         source_channels=decoded.source_channels, bandwidth_hz=bandwidth,
                         loudness_db=loudness, notes=_notes(decoded, seconds, len(y), params))


def _notes(decoded, seconds: float, n_prepared: int, params: PipelineParams
           ) -> tuple[str, ...]:
    """The warnings of a usable track: the decoder's, an upsampled source, a truncated
    file, a track shorter than a snippet."""
    a, s = params.audio, params.slicing
    notes = list(decoded.notes)
    if decoded.source_rate < a.sample_rate:
        notes.append(f"{decoded.source_rate} Hz source upsampled to {a.sample_rate} Hz: "
                     f"it has nothing above {decoded.source_rate / 2:g} Hz")
    if decoded.declared_seconds and seconds < 0.9 * decoded.declared_seconds - 0.5:
        notes.append(f"decoded {seconds:.1f} s of the {decoded.declared_seconds:.1f} s its "
                     "header declares (truncated file?); kept the decodable part")
    if n_prepared < params.snippet_samples:
        notes.append(f"{seconds:.2f} s is shorter than one snippet: zero-padded to "
                     f"{s.snippet_seconds:g} s")
    return tuple(notes)


def stream_it(path: str | os.PathLike) -> bool:
    """Whether ``path`` is long enough (its header says) to be prepared in passes
    (:mod:`slapp.stages.build.stream`) and soundfile reads it."""
    try:
        with open(path, "rb") as f:
            kind = sniff(f.read(1 << 16))
        if kind not in SOUNDFILE_KINDS:
            return False
        declared = soundfile_info(Path(path))[2]
    except (OSError, RuntimeError, ValueError):
        return False  # decode() will say what is wrong
    return bool(declared and declared > stream.STREAM_SECONDS)


def _prepare_streamed(path: Path, params: PipelineParams, min_seconds: float | None
                      ) -> PreparedTrack:
    """:func:`prepare_track` of a long track without holding its waveform (its ``y`` is a
    :class:`~slapp.stages.build.stream.StreamedWaveform`)."""
    a = params.audio
    rate, channels, declared = soundfile_info(path)
    m = measure(path, params)
    seconds = m["n"] / a.sample_rate
    check_levels(seconds=seconds, finite=m["finite"], peak=m["peak"],
                 min_seconds=(params.slicing.min_track_seconds if min_seconds is None
                              else min_seconds),
                 silence_threshold_db=a.silence_threshold_db)
    y = StreamedWaveform(path, params, start=m["start"], end=m["end"], gain=m["gain"])
    decoded = Decoded(np.zeros(0, np.float32), rate, channels, declared)
    return PreparedTrack(y=y, offset=m["start"], seconds=seconds, sample_rate=a.sample_rate,
                         source_rate=rate, source_channels=channels,
                         bandwidth_hz=m["bandwidth_hz"], loudness_db=m["loudness_db"],
                         notes=_notes(decoded, seconds, len(y), params))


def track_rng(seed: int, key: str) -> np.random.Generator:
    """Per-track generator: the same snippets whatever the worker or the order."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def build_starts(track: PreparedTrack, params: PipelineParams, *, key: str) -> np.ndarray:
    """The build's snippet starts (samples of ``track.y``): the ``"train"`` snippet plan,
    its random selection seeded per track."""
    return params.snippet_plan("train").starts(len(track.y),
                                               rng=track_rng(params.slicing.seed, key))
