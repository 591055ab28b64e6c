"""The bundle's portable copy (model.onnx): written and checked by training, used by
prediction without TensorFlow, made once for older bundles, and a damaged one is a note."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np

from conftest import ROOT, tone, write_audio

TF_FREE = r"""
import json, sys
import predict_track
code = predict_track.main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in ("tensorflow", "keras")
                                           if m in sys.modules]}))
"""


def _copy_bundle(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "model"
    shutil.copytree(root / "out" / "model", folder)
    return folder


def test_training_writes_a_portable_copy_with_the_keras_probabilities(trained):
    from slapp.models.runtime import network
    from slapp.stages.train.bundle import load_bundle

    root, _ = trained
    folder = root / "out" / "model"
    info = json.loads((folder / "bundle.json").read_text())
    assert info["portable"]["file"] == "model.onnx"
    assert info["portable"]["check_snippets"] > 0
    assert info["portable"]["max_difference"] <= 1e-4
    x = np.load(root / "out" / "arrays" / "val_X.npy")
    keras_probs = np.asarray(load_bundle(folder, engine="keras").model(x, training=False))
    onnx_probs = network(folder / "model.onnx")(x)
    assert onnx_probs.shape == keras_probs.shape == (len(x), 3)
    np.testing.assert_allclose(onnx_probs, keras_probs, atol=1e-4)


def test_prediction_in_a_fresh_interpreter_never_imports_tensorflow(trained, tmp_path):
    root, params = trained
    track = write_audio(tmp_path / "t.wav", tone(5.0, sr=22050, freq=440.0, seed=2), 22050)
    out = tmp_path / "labels.csv"
    done = subprocess.run([sys.executable, "-c", TF_FREE, "--params", str(params),
                           "--model", str(root / "out" / "model"), str(track), "--output",
                           str(out), "--quiet"], capture_output=True, text=True, cwd=ROOT)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, done.stderr
    assert "t.wav" in out.read_text()


def test_the_onnx_and_keras_engines_give_the_same_labels_and_probabilities(trained,
                                                                           tmp_path):
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    root, _ = trained
    tracks = [str(write_audio(tmp_path / f"t{i}.wav", tone(6.0, sr=22050, freq=f, seed=i),
                              22050)) for i, f in enumerate((110.0, 440.0, 1760.0))]
    folder = root / "out" / "model"
    onnx = load_bundle(folder)
    keras = load_bundle(folder, engine="keras")
    assert (onnx.engine, keras.engine) == ("onnxruntime fp32", "keras")  # OpenVINO cannot convert the GRU loop
    options = PredictOptions(timeline=True)
    a = predict_tracks(tracks, onnx, options, progress=False).results
    b = predict_tracks(tracks, keras, options, progress=False).results
    assert [r.label for r in a] == [r.label for r in b]
    for x, y in zip(a, b):
        assert x.snippets == y.snippets == len(x.timeline)
        np.testing.assert_allclose([list(r["scores"].values()) for r in x.timeline],
                                   [list(r["scores"].values()) for r in y.timeline], atol=1e-4)


def test_an_older_bundle_gets_its_portable_copy_once(trained, tmp_path, caplog):
    from slapp.stages.train.bundle import load_bundle

    folder = _copy_bundle(trained, tmp_path)
    (folder / "model.onnx").unlink()
    with caplog.at_level(logging.INFO, logger="slapp"):
        assert load_bundle(folder).engine == "onnxruntime fp32"  # the CRNN: see test_runtime
    notes = [r.getMessage() for r in caplog.records if "no portable copy" in r.getMessage()]
    assert len(notes) == 1 and str(folder) in notes[0]
    made = (folder / "model.onnx").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="slapp"):
        assert load_bundle(folder).engine == "onnxruntime fp32"  # the CRNN: see test_runtime
    assert not [r for r in caplog.records if "portable" in r.getMessage()]
    assert (folder / "model.onnx").stat().st_mtime_ns == made


def test_a_damaged_portable_copy_is_one_line_and_model_keras_labels(trained, tmp_path):
    root, params = trained
    folder = _copy_bundle(trained, tmp_path)
    damaged = b"this is not an onnx file" * 10
    (folder / "model.onnx").write_bytes(damaged)
    track = write_audio(tmp_path / "t.wav", tone(4.0, sr=22050, seed=5), 22050)
    done = subprocess.run([sys.executable, "predict_track.py", "--params", str(params),
                           "--model", str(folder), str(track), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING: Network file ") and "model.onnx" in lines[0]
    assert "cannot be read" in lines[0] and "model.keras" in lines[0]
    assert "t.wav" in done.stdout
    assert (folder / "model.onnx").read_bytes() == damaged  # the user's file is left as it is


def test_a_portable_copy_that_cannot_be_made_says_why_in_the_summary_and_bundle(
        tmp_path, monkeypatch, capsys):
    """Before: the reason was a warning lost in the log, and bundle.json said nothing."""
    import train_crnn
    from conftest import TINY, make_dataset, run_stages, write_params
    from slapp.models.backbones.crnn import CRNN

    def broken(*args, **kwargs):
        raise RuntimeError("the converter cannot translate layer 'gru'\nmore detail")

    monkeypatch.setattr(CRNN, "write_portable", broken)
    music = make_dataset(tmp_path / "music")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out", **TINY)
    run_stages(params, "build", "process")
    capsys.readouterr()
    assert train_crnn.main(["--params", str(params), "--quiet"]) == 0
    why = ("no portable copy (RuntimeError: the converter cannot translate layer 'gru'): "
           "predict_track.py labels through TensorFlow (model.keras)")
    assert f"  {why}" in capsys.readouterr().out.splitlines()
    info = json.loads((tmp_path / "out" / "model" / "bundle.json").read_text())
    assert info["portable"] == {"error": why}
    assert not (tmp_path / "out" / "model" / "model.onnx").exists()
