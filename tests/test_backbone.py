"""``model.backbone = "musicnn-msd"`` through the four stages (skipped without the musicnn
weights): the backbone fixes the input settings, the head trains on cached embeddings, the
bundle holds the whole network and predict works unchanged."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write_audio, make_dataset, run_stages, write_params
from slapp.models.runtime import resolve

needs_musicnn = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="musicnn weights not installed "
                                          "(pip install --no-deps musicnn==0.1.0)")


def test_backbone_fixes_its_input_settings_and_names_what_it_ignores(tmp_path, caplog):
    from slapp.params import params_from_dict

    with caplog.at_level(logging.WARNING, logger="slapp"):
        p = params_from_dict({"paths": {"input_dir": "x"}, "audio": {"sample_rate": 44100},
                              "features": {"n_mels": 128}, "model": {"backbone": "musicnn-msd"},
                              "slicing": {"overlap_seconds": 1.5}})
    assert (p.audio.sample_rate, p.features.n_mels, p.features.n_fft) == (16000, 96, 512)
    assert p.n_frames == 187 and p.process.normalization == "none"
    assert p.slicing.overlap_seconds == 1.5  # not the backbone's business
    assert p.ignored == ("audio.sample_rate 44100", "features.n_mels 128")
    assert p.feature_settings()["backbone"] == "musicnn-msd"
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "model.backbone 'musicnn-msd' ignores audio.sample_rate 44100 (it uses 16000), "
        "features.n_mels 128 (it uses 96): a backbone's own settings go under "
        "model.<backbone>"]
    crnn = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"}})
    assert "backbone" not in crnn.feature_settings() and crnn.ignored == ()


def test_a_bad_value_the_backbone_ignores_is_the_error_alone(caplog):
    """One problem, one line: no 'ignored' warning before the error."""
    from slapp.errors import ParameterError
    from slapp.params import params_from_dict

    with caplog.at_level(logging.WARNING, logger="slapp"), pytest.raises(
            ParameterError, match=r"^The 'slicing.snippet_seconds' parameter must be a number "
                                  r"in the range \[0.1, 60.0\]. Got '3' \(a string\) instead.$"):
        params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "musicnn-msd"},
                          "slicing": {"snippet_seconds": "3"}})
    assert caplog.records == []


def test_the_committed_file_shows_the_settings_in_force(caplog):
    """Each backbone's own settings live in its section: loading the committed file with
    either backbone ignores nothing, and switching the backbone switches the settings."""
    from slapp.params import DEFAULT_PARAMS_FILE, params_from_dict

    raw = json.loads((Path(__file__).resolve().parents[1] / DEFAULT_PARAMS_FILE).read_text())
    assert raw["model"]["backbone"] == "musicnn-msd"
    assert "features" not in raw and "sample_rate" not in raw["audio"]
    with caplog.at_level(logging.INFO, logger="slapp"):
        p = params_from_dict(raw)
        raw["model"]["backbone"] = "crnn"
        crnn = params_from_dict(raw)
    assert not caplog.records
    assert p.ignored == crnn.ignored == ()
    assert (p.audio.trim_silence, p.audio.loudness_db, p.n_frames) == (True, -20.0, 187)
    assert (crnn.audio.sample_rate, crnn.features.n_mels, crnn.process.normalization,
            crnn.training.augment_gain_db) == (22050, 100, "standard", 6.0)
    assert (crnn.audio.trim_silence, crnn.audio.loudness_db) == (False, None)
    raw["model"]["crnn"]["features"]["n_mels"] = 128
    assert params_from_dict(raw).features.n_mels == 128
    raw["model"]["backbone"] = "musicnn-msd"
    assert params_from_dict(raw).features.n_mels == 96  # the CRNN's, not in force


def test_an_old_file_with_the_crnn_settings_on_top_still_loads(caplog):
    from slapp.errors import ParameterError
    from slapp.params import params_from_dict

    old = {"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"},
           "features": {"n_mels": 64}, "process": {"normalization": "minmax"}}
    with caplog.at_level(logging.INFO, logger="slapp"):
        p = params_from_dict(old)
    assert (p.features.n_mels, p.process.normalization) == (64, "minmax")
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "features.n_mels, process.normalization" in notes[0]
    assert "move them there" in notes[0]
    with pytest.raises(ParameterError, match=r"Unknown parameter 'model.crnn.audio.mixdown'\. "
                                             r"Expected one of: sample_rate \(set "
                                             r"'audio.mixdown' instead"):
        params_from_dict({"paths": {"input_dir": "x"},
                          "model": {"crnn": {"audio": {"mixdown": "first"}}}})
    with pytest.raises(ParameterError, match=r"'model.crnn.features.n_mels' parameter must be "
                                             r"an int in the range \[1, 1024\]. Got 0"):
        params_from_dict({"paths": {"input_dir": "x"},
                          "model": {"crnn": {"features": {"n_mels": 0}}}})


def test_a_bundle_record_without_a_backbone_is_a_crnn():
    from slapp.params import params_from_dict

    old = params_from_dict({"paths": {"input_dir": "x"}, "model": {"gru_units": [8]}},
                           backbone_defaults=False)
    assert old.model.backbone == "crnn" and list(old.model.crnn.recurrent_units) == [8]


def test_musicnn_levels_its_input_unless_the_json_says_otherwise():
    from slapp.params import params_from_dict

    p = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "musicnn-mtt"}})
    assert (p.audio.trim_silence, p.audio.loudness_db) == (True, -20.0)
    p = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "musicnn-msd"},
                          "audio": {"loudness_db": None, "trim_silence": False}})
    assert (p.audio.trim_silence, p.audio.loudness_db) == (False, None)
    crnn = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"}})
    assert (crnn.audio.trim_silence, crnn.audio.loudness_db) == (False, None)


def test_unknown_backbone_is_refused():
    from slapp.errors import ParameterError
    from slapp.params import params_from_dict

    with pytest.raises(ParameterError, match="model.backbone.*crnn.*musicnn-msd"):
        params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "vggish"}})


@needs_musicnn
@pytest.mark.parametrize("backbone", ["musicnn-msd", "musicnn-mtt"])
def test_musicnn_pipeline_end_to_end(tmp_path, capsys, backbone):
    import predict_track

    music = make_dataset(tmp_path / "music", per_class=4, seconds=4.0)
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": backbone},
                          slicing={"snippet_seconds": 3.0, "overlap_seconds": 2.0,
                                   "max_snippets_per_track": 3},
                          training={"epochs": 40, "learning_rate": 0.01, "batch_size": 8})
    run_stages(params, "build", "process", "train")
    out = tmp_path / "out"
    info = json.loads((out / "build_info.json").read_text())
    assert info["n_frames"] == 187 and info["n_mels"] == 96
    stats = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("normalization 'none'")]
    assert len(stats) == 1 and "(log10(1 + 10000 mel)); per-bin mean" in stats[0], stats
    emb = out / "embeddings" / backbone  # one file per track, made by stage 2
    train_emb = np.load(out / "arrays" / "train_E.npy")
    assert train_emb.shape == (len(np.load(out / "arrays" / "train_y.npy")), 200)
    assert np.isfinite(train_emb).all() and train_emb.std() > 0.01
    # each shuffled row is its track's cached row for the snippet starting there
    tracks = {t["id"]: t["key"] for t in
              json.loads((out / "arrays" / "tracks.json").read_text())["tracks"]}
    ids, starts = (np.load(out / "arrays" / f"train_{k}.npy") for k in ("track", "start"))
    for row in (0, len(ids) // 2, len(ids) - 1):
        key = tracks[int(ids[row])]
        cached_starts = np.load(out / "cache" / f"{key}.npz")["starts"]
        snippet = int(np.flatnonzero(cached_starts == starts[row])[0])
        np.testing.assert_array_equal(train_emb[row],
                                      np.load(emb / f"{key}.npz")["penultimate"][snippet])
    bundle = json.loads((out / "model" / "bundle.json").read_text())
    assert bundle["backbone"] == backbone
    assert bundle["trained"]["parameters"] > 700_000  # the frozen network is in the bundle
    ev = json.loads((out / "model" / "evaluation.json").read_text())
    assert ev["test"]["track"]["accuracy"] >= 2 / 3  # three pitch classes, easy for musicnn
    assert bundle["portable"]["file"] == "model.onnx"  # no silent fall-back to Keras
    if backbone == "musicnn-mtt":  # one variant is enough for the rest
        return

    # the portable copy (musicnn joined to the head): Keras's probabilities, and its
    # second output is the embedding stage 2 cached for the same snippet
    from slapp.stages.train.bundle import load_bundle

    loaded = load_bundle(out / "model")
    assert loaded.engine == resolve("auto").name
    key = tracks[int(ids[0])]
    mel = np.load(out / "cache" / f"{key}.npz")["mel"].astype(np.float32)
    probs, embedding = loaded.scorer().with_embedding(mel)
    np.testing.assert_allclose(probs, np.asarray(loaded.model(mel, training=False)), atol=1e-4)
    np.testing.assert_allclose(embedding, np.load(emb / f"{key}.npz")["penultimate"],
                               atol=1e-3 * float(np.abs(embedding).max()))

    capsys.readouterr()
    code = predict_track.main(["--params", str(params), str(music / "treble"), "--quiet"])
    table = capsys.readouterr().out
    assert code == 0
    rows = [line for line in table.splitlines() if "treble_" in line]
    assert len(rows) == 4 and sum(" treble " in r for r in rows) >= 3

    # another shuffle re-writes the arrays from the same per-track embeddings ...
    stamps = {p: p.stat().st_mtime_ns for p in emb.glob("**/*.npz")}
    assert len(stamps) == 12
    raw = json.loads(params.read_text())
    raw["process"] = {"seed": 5}
    params.write_text(json.dumps(raw))
    run_stages(params, "process", "train")
    assert {p: p.stat().st_mtime_ns for p in emb.glob("**/*.npz")} == stamps
    assert not np.array_equal(np.load(out / "arrays" / "train_E.npy"), train_emb)
    # ... and a track whose audio changed is rebuilt, then embedded again
    write_audio(music / "mid" / "mid_2.wav", tone(4.5, sr=22050, freq=300.0, seed=9), 22050)
    run_stages(params, "build", "process")
    again = emb / "mid" / "mid_2.wav.npz"
    assert again.stat().st_mtime_ns != stamps[again]
    assert sum(p.stat().st_mtime_ns != stamps[p] for p in stamps) == 1


@needs_musicnn
def test_fine_tune_head_starts_from_musicnn_top_layers():
    from slapp.models.backbones import get
    from slapp.models.backbones.musicnn_msd import build_top_head
    from slapp.models.musicnn import load_backbone
    from slapp.params import params_from_dict

    head = build_top_head(4)
    backbone = load_backbone()
    for name in ("batch_normalization_9", "dense", "batch_normalization_10"):
        for a, b in zip(head.get_layer(name).get_weights(),
                        backbone.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert len(head.trainable_weights) == 8  # two BatchNorms, two dense layers
    x = np.random.default_rng(0).uniform(0, 3, (2, 187, 96)).astype(np.float32)
    params = params_from_dict({"paths": {"input_dir": "x"},
                               "model": {"backbone": "musicnn-msd", "musicnn": {"fine_tune": True}}})
    full = get("musicnn-msd").bundle_model(head, params)
    pooled = np.asarray(backbone(x, training=False)[2])
    np.testing.assert_allclose(np.asarray(full(x, training=False)),
                               np.asarray(head(pooled, training=False)), atol=1e-5)
    assert len(full.trainable_weights) == 8  # the backbone below stays frozen


@needs_musicnn
def test_each_musicnn_backbone_loads_its_own_checkpoint():
    import tensorflow as tf

    from slapp.models.backbones import get
    from slapp.models.musicnn import checkpoint_prefix, load_backbone

    kernels = {}
    for backbone in ("musicnn-msd", "musicnn-mtt"):
        name = get(backbone).checkpoint
        reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(name))
        model = load_backbone(checkpoint=name)
        kernels[backbone] = model.get_layer("dense").get_weights()[0]
        np.testing.assert_array_equal(kernels[backbone], reader.get_tensor("dense/kernel"))
    assert not np.allclose(kernels["musicnn-msd"], kernels["musicnn-mtt"])


def test_old_records_keep_meaning_what_they_meant():
    """A bundle or cache made before the levelling keys existed: its record lacks them,
    and it was made without levelling; the default CRNN cache's fingerprint is unchanged."""
    from slapp.store.cache import fingerprint
    from slapp.params import params_from_dict

    old = {"paths": {"input_dir": "x"}, "model": {"backbone": "musicnn-msd"}}
    p = params_from_dict(old, backbone_defaults=False)
    assert (p.audio.trim_silence, p.audio.loudness_db) == (False, None)
    crnn = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"}}).feature_settings()
    assert "trim_silence" not in crnn["audio"] and "loudness_db" not in crnn["audio"]
    # what slapp wrote before these keys, less the framing (one spectrogram per track since)
    assert crnn.pop("framing") == "track"
    assert fingerprint(crnn) == "37e9691893923865"
    levelled = params_from_dict({"paths": {"input_dir": "x"}, "model": {"backbone": "crnn"},
                                 "audio": {"loudness_db": -20}}).feature_settings()
    assert levelled["audio"]["loudness_db"] == -20.0 and fingerprint(levelled) != \
        fingerprint(crnn)


