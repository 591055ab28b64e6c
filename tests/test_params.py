import dataclasses
import json

import pytest

from slapp.errors import ParameterError
from slapp.params import load_params, params_from_dict

from conftest import ROOT


def load(tmp_path, raw):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(raw) if not isinstance(raw, str) else raw)
    return load_params(path)


def base(**sections):
    raw = {"paths": {"input_dir": "music"}, "model": {"backbone": "crnn"}}  # the CRNN's input settings
    raw.update(sections)
    return raw


def test_defaults_and_derived_sizes(tmp_path):
    p = load(tmp_path, base())
    assert p.audio.sample_rate == 22050
    assert p.slicing.snippet_seconds == 3.0 and p.slicing.overlap_seconds == 1.0
    assert p.slicing.max_snippets_per_track == 14
    assert (p.features.n_fft, p.features.hop_length, p.features.n_mels) == (2048, 512, 100)
    assert p.snippet_samples == 66150 and p.hop_samples == 44100
    assert p.n_frames == 130
    assert p.split.val_share == 0.1 and p.split.test_share == 0.1
    # relative paths resolve against the parameters file's folder
    assert p.paths.input_dir == tmp_path.resolve() / "music"
    assert p.paths.output_dir == tmp_path.resolve() / "output"


def test_committed_parameters_file_loads():
    p = load_params(ROOT / "pipeline_parameters.json")
    assert p.model.backbone == "musicnn-msd"  # the default: pretrained, frozen + a head
    assert (p.n_frames, p.features.n_mels, p.audio.sample_rate) == (187, 96, 16000)
    raw = json.loads((ROOT / "pipeline_parameters.json").read_text())
    raw["model"]["backbone"] = "crnn"  # the file's CRNN settings, for that backbone
    crnn = params_from_dict(raw)
    assert (crnn.n_frames, crnn.features.n_mels, crnn.audio.sample_rate) == (130, 100, 22050)


@pytest.mark.parametrize("raw, match", [
    (base(slicing={"snippet_second": 3}),
     r"Unknown parameter 'slicing.snippet_second'. Did you mean 'snippet_seconds'\?"),
    (base(extra=1), r"Unknown parameter 'extra'"),
    (base(features={"n_mels": "100"}),
     r"The 'features.n_mels' parameter must be an int in the range \[1, 1024\]. "
     r"Got '100' \(a string\) instead."),
    (base(features={"n_mels": True}), r"'features.n_mels' parameter must be an int.*Got true"),
    (base(features={"n_mels": 12.5}), r"'features.n_mels'.*Got 12.5 instead"),
    (base(features={"hop_length": 0}), r"'features.hop_length' parameter must be an int in "
                                       r"the range \[1, inf\). Got 0 instead."),
    (base(slicing={"overlap_seconds": 3.0}),
     r"'slicing.overlap_seconds' parameter must be a number in the range \[0, 3.0\)"),
    (base(slicing={"overlap_seconds": -1}), r"'slicing.overlap_seconds'.*Got -1 instead"),
    (base(slicing={"selection": "middle"}),
     r"'slicing.selection' parameter must be one of 'even', 'random'. Got 'middle'"),
    (base(features={"n_fft": 131072}), r"'features.n_fft'"),
    (base(slicing={"snippet_seconds": 0.1, "overlap_seconds": 0}, features={"n_fft": 4096}),
     r"'features.n_fft' parameter must be at most the samples in one snippet \(2205"),
    (base(features={"fmax": 20000}), r"'features.fmax' parameter must be at most half of "
                                     r"audio.sample_rate \(11025 Hz\)"),
    (base(features={"fmin": 5000, "fmax": 4000}), r"'features.fmin' parameter must be below"),
    (base(split={"val_share": 0.6, "test_share": 0.5}),
     r"'split.val_share' and 'split.test_share' parameters must sum to less than 1.*"
     r"0.6 \+ 0.5 = 1.1"),
    (base(split={"val_share": 1.0}), r"'split.val_share'.*range \[0.0, 1.0\)"),
    (base(workers=0), r"'workers' parameter must be an int in the range \[1, 1024\] or null"),
    (base(audio=[]), r"The 'audio' parameter must be an object"),
    ({"audio": {}}, r"The 'paths.input_dir' parameter is missing"),
    ([1, 2], r"must be a JSON object"),
])
def test_bad_values_are_refused_with_key_path(tmp_path, raw, match):
    with pytest.raises(ParameterError, match=match):
        load(tmp_path, raw)


def test_error_names_the_file(tmp_path):
    with pytest.raises(ParameterError, match=r"p.json: The 'workers'"):
        load(tmp_path, base(workers="all"))


def test_malformed_json(tmp_path):
    with pytest.raises(ParameterError, match=r"is not valid JSON: .* line 1 column"):
        load(tmp_path, '{"paths": {"input_dir": "x"},}')


def test_missing_file(tmp_path):
    with pytest.raises(ParameterError, match=r"not found"):
        load_params(tmp_path / "nope.json")


def test_feature_settings_cover_what_shapes_features():
    p = params_from_dict(base())
    s = p.feature_settings()
    assert set(s) == {"audio", "slicing", "features", "framing"} and s["framing"] == "track"
    assert s["features"]["n_mels"] == 100 and s["features"]["fmax"] is None


def test_the_old_flat_model_keys_are_read_into_their_backbone_with_a_note(tmp_path, caplog):
    p = load(tmp_path, base(model={"gru_units": [8], "gru_dropout": 0.2,
                                   "conv_filters": [4, 8], "pool_sizes": [[2, 2], [2, 2]],
                                   "fine_tune": True}))
    assert p.model.crnn.recurrent_units == (8,) and p.model.crnn.recurrent_dropout == 0.2
    assert p.model.crnn.conv_filters == (4, 8) and p.model.musicnn.fine_tune is True
    assert ("model.gru_units is now model.crnn.recurrent_units, model.gru_dropout is now "
            "model.crnn.recurrent_dropout") in caplog.text


def test_a_backbone_section_must_be_an_object(tmp_path):
    with pytest.raises(ParameterError, match=r"The 'model.crnn' parameter must be an object "
                                             r"of parameters. Got 3 instead."):
        load(tmp_path, base(model={"crnn": 3}))


def test_unknown_keys_inside_a_backbone_section_are_named_with_their_path(tmp_path):
    with pytest.raises(ParameterError, match=r"Unknown parameter 'model.crnn.gru_units'. "
                                             r"Did you mean 'recurrent_units'\?"):
        load(tmp_path, base(model={"crnn": {"gru_units": [8]}}))


def test_parameters_page_matches_the_code():
    """docs/parameters.md is what the code generates, and every key has a meaning."""
    from slapp.params import reference

    assert reference.undocumented() == []
    assert reference.PAGE.read_text(encoding="utf-8") == reference.page(), (
        "docs/parameters.md is stale: run python -m slapp.params.reference")


def test_parameters_page_lists_every_key_of_the_committed_file():
    import json
    from pathlib import Path

    from slapp.params import reference

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    committed = json.loads((Path(__file__).parent.parent / "pipeline_parameters.json")
                           .read_text())
    listed = {path for path, _, _ in reference.keys()}
    assert set(leaves(committed)) - listed == set()
