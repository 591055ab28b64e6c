"""Decoding: any supported file → one mono float32 waveform at the requested rate.

soundfile (libsndfile, bundled in its wheel) reads MP3, WAV, FLAC, OGG/Opus, AU and AIFF.
Containers it cannot read (m4a, aac, mp4, wma...) go through the ffmpeg binary shipped by
the ``imageio-ffmpeg`` wheel, which is also the second chance for a file soundfile
refuses. No system package is needed.

The decoder is chosen by the file's content (:func:`sniff`), not its name: an AAC stream
saved as ``.mp3`` goes to ffmpeg, with a note saying what the file really is. An MP3 whose
decoding ends well before its size implies (a file made of two streams of different
formats, which libmpg123 stops at) is decoded again by ffmpeg, and the longer result kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import subprocess
from collections.abc import Iterator
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
    notes: tuple[str, ...] = ()


def to_mono(y: np.ndarray, *, mixdown: str = "mean") -> np.ndarray:
    """``(n_samples, n_channels)`` → ``(n_samples,)`` float32; ``mixdown`` is mean|first."""
    if y.ndim == 1:
        return y.astype(np.float32, copy=False)
    if mixdown == "first" or y.shape[1] == 1:
        return np.ascontiguousarray(y[:, 0], dtype=np.float32)
    if y.shape[1] > 7:  # numpy sums 8 or more values pairwise
        return y.mean(axis=1, dtype=np.float32)
    # channel by channel: the very sums of ``y.mean(axis=1)``, ~7x faster (numpy's
    # reduction over a short strided axis was 40 % of decoding a stereo MP3)
    out = np.array(y[:, 0], dtype=np.float32)
    for c in range(1, y.shape[1]):
        out += y[:, c]
    out /= y.shape[1]
    return out


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
MAX_HOURS = 12.0  # longer audio is refused while decoding (3.8 GB at 22.05 kHz), whatever
                  # its header claims: a broken header cannot make slapp eat all memory


SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISDIR, "a folder"))


def check_regular_file(path: str | os.PathLike) -> None:
    """Raise :class:`AudioError` when ``path`` (links followed) is not a regular file: a
    named pipe would block the reader forever, a device (a link to ``/dev/zero``) never
    ends, a link loop has no end. A missing file is left to the decoder's own message."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError("a symbolic link that loops back on itself (no file at its end): "
                             "fix or remove the link") from None
        return
    for test, what in SPECIAL_FILES:
        if test(mode):
            raise AudioError(f"not a file but {what}: slapp reads audio files only")


def _too_long(seconds: float) -> AudioError:
    return AudioError(f"too long: more than {MAX_HOURS:g} hours of audio (decoding stopped "
                      f"at {seconds / 3600:.1f} h), expected at most {MAX_HOURS:g} hours; "
                      "cut it into parts")


def soundfile_info(path: Path) -> tuple[int, int, float | None]:
    """``(source rate, channels, declared seconds or None)`` of a file soundfile reads."""
    with _quiet_stderr(), sf.SoundFile(str(path)) as f:
        return f.samplerate, f.channels, (f.frames / f.samplerate if f.frames > 0 else None)


def decode_blocks(path: str | os.PathLike, *, sample_rate: int, mixdown: str = "mean"
                  ) -> Iterator[np.ndarray]:
    """The file decoded block by block — each block mixed down and resampled with a
    streaming soxr resampler, so the result does not depend on the block edges — as mono
    float32 blocks at ``sample_rate``: a long file never exists in memory at its source
    rate and channel count, nor, for a caller that streams, whole. Stops with
    :class:`AudioError` past :data:`MAX_HOURS`."""
    import soxr  # a librosa dependency

    with _quiet_stderr(), sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        stream = (soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
                  if rate != sample_rate else None)
        limit, n = int(MAX_HOURS * 3600 * sample_rate), 0
        while True:
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            last = len(block) < BLOCK_FRAMES
            mono = to_mono(block, mixdown=mixdown)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if n + len(mono) > limit:
                raise _too_long(n / sample_rate)
            n += len(mono)
            yield mono
            if last:
                return


def _read_soundfile(path: Path, *, sample_rate: int, mixdown: str
                    ) -> tuple[np.ndarray, int, int, float | None]:
    """The whole file through :func:`decode_blocks`: ``(mono float32 at sample_rate,
    source rate, source channels, declared s)``."""
    rate, channels, declared = soundfile_info(path)
    out = np.empty(int(min(MAX_HOURS * 3600, declared or 1.0) * sample_rate) + 1024,
                   np.float32)
    n = 0
    for mono in decode_blocks(path, sample_rate=sample_rate, mixdown=mixdown):
        if n + len(mono) > len(out):  # the header under-declared the length
            out = np.resize(out, max(2 * len(out), n + len(mono)))
        out[n:n + len(mono)] = mono
        n += len(mono)
    return out[:n].copy() if len(out) > n + (1 << 20) else out[:n], rate, channels, declared


