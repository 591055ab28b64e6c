import subprocess

import numpy as np
import pytest
import soundfile as sf

from slapp.dsp.audio import decode, resample, to_mono
from slapp.errors import AudioError

from conftest import tone, write_audio


def test_mp3_48k_stereo_becomes_22050_mono(tmp_path):
    path = write_audio(tmp_path / "a b é.mp3", tone(2.0, sr=48000, channels=2), 48000)
    d = decode(path, sample_rate=22050)
    assert d.y.ndim == 1 and d.y.dtype == np.float32
    assert abs(len(d.y) / 22050 - 2.0) < 0.1  # MP3 adds encoder padding
    assert (d.source_rate, d.source_channels) == (48000, 2)
    assert 0.1 < np.abs(d.y).max() < 1.0


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".au"])
def test_other_formats(tmp_path, ext):
    path = write_audio(tmp_path / f"x{ext}", tone(1.0, sr=8000), 8000)
    d = decode(path, sample_rate=16000)
    assert d.source_rate == 8000 and abs(len(d.y) - 16000) < 200


def test_m4a_through_bundled_ffmpeg(tmp_path):
    import imageio_ffmpeg

    wav = write_audio(tmp_path / "x.wav", tone(1.5, sr=44100, channels=2), 44100)
    m4a = tmp_path / "x.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav),
                    "-c:a", "aac", str(m4a)], check=True)
    d = decode(m4a, sample_rate=22050)
    assert (d.source_rate, d.source_channels) == (44100, 2)
    assert abs(len(d.y) / 22050 - 1.5) < 0.1


def test_mixdown():
    y = np.stack([np.ones(4), -np.ones(4)], axis=1).astype(np.float32)
    assert to_mono(y, mixdown="mean").tolist() == [0, 0, 0, 0]
    assert to_mono(y, mixdown="first").tolist() == [1, 1, 1, 1]


def test_resample_keeps_duration():
    y = tone(1.0, sr=8000)[:, 0]
    assert len(resample(y, orig_sr=8000, target_sr=22050)) == 22050


def test_empty_file(tmp_path):
    (tmp_path / "e.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match=r"^empty file \(0 bytes\)$"):
        decode(tmp_path / "e.mp3", sample_rate=22050)


def test_text_file_named_mp3(tmp_path):
    (tmp_path / "t.mp3").write_text("not music\n" * 200)
    with pytest.raises(AudioError, match=r"^not a readable audio file"):
        decode(tmp_path / "t.mp3", sample_rate=22050)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"cannot read it"):
        decode(tmp_path / "nope.wav", sample_rate=22050)


def test_encode_mp3_writes_the_bitrate_rate_and_channels_asked_for(tmp_path):
    from slapp.dsp.audio import encode_mp3

    y = tone(4.0, sr=22050)[:, 0]
    encode_mp3(tmp_path / "low.mp3", y, 22050, bitrate="64k")
    encode_mp3(tmp_path / "wide.mp3", y, 22050, bitrate="192k", out_rate=44100, channels=2)
    low, wide = sf.info(str(tmp_path / "low.mp3")), sf.info(str(tmp_path / "wide.mp3"))
    assert (low.samplerate, low.channels) == (22050, 1)
    assert (wide.samplerate, wide.channels) == (44100, 2)
    assert low.duration == pytest.approx(4.0, abs=0.1)
    # 64 kbit/s for 4 s is about 32 kB; 192 kbit/s about 96 kB
    assert 28_000 < (tmp_path / "low.mp3").stat().st_size < 36_000
    assert 88_000 < (tmp_path / "wide.mp3").stat().st_size < 104_000


@pytest.mark.parametrize("channels", [2, 3, 6, 8, 10])
def test_mono_mixdown_equals_the_mean_of_the_channels_exactly(channels):
    y = np.random.default_rng(channels).standard_normal((10_001, channels)).astype(np.float32)
    mono = to_mono(y, mixdown="mean")
    assert mono.dtype == np.float32 and mono.shape == (10_001,)
    np.testing.assert_array_equal(mono, y.mean(axis=1, dtype=np.float32))
