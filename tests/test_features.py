import numpy as np

from slapp.features import log_mel, n_frames

from conftest import tone

KW = dict(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=100)


def test_shape_units_and_dtype():
    snippets = tone(3.0, sr=22050)[:, 0][None, :66150].repeat(2, axis=0)
    mel = log_mel(snippets, **KW)
    assert mel.shape == (2, 130, 100) == (2, n_frames(66150, hop_length=512), 100)
    assert mel.dtype == np.float32
    assert mel.min() >= -100.0 - 1e-3  # floor = 10 log10(amin=1e-10)


def test_fixed_reference_keeps_loudness():
    # a per-snippet max reference would make these identical; a fixed one keeps 20 dB
    y = tone(3.0, sr=22050, seed=3)[:66150, 0]
    loud, quiet = log_mel(np.stack([y, 0.1 * y]), **KW)
    strong = loud > loud.max() - 30  # bins well above the floor
    assert np.allclose((loud - quiet)[strong], 20.0, atol=0.05)


def test_energy_lands_in_the_right_band():
    low = tone(3.0, sr=22050, freq=200)[:66150, 0]
    high = tone(3.0, sr=22050, freq=5000)[:66150, 0]
    mel = log_mel(np.stack([low, high]), **KW)
    assert mel[0].mean(axis=0).argmax() < mel[1].mean(axis=0).argmax()


def test_silence_is_the_floor():
    mel = log_mel(np.zeros((1, 4096), np.float32), sample_rate=16000, n_fft=512,
                  hop_length=256, n_mels=32, amin=1e-10)
    assert np.allclose(mel, -100.0)
