"""Decoding: any supported file → one mono float32 waveform at the requested rate.

soundfile (libsndfile, bundled in its wheel) reads MP3, WAV, FLAC, OGG/Opus, AU and AIFF.
Containers it cannot read (m4a, aac, mp4, wma...) go through the ffmpeg binary shipped by
the ``imageio-ffmpeg`` wheel, which is also the second chance for a file soundfile
refuses. No system package is needed.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from slapp.errors import AudioError

SOUNDFILE_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus",
                                  ".au", ".snd", ".aif", ".aiff"})
FFMPEG_EXTENSIONS = frozenset({".m4a", ".aac", ".mp4", ".wma"})
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS


@dataclass(frozen=True)
class Decoded:
    """A decoded track.

    ``y`` is ``(n_samples,)`` float32 in [-1, 1] at the requested rate; the rest describes
    the source file (``declared_seconds``: the length its header announces, if known).
    """

    y: np.ndarray
    source_rate: int
    source_channels: int
    declared_seconds: float | None


def to_mono(y: np.ndarray, *, mixdown: str = "mean") -> np.ndarray:
    """``(n_samples, n_channels)`` → ``(n_samples,)`` float32; ``mixdown`` is mean|first."""
    if y.ndim == 1:
        return y.astype(np.float32, copy=False)
    if mixdown == "first" or y.shape[1] == 1:
        return np.ascontiguousarray(y[:, 0], dtype=np.float32)
    return y.mean(axis=1, dtype=np.float32)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of a ``(n_samples,)`` signal."""
    if orig_sr == target_sr:
        return y
    import soxr  # a librosa dependency

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level stderr (libmpg123 prints notes about every odd MP3 frame)."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. some GUI launchers)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


BLOCK_FRAMES = 1 << 18  # ~6 s at 44.1 kHz: decoded, mixed down and resampled at a time


def _read_soundfile(path: Path, *, sample_rate: int, mixdown: str
                    ) -> tuple[np.ndarray, int, int, float | None]:
    """Decode block by block — mix down and resample each block (a streaming soxr
    resampler, so the result does not depend on the block size's edges) — so that a long
    file never exists in memory at its source rate and channel count.

    Returns ``(mono float32 at sample_rate, source rate, source channels, declared s)``."""
    import soxr  # a librosa dependency

    with _quiet_stderr(), sf.SoundFile(str(path)) as f:
        rate, channels = f.samplerate, f.channels
        declared = f.frames / rate if f.frames > 0 else None
        stream = (soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
                  if rate != sample_rate else None)
        out = np.empty(int((f.frames if f.frames > 0 else rate) * sample_rate / rate)
                       + 1024, np.float32)
        n = 0
        while True:
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            last = len(block) < BLOCK_FRAMES
            mono = to_mono(block, mixdown=mixdown)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if n + len(mono) > len(out):  # the header under-declared the length
                out = np.resize(out, max(2 * len(out), n + len(mono)))
            out[n:n + len(mono)] = mono
            n += len(mono)
            if last:
                break
    return out[:n].copy() if len(out) > n + (1 << 20) else out[:n], rate, channels, declared


_FFMPEG_STREAM = re.compile(r"Audio: .*?(\d+) Hz, ([^,]+)")
_FFMPEG_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6,
                   "6.1": 7, "7.1": 8}


def _read_ffmpeg(path: Path, sample_rate: int) -> tuple[np.ndarray, int, int]:
    """Decode with ffmpeg to 2-channel float32 at ``sample_rate``; return source rate/channels."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path),
           "-map", "0:a:0", "-f", "f32le", "-ac", "2", "-ar", str(sample_rate), "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg to decode it: {exc}") from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = [line for line in err.strip().splitlines() if line.strip()]
        raise AudioError("not a readable audio file (ffmpeg: "
                         f"{last[-1].strip() if last else 'unknown error'})")
    match = _FFMPEG_STREAM.search(err)
    rate = int(match.group(1)) if match else sample_rate
    channels = _FFMPEG_LAYOUTS.get(match.group(2).strip(), 2) if match else 2
    y = np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, 2)
    if channels == 1:
        y = y[:, :1]
    return y, rate, channels


def decode(path: str | os.PathLike, *, sample_rate: int, mixdown: str = "mean") -> Decoded:
    """Decode ``path`` once to mono float32 at ``sample_rate`` Hz.

    Raises :class:`AudioError` (message without the file name) when the file is empty,
    unreadable or not audio.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(f"cannot read it: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError("cannot read it: permission denied")
    ext = path.suffix.lower()
    first_error = None
    if ext not in FFMPEG_EXTENSIONS:
        try:
            mono, rate, channels, declared = _read_soundfile(path, sample_rate=sample_rate,
                                                             mixdown=mixdown)
            return Decoded(mono, rate, channels, declared)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            first_error = exc
    try:
        y, rate, channels = _read_ffmpeg(path, sample_rate)
    except AudioError:
        if first_error is not None:
            raise AudioError("not a readable audio file (the decoders do not recognise "
                             "its content)") from None
        raise
    return Decoded(to_mono(y, mixdown=mixdown), rate, channels, None)


def encode_mp3(path: str | os.PathLike, y: np.ndarray, sample_rate: int, *,
               bitrate: str = "128k", out_rate: int | None = None, channels: int = 1) -> None:
    """Write mono ``y`` ``(n_samples,)`` float32 at ``sample_rate`` as an MP3 of
    ``bitrate`` (e.g. ``"64k"``), resampled to ``out_rate`` and copied to ``channels``
    channels: pydub, with the ``imageio-ffmpeg`` binary's LAME as its encoder (soundfile
    cannot choose a bitrate). Not atomic: write to a temp path and rename."""
    import warnings

    import imageio_ffmpeg

    with warnings.catch_warnings():  # "Couldn't find ffmpeg": it is set just below
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment
    AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()
    pcm = (np.clip(y, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    segment = AudioSegment(pcm, sample_width=2, frame_rate=sample_rate, channels=1)
    segment.set_frame_rate(out_rate or sample_rate).set_channels(channels).export(
        str(path), format="mp3", bitrate=bitrate)
