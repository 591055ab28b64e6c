import numpy as np

from slapp.dsp.features import mel_power, n_frames, power_to_db, snippet_mel_power

from conftest import tone

KW = dict(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=100)


def crnn_features(y: np.ndarray, seconds: float = 3.0) -> np.ndarray:
    """The CRNN's features of the one snippet at the start of ``y`` (22.05 kHz), as the
    build and prediction compute them: ``(130, 100)`` dB."""
    power = snippet_mel_power(y, np.array([0]), n_frames=130,
                              snippet_samples=int(seconds * 22050), **KW)
    return power_to_db(power)[0]


def log_mel(snippets: np.ndarray, **kw) -> np.ndarray:
    """A reference: each snippet's own centred STFT (zero-padded at its edges), in dB."""
    power = mel_power(snippets, **kw)
    return power_to_db(power).transpose(0, 2, 1)


def test_shape_units_and_dtype():
    mel = crnn_features(tone(3.0, sr=22050)[:, 0])
    assert mel.shape == (130, 100) == (n_frames(66150, hop_length=512), 100)
    assert mel.dtype == np.float32
    assert mel.min() >= -100.0 - 1e-3  # floor = 10 log10(amin=1e-10)


def test_fixed_reference_keeps_loudness():
    # a per-snippet max reference would make these identical; a fixed one keeps 20 dB
    y = tone(3.0, sr=22050, seed=3)[:66150, 0]
    loud, quiet = crnn_features(y), crnn_features(0.1 * y)
    strong = loud > loud.max() - 30  # bins well above the floor
    assert np.allclose((loud - quiet)[strong], 20.0, atol=0.05)


def test_energy_lands_in_the_right_band():
    low = crnn_features(tone(3.0, sr=22050, freq=200)[:66150, 0])
    high = crnn_features(tone(3.0, sr=22050, freq=5000)[:66150, 0])
    assert low.mean(axis=0).argmax() < high.mean(axis=0).argmax()


def test_silence_is_the_floor():
    assert np.allclose(crnn_features(np.zeros(66150, np.float32)), -100.0)


def test_build_and_predict_compute_identical_features_for_each_snippet(tmp_path):
    """The build's cached snippet and predict's snippet at the same start are the same
    array, bit for bit (one decoding, one waveform preparation, one slicing, one feature
    function), with silence trimming and loudness levelling on."""
    from conftest import write_audio
    from slapp.stages.train.bundle import Bundle
    from slapp.params import params_from_dict
    from slapp.stages.label.predict import PredictOptions, Predictor
    from slapp.stages.build.prepare import build_starts, prepare_track

    y = np.concatenate([np.zeros((16000, 1), np.float32), tone(4.3, sr=16000, seed=2)])
    path = write_audio(tmp_path / "song.mp3", y, 16000)
    params = params_from_dict({
        "paths": {"input_dir": str(tmp_path)}, "model": {"backbone": "crnn"},
        "audio": {"sample_rate": 16000, "trim_silence": True, "loudness_db": -20.0},
        "slicing": {"snippet_seconds": 1.0, "overlap_seconds": 0.5,
                    "max_snippets_per_track": 4},
        "features": {"n_fft": 512, "hop_length": 256, "n_mels": 32, "dtype": "float16"}})
    track = prepare_track(path, params)
    assert 15000 <= track.offset <= 16000  # the leading second of silence, in 50 ms blocks
    starts = build_starts(track, params, key="song.mp3")
    built, times = track.features(starts, params)
    assert built.dtype == np.float16 and len(times) == 4  # 4 of 7 starts, spread
    predictor = Predictor(Bundle(folder=tmp_path, classes=[], params=params,
                                 stats={"method": "none"}, info={}),
                          PredictOptions(batch_size=4))
    prepared = predictor.prepare(path)  # what predict does with the file, from scratch
    mine, my_times = predictor.model_input(prepared.track, starts)
    np.testing.assert_array_equal(my_times, times)  # starts were already on whole frames
    np.testing.assert_array_equal(mine, built.astype(np.float32))


def test_snippets_cut_from_one_spectrogram_match_their_own_away_from_the_edges():
    """Frame-space snippets equal a per-snippet STFT except in the frames whose window
    reaches past the snippet (there the track's real neighbouring audio is used instead
    of zeros); any start is moved back to a whole frame."""
    from slapp.dsp.features import frame_starts

    y = tone(10.0, sr=22050, seed=4)[:, 0]
    starts = np.array([0, 22050, 44100, 150000])
    first = frame_starts(starts, hop_length=512)
    np.testing.assert_array_equal(first, [0, 43, 86, 292])
    power = snippet_mel_power(y, first, n_frames=130, snippet_samples=66150,
                              sample_rate=22050, n_fft=2048, hop_length=512, n_mels=100)
    own = log_mel(np.stack([y[f * 512:f * 512 + 66150] for f in first]), **KW)
    db = 10 * np.log10(np.maximum(power, 1e-10))
    np.testing.assert_allclose(db[:, 2:-2], own[:, 2:-2], atol=2e-3)
    np.testing.assert_allclose(db[0, :-2], own[0, :-2], atol=2e-3)  # the track's own start
    assert np.abs(db[1, :2] - own[1, :2]).max() > 0.1  # a snippet's left edge: real audio


def test_a_frame_has_one_value_whichever_snippets_ask_for_it():
    """Blocks are a fixed grid: the same frame computed for predict's 1 s hop and for the
    build's chosen snippets is bit for bit the same, across block boundaries too."""
    from slapp.dsp.features import BLOCK_FRAMES

    y = tone(40.0, sr=22050, seed=5)[:, 0]
    kw = dict(n_frames=130, snippet_samples=66150, sample_rate=22050, n_fft=2048,
              hop_length=512, n_mels=100)
    every = snippet_mel_power(y, np.arange(0, 1600, 43), **kw)
    some = snippet_mel_power(y, np.array([43 * 23]), **kw)  # straddles frame 1024
    assert 43 * 23 < BLOCK_FRAMES < 43 * 23 + 130
    np.testing.assert_array_equal(some[0], every[23])


def test_a_short_track_is_one_zero_padded_snippet():
    y = tone(1.5, sr=22050, seed=6)[:, 0]
    power = snippet_mel_power(y, np.array([0]), n_frames=130, snippet_samples=66150,
                              sample_rate=22050, n_fft=2048, hop_length=512, n_mels=100)
    own = log_mel(np.pad(y, (0, 66150 - len(y)))[None], **KW)
    np.testing.assert_allclose(10 * np.log10(np.maximum(power, 1e-10)), own, atol=2e-3)
    np.testing.assert_allclose(own[0, -20:], -100.0, atol=1e-4)  # the padding: silence


def test_own_mel_filters_and_stft_match_librosa():
    """slapp computes its filters and STFT without librosa (cold start); they must be
    librosa's."""
    import librosa

    from slapp.dsp.features import mel_basis, stft_power

    for sr, n_fft, n_mels, fmin, fmax in ((22050, 2048, 100, 0.0, None),
                                          (16000, 512, 96, 0.0, None),
                                          (22050, 1024, 64, 50.0, 8000.0)):
        ours = mel_basis(sr, n_fft, n_mels, fmin, fmax)
        theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)
    y = tone(1.0, sr=22050, seed=8)[:, 0]
    ours = stft_power(y, n_fft=2048, hop_length=512)
    theirs = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, center=False)) ** 2
    np.testing.assert_allclose(ours, theirs.T, rtol=1e-3, atol=1e-6 * theirs.max())
