"""Every registered backbone keeps the contract of :mod:`slapp.models.backbones`, end to end:
build → process → train (1 epoch) → predict on tiny audio, and prediction reproduces
training's evaluation scores for the same snippets (the build's snippets are among
predict's when its hop is the build's)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from conftest import TINY, make_dataset, run_stages, write_params
from slapp.models import backbones
from slapp.models.runtime import resolve

HAS_MUSICNN = importlib.util.find_spec("musicnn") is not None


def _settings(name: str, recurrent: str = "gru") -> dict:
    if name == "crnn":
        return {"model": {"crnn": {**TINY["model"]["crnn"], "recurrent": recurrent}},
                "training": {**TINY["training"], "epochs": 1}}
    # musicnn: 3-second patches every second, three per track
    return {"model": {"backbone": name},
            "slicing": {"snippet_seconds": 3.0, "overlap_seconds": 2.0,
                        "max_snippets_per_track": 3},
            "training": {"epochs": 1, "batch_size": 8}}


def test_registry_names_match_their_modules():
    for name in backbones.NAMES:
        backbone = backbones.get(name)
        assert backbone.name == name
        assert set(backbone.fixed_settings) <= {"audio", "slicing", "features", "process"}
    with pytest.raises(KeyError, match="unknown backbone 'vggish'"):
        backbones.get("vggish")


VARIANTS = [(name, "gru") for name in backbones.NAMES] + [("crnn", "lstm")]


@pytest.mark.parametrize("name,recurrent", VARIANTS)
def test_backbone_end_to_end_predict_reproduces_evaluation(name, recurrent, tmp_path):
    if name != "crnn" and not HAS_MUSICNN:
        pytest.skip("musicnn weights not installed (pip install --no-deps musicnn==0.1.0)")
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    music = make_dataset(tmp_path / "music", per_class=4, seconds=4.0)
    params_file = write_params(tmp_path / "params.json", music, tmp_path / "out",
                               **_settings(name, recurrent))
    run_stages(params_file, "build", "process", "train")
    out = tmp_path / "out"
    bundle = load_bundle(out / "model")
    assert bundle.info["backbone"] == name
    # the bundle runs on its portable copy (a failed export would fall back to Keras and
    # this test would compare Keras with Keras)
    # (OpenVINO cannot convert the GRU's loop: that CRNN labels on onnxruntime)
    expected = ("onnxruntime fp32" if (name, recurrent) == ("crnn", "gru")
                else resolve("auto").name)
    assert bundle.engine == expected and bundle.info["portable"]["file"] == "model.onnx"
    assert bundle.info["params"]["model"]["crnn"]["recurrent"] == recurrent
    p = bundle.params
    # the bundle's network carries its input shape: the backbone's frames and mels
    assert tuple(bundle.model.input_shape[1:]) == (p.n_frames, p.features.n_mels)

    arrays = out / "arrays"
    x = np.load(arrays / "test_X.npy")
    ids, starts = np.load(arrays / "test_track.npy"), np.load(arrays / "test_start.npy")
    tracks = {t["id"]: t for t in json.loads((arrays / "tracks.json").read_text())["tracks"]}
    trained_scores = np.asarray(bundle.model(x, training=False))
    hop = p.slicing.snippet_seconds - p.slicing.overlap_seconds
    files = sorted({tracks[int(i)]["key"] for i in ids})
    report = predict_tracks([str(music / key) for key in files], bundle,
                            PredictOptions(hop_seconds=hop, timeline=True), progress=False)
    checked = 0
    for key, result in zip(files, report.results):
        rows = {round(r["start"], 3): r["scores"] for r in result.timeline}
        mine = [j for j in range(len(ids)) if tracks[int(ids[j])]["key"] == key]
        for j in mine:  # every training-evaluation snippet is among predict's snippets
            predicted = np.array([rows[round(float(starts[j]), 3)][c] for c in bundle.classes])
            np.testing.assert_allclose(predicted, trained_scores[j], atol=2e-5)
            checked += 1
    assert checked == len(x) and len(files) == 3  # every test snippet, one track per class
    ev = json.loads((out / "model" / "evaluation.json").read_text())
    assert ev["test"]["snippet"]["count"] == len(x)
    # stage 3's track figures are prediction's, with its defaults but "none" (the
    # figures measure the classifier), track by track
    default = predict_tracks([str(music / key) for key in files], bundle,
                             PredictOptions(none_below=0.0), progress=False).results
    assert {k: v["label"] for k, v in ev["test"]["track"]["tracks"].items()} == \
        {key: r.label for key, r in zip(files, default)}
    for key, r in zip(files, default):
        assert ev["test"]["track"]["tracks"][key]["confidence"] == pytest.approx(
            r.confidence, abs=1e-6)
    right = sum(key.split("/")[0] == r.label for key, r in zip(files, default))
    assert ev["test"]["track"]["accuracy"] == pytest.approx(right / len(files))
