"""A long track is prepared in passes (slapp.stages.build.stream) without holding its waveform,
and gives the features of the whole-waveform path to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tone, write_audio
from slapp.params import params_from_dict


@pytest.mark.parametrize("audio, source_rate, channels", [
    ({}, 22050, 1),
    ({"trim_silence": True, "loudness_db": -20.0}, 16000, 2),   # resampled, levelled
    ({"trim_silence": True, "loudness_db": -23.0}, 44100, 2),
])
def test_a_streamed_long_track_gives_the_same_features_to_the_bit(tmp_path, monkeypatch,
                                                                  audio, source_rate,
                                                                  channels):
    import slapp.dsp.audio as audio_mod
    from slapp.dsp.slicing import track_starts
    from slapp.stages.build import prepare, stream

    y = tone(40.0, sr=source_rate, channels=channels, seed=4)
    y[: source_rate * 2] = 0.0          # leading silence to trim
    y[-source_rate * 3:] *= 0.001       # and a quiet tail
    path = write_audio(tmp_path / "long.flac", y, source_rate)
    params = params_from_dict({"paths": {"input_dir": str(tmp_path)}, "model": {"backbone": "crnn"},
                               "audio": {"sample_rate": 22050, **audio}})
    monkeypatch.setattr(audio_mod, "BLOCK_FRAMES", 3001)  # many odd-sized decode blocks
    whole = prepare.prepare_track(path, params)
    monkeypatch.setattr(stream, "STREAM_SECONDS", 10)
    streamed = prepare.prepare_track(path, params)
    assert isinstance(streamed.y, stream.StreamedWaveform)
    assert isinstance(whole.y, np.ndarray)
    assert (len(streamed.y), streamed.offset, streamed.seconds) == (
        len(whole.y), whole.offset, whole.seconds)
    assert streamed.bandwidth_hz == whole.bandwidth_hz
    assert streamed.loudness_db == whole.loudness_db and streamed.notes == whole.notes
    starts = track_starts(len(whole.y), snippet_samples=params.snippet_samples,
                          hop_samples=params.audio.sample_rate)
    for chunk in (starts[:5], starts[5:17], starts[17:]):  # as predict asks, in order
        a, ta = whole.features(chunk, params)
        b, tb = streamed.features(chunk, params)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ta, tb)


def test_batches_that_start_in_the_block_the_last_one_ended_in_are_read(tmp_path,
                                                                        monkeypatch):
    """Predict's batches of snippets: each new batch may begin in the spectrogram block
    the previous batch's last snippet ended in, so the stream keeps that much."""
    from slapp.dsp.slicing import track_starts
    from slapp.stages.build import prepare, stream

    path = write_audio(tmp_path / "long.flac", tone(100.0, sr=22050, seed=9), 22050)
    params = params_from_dict({"paths": {"input_dir": str(tmp_path)}, "model": {"backbone": "crnn"}})
    whole = prepare.prepare_track(path, params)
    monkeypatch.setattr(stream, "STREAM_SECONDS", 10)
    streamed = prepare.prepare_track(path, params)
    starts = track_starts(len(whole.y), snippet_samples=params.snippet_samples,
                          hop_samples=params.audio.sample_rate)  # 43 frames apart
    for i in range(0, len(starts), 7):  # batches of 7: many boundaries inside blocks
        chunk = starts[i:i + 7]
        a, ta = whole.features(chunk, params)
        b, tb = streamed.features(chunk, params)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ta, tb)


def test_a_streamed_waveform_refuses_to_be_read_backwards(tmp_path, monkeypatch):
    from slapp.stages.build import prepare, stream

    path = write_audio(tmp_path / "long.wav", tone(60.0, sr=22050), 22050)
    monkeypatch.setattr(stream, "STREAM_SECONDS", 5)
    track = prepare.prepare_track(path, params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"}}))
    assert len(track.y[1_000_000:1_100_000]) == 100_000
    assert len(track.y[500_000:500_010]) == 10  # one block and a snippet back: kept
    with pytest.raises(ValueError, match="read backwards"):
        track.y[0:10]
