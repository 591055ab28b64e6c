"""Audio profile and levelling: bandwidth, loudness, silence trimming."""

from __future__ import annotations

import numpy as np
import pytest

from slapp.dsp.audio import resample
from slapp.dsp.levels import bandwidth_hz, loudness_db, normalize_loudness, trim_silence


def _noise(seconds=4.0, sr=22050, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))
            ).astype(np.float32)


def test_bandwidth_sees_where_a_resampled_file_stops():
    y = _noise()
    assert bandwidth_hz(y, sample_rate=22050) > 10500  # full band up to 11.025 kHz
    y16 = resample(resample(y, orig_sr=22050, target_sr=16000), orig_sr=16000,
                   target_sr=22050)
    assert 7500 < bandwidth_hz(y16, sample_rate=22050) < 8100
    y8 = resample(resample(y, orig_sr=22050, target_sr=8000), orig_sr=8000,
                  target_sr=22050)
    assert 3700 < bandwidth_hz(y8, sample_rate=22050) < 4100
    assert bandwidth_hz(np.zeros(22050, np.float32), sample_rate=22050) == 0.0


def test_loudness_of_a_sine_ignores_silence_and_follows_gain():
    sr = 16000
    t = np.arange(3 * sr) / sr
    sine = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    assert loudness_db(sine, sample_rate=sr) == pytest.approx(-3.01, abs=0.05)
    padded = np.concatenate([np.zeros(5 * sr, np.float32), sine])
    # one 0.4 s block straddles the start: within 0.3 dB
    assert loudness_db(padded, sample_rate=sr) == pytest.approx(-3.01, abs=0.3)
    assert loudness_db(0.1 * sine, sample_rate=sr) == pytest.approx(-23.01, abs=0.05)
    assert loudness_db(np.zeros(sr, np.float32), sample_rate=sr) == -np.inf
    level = normalize_loudness(0.01 * sine, sample_rate=sr, target_db=-20.0)
    assert loudness_db(level, sample_rate=sr) == pytest.approx(-20.0, abs=0.01)


def test_trim_silence_cuts_leading_and_trailing_silence_only():
    sr = 20000
    music = _noise(2.0, sr)
    y = np.concatenate([np.zeros(3 * sr, np.float32), music, np.zeros(sr, np.float32)])
    out = trim_silence(y, sample_rate=sr, threshold_db=-60.0)
    assert len(out) == len(music)
    assert np.array_equal(out, music)
    assert len(trim_silence(music, sample_rate=sr, threshold_db=-60.0)) == len(music)