_FFMPEG_STREAM = re.compile(r"Audio: .*?(\d+) Hz, ([^,]+)")
_FFMPEG_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6,
                   "6.1": 7, "7.1": 8}


def _read_ffmpeg(path: Path, sample_rate: int) -> tuple[np.ndarray, int, int]:
    """Decode with ffmpeg to 2-channel float32 at ``sample_rate``; return source rate/channels."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path),
           "-map", "0:a:0", "-t", str(MAX_HOURS * 3600 + 1), "-f", "f32le", "-ac", "2",
           "-ar", str(sample_rate), "-"]
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
    if len(y) > MAX_HOURS * 3600 * sample_rate:
        raise _too_long(len(y) / sample_rate)
    if channels == 1:
        y = y[:, :1]
    return y, rate, channels


# first bytes → what the file is; soundfile reads the kinds in SOUNDFILE_KINDS
SOUNDFILE_KINDS = frozenset({"MP3", "WAV", "FLAC", "Ogg", "AIFF", "AU"})
_NAMED = {".mp3": "MP3", ".wav": "WAV", ".flac": "FLAC", ".ogg": "Ogg", ".oga": "Ogg",
          ".opus": "Ogg", ".aif": "AIFF", ".aiff": "AIFF", ".au": "AU", ".snd": "AU",
          ".m4a": "MP4/M4A", ".mp4": "MP4/M4A", ".aac": "AAC (ADTS)", ".wma": "WMA (ASF)"}


def sniff(head: bytes) -> str | None:
    """The audio format of a file from its first bytes (an ID3v2 tag skipped), or None."""
    if head[:3] == b"ID3" and len(head) >= 10:
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        return sniff(head[10 + size:]) if 10 + size < len(head) else "MP3"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    magic = {b"fLaC": "FLAC", b"OggS": "Ogg", b"FORM": "AIFF", b".snd": "AU",
             b"\x30\x26\xb2\x75": "WMA (ASF)"}
    if head[:4] in magic:
        return magic[head[:4]]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x03
        return "AAC (ADTS)" if layer == 0 and head[1] & 0xF0 == 0xF0 else "MP3"
    return None


def _read_head(path: Path, n: int = 1 << 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _mp3_seconds_by_size(path: Path, size: int) -> float | None:
    """The length an MP3's size and first frames' bitrate imply (None when unknown)."""
    try:
        from mutagen.mp3 import MP3

        bitrate = MP3(path).info.bitrate
    except Exception:
        return None
    return size * 8 / bitrate if bitrate else None


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
    try:
        kind = sniff(_read_head(path))
    except OSError as exc:
        raise AudioError(f"cannot read it: {exc.strerror or exc}") from None
    named = _NAMED.get(ext)
    notes = ((f"its content is {kind}, not the {named} its name says: decoded as {kind}",)
             if kind and named and kind != named else ())
    first_error = None
    if kind in SOUNDFILE_KINDS or (kind is None and ext not in FFMPEG_EXTENSIONS):
        try:
            mono, rate, channels, declared = _read_soundfile(path, sample_rate=sample_rate,
                                                             mixdown=mixdown)
            decoded = Decoded(mono, rate, channels, declared, notes)
            return _whole_mp3(path, decoded, size, sample_rate, mixdown) if kind == "MP3" \
                else decoded
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            first_error = exc
    try:
        y, rate, channels = _read_ffmpeg(path, sample_rate)
    except AudioError:
        if first_error is not None:
            raise AudioError("not a readable audio file (the decoders do not recognise "
                             "its content)") from None
        raise
    return Decoded(to_mono(y, mixdown=mixdown), rate, channels, None, notes)


def _whole_mp3(path: Path, decoded: Decoded, size: int, sample_rate: int, mixdown: str
               ) -> Decoded:
    """``decoded``, or ffmpeg's decoding when libmpg123 stopped well before the length the
    file's size implies and ffmpeg gets further (an MP3 that changes format midway)."""
    seconds = len(decoded.y) / sample_rate
    implied = _mp3_seconds_by_size(path, size)
    if implied is None or seconds >= 0.8 * implied - 1.0:
        return decoded
    try:
        y, _, _ = _read_ffmpeg(path, sample_rate)
    except AudioError:
        return decoded
    if len(y) <= len(decoded.y) + sample_rate:
        return decoded
    note = (f"the MP3 decoder stopped after {seconds:.1f} s although the file's size "
            "implies more (the stream changes format midway?): decoded all "
            f"{len(y) / sample_rate:.1f} s with ffmpeg")
    return Decoded(to_mono(y, mixdown=mixdown), decoded.source_rate,
                   decoded.source_channels, None, decoded.notes + (note,))


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
