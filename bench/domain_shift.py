"""Domain shifts for the accuracy study: each test track re-made as users' files differ.

Every shifted copy is made from the track's own decoding (``slapp.dsp.audio.decode`` at the
source's rate), changed with numpy/soxr, and written as WAV (soundfile) or MP3 (pydub, with the
``imageio-ffmpeg`` binary's libmp3lame). Copies are made once into
``<work>/shifted/<shift>/<track key>`` (atomically) and reused.

| shift | what it does |
| --- | --- |
| sr16k | resampled to 16 kHz (content stops at 8 kHz), 16-bit WAV |
| sr8k | resampled to 8 kHz (content stops at 4 kHz), 16-bit WAV |
| mp3_64k | re-encoded as 64 kbps MP3 (LAME's low-pass at this rate) |
| stereo44k | 44.1 kHz stereo MP3 at 192 kbps (both channels the track) |
| gain-20 | 20 dB quieter, 16-bit WAV |
| gain+10 | 10 dB louder and clipped at full scale, 16-bit WAV |
| silence5s | 5 s of digital silence before the music, 16-bit WAV |
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SHIFTS = ("sr16k", "sr8k", "mp3_64k", "stereo44k", "gain-20", "gain+10", "silence5s")


def shifted_waveform(y: np.ndarray, rate: int, shift: str) -> tuple[np.ndarray, int]:
    """``(waveform, rate)`` of mono ``y`` after ``shift`` (the WAV shifts only)."""
    from slapp.dsp.audio import resample

    if shift == "sr16k":
        return resample(y, orig_sr=rate, target_sr=16000), 16000
    if shift == "sr8k":
        return resample(y, orig_sr=rate, target_sr=8000), 8000
    if shift == "gain-20":
        return y * np.float32(10 ** (-20 / 20)), rate
    if shift == "gain+10":
        return np.clip(y * np.float32(10 ** (10 / 20)), -1.0, 1.0), rate
    if shift == "silence5s":
        return np.concatenate([np.zeros(5 * rate, np.float32), y]), rate
    raise ValueError(f"unknown shift {shift!r}")


def make_shifted(src: Path, dst_root: Path, key: str, shift: str) -> Path:
    """The shifted copy of ``src`` (made if missing) under ``dst_root/shift``."""
    import soundfile as sf

    from slapp.dsp.audio import decode, encode_mp3

    ext = ".mp3" if shift in ("mp3_64k", "stereo44k") else ".wav"
    out = (dst_root / shift / key).with_suffix(ext)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    rate = sf.info(str(src)).samplerate
    y = decode(src, sample_rate=rate).y
    tmp = out.with_name(".tmp-" + out.name)
    if shift == "mp3_64k":
        encode_mp3(tmp, y, rate, bitrate="64k")
    elif shift == "stereo44k":
        encode_mp3(tmp, y, rate, bitrate="192k", out_rate=44100, channels=2)
    else:
        z, z_rate = shifted_waveform(y, rate, shift)
        sf.write(str(tmp), z, z_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, out)
    return out


def shifted_files(dataset, keys: list[str], dst_root: Path) -> dict[str, dict[str, Path]]:
    """``{shift: {key: path}}`` for ``keys`` of ``dataset`` (a ``slapp.store.discovery`` scan)."""
    return {shift: {key: make_shifted(dataset.root / dataset.files[key], dst_root, key, shift)
                    for key in keys} for shift in SHIFTS}