@needs_musicnn
def test_kill_9_while_embedding_then_rerun_gives_the_same_arrays(tmp_path):
    """Stage 2 embeds each cached track once: killed in the middle, a re-run embeds only
    what is missing and writes the arrays an uninterrupted run writes."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, popen_script

    music = make_dataset(tmp_path / "music", per_class=8, seconds=12.0)
    settings = dict(model={"backbone": "musicnn-msd"}, workers=2,
                    slicing={"snippet_seconds": 3.0, "overlap_seconds": 1.0,
                             "max_snippets_per_track": None})
    params = write_params(tmp_path / "p.json", music, tmp_path / "out", **settings)
    run_stages(params, "build")
    shutil.copytree(tmp_path / "out", tmp_path / "ref")
    ref_params = write_params(tmp_path / "ref.json", music, tmp_path / "ref", **settings)
    emb = tmp_path / "out" / "embeddings" / "musicnn-msd"

    def embedded():
        return sorted(emb.rglob("*.npz"))

    stamps, kills = {}, 0
    for n in (1, 8):
        proc = popen_script([sys.executable, "process_dataset.py", "--params", str(params),
                             "--quiet"], cwd=ROOT)
        end = time.monotonic() + 120
        while len(embedded()) < n and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if len(embedded()) < 24:
            kills += 1
    assert kills >= 1, "every kill came after the last track was embedded"
    stamps = {p: p.stat().st_mtime_ns for p in embedded()}
    done = subprocess.run([sys.executable, "process_dataset.py", "--params", str(params)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"{len(stamps)} already embedded" in done.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # kept, not redone
    ref_emb = tmp_path / "ref" / "embeddings" / "musicnn-msd"
    ref_emb.mkdir(parents=True)
    shutil.copy(emb / "backbone.onnx", ref_emb)  # the same network, not exported again
    run_stages(ref_params, "process")
    for part in ("train", "val", "test"):
        for kind in ("E", "X", "y"):
            a = np.load(tmp_path / "out" / "arrays" / f"{part}_{kind}.npy")
            b = np.load(tmp_path / "ref" / "arrays" / f"{part}_{kind}.npy")
            assert np.array_equal(a, b), (part, kind)
    assert not [p for p in (tmp_path / "out").rglob("*.slapp-tmp*")]
