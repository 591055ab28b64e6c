"""The bundle records what the training audio looked like; prediction notes tracks that
fall outside it (band-limited, much quieter or louder)."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import TINY, make_dataset, run_stages, tone, write_audio, write_params
from slapp.dsp.coverage import range_notes, training_range
from slapp.params import params_from_dict


@pytest.fixture(scope="module")
def bundle_22k(tmp_path_factory):
    """A tiny bundle trained on 22.05 kHz full-band tracks (tones + white noise)."""
    root = tmp_path_factory.mktemp("coverage")
    music = make_dataset(root / "music", per_class=4, seconds=3.0)
    params = write_params(root / "params.json", music, root / "out", **TINY,
                          audio={"sample_rate": 22050})
    run_stages(params, "build", "process", "train")
    return root, params


def test_bundle_records_the_training_audio(bundle_22k):
    root, _ = bundle_22k
    info = json.loads((root / "out" / "model" / "bundle.json").read_text())
    audio = info["training_audio"]
    assert audio["source_rates"] == [22050]
    assert audio["tracks"] == 6  # 2 of 4 per class train (val and test take 1 each)
    assert audio["bandwidth_hz"]["min"] > 10500  # white noise reaches Nyquist
    assert -25 < audio["loudness_db"]["min"] <= audio["loudness_db"]["max"] < -10


def test_16khz_file_gets_the_note_and_a_matching_file_does_not(bundle_22k, tmp_path,
                                                                capsys):
    import predict_track

    root, params = bundle_22k
    y = tone(3.0, sr=16000, freq=110.0, seed=5)
    narrow = write_audio(tmp_path / "narrow_16k.wav", y, 16000)
    same = write_audio(tmp_path / "full_22k.wav", tone(3.0, sr=22050, freq=110.0, seed=5),
                       22050)
    quiet = write_audio(tmp_path / "quiet_22k.wav",
                        0.01 * tone(3.0, sr=22050, freq=110.0, seed=5), 22050)
    out = tmp_path / "labels.csv"
    assert predict_track.main(["--params", str(params), "--quiet", str(narrow), str(same),
                               str(quiet), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {r["path"]: r for r in csv.DictReader(out.open())}
    note = rows[str(narrow)]["notes"]
    assert note.startswith("16000 Hz source upsampled to 22050 Hz")  # the build's note too
    assert "; content stops at 7." in note and "trained on audio up to 11.0 kHz" in note
    assert rows[str(same)]["notes"] == ""
    assert rows[str(quiet)]["notes"].startswith("loudness -5") and "outside the training" \
        in rows[str(quiet)]["notes"]
    assert "2 track(s) unlike the training audio" in printed
    assert "note: content stops at 7." in printed

    out_json = tmp_path / "labels.json"
    assert predict_track.main(["--params", str(params), "--quiet", str(narrow),
                               "--output", str(out_json)]) == 0
    track = json.loads(out_json.read_text())["tracks"][0]
    assert track["outside_training"] is True and "; ".join(track["notes"]) == note


def _params(**audio):
    return params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"}, "audio": audio})


def _notes(params, **kw):
    from slapp.dsp.coverage import model_band_hz

    return range_notes(**kw, band_hz=model_band_hz(params.audio.sample_rate,
                                                   params.features.fmax),
                       levelled=params.audio.loudness_db is not None)


def test_range_notes_count_only_what_the_model_sees():
    trained = training_range([{"bandwidth_hz": 10000.0, "loudness_db": -20.0,
                               "source_rate": 22050},
                              {"bandwidth_hz": 11000.0, "loudness_db": -12.0}])
    assert trained["bandwidth_hz"]["min"] == 10000.0
    full = _params()
    assert _notes(full, bandwidth_hz=7800, loudness_db=-15, trained=trained)
    assert not _notes(full, bandwidth_hz=9500, loudness_db=-15, trained=trained)
    # with features.fmax = 8000 the model never looks above 8 kHz: 7.8 kHz is fine
    low = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"},
                           "features": {"fmax": 8000}})
    assert not _notes(low, bandwidth_hz=7800, loudness_db=-15, trained=trained)
    # loudness: outside [-23, -9] dBFS is noted, unless every track is levelled anyway
    assert _notes(full, bandwidth_hz=10500, loudness_db=-30, trained=trained)
    assert not _notes(_params(loudness_db=-20.0), bandwidth_hz=10500, loudness_db=-30,
                      trained=trained)
    assert _notes(full, bandwidth_hz=7800, loudness_db=-15, trained=None) == []
