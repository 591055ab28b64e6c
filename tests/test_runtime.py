"""The one runtime (slapp.models.runtime) and its checks (slapp.models.engine_check):
backends chosen, checked against onnxruntime, named, falling back, and bf16 near-ties
re-scored at full precision so that labels never depend on the precision."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, tone, write_audio
from slapp.errors import StageError
from slapp.models import engine_check, runtime
from slapp.models.runtime import REFERENCE, Choice, network, resolve

F32 = Choice("openvino", "f32")


def _linear_onnx(path, n_frames: int, n_mels: int, n_classes: int, *, seed: int = 0):
    """A network OpenVINO and onnxruntime both run: flatten → dense (the embedding, second
    output) → dense → softmax (the probabilities, first output)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.05, (n_frames * n_mels, 16)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (16, n_classes)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w1"], ["embedding"]),
             helper.make_node("MatMul", ["embedding", "w2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_frames, n_mels])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", n_classes]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def linear_bundle(trained, tmp_path):
    """The tiny trained bundle with its network replaced by one OpenVINO runs (the CRNN's
    recurrent loop is one OpenVINO cannot convert), and its check.npz made anew."""
    pytest.importorskip("openvino")
    root, params = trained
    folder = tmp_path / "model"
    shutil.copytree(root / "out" / "model", folder)
    info = json.loads((folder / "bundle.json").read_text())
    n_frames, n_mels = info["snippet_shape"]
    _linear_onnx(folder / "model.onnx", n_frames, n_mels, len(info["classes"]))
    x = np.load(root / "out" / "arrays" / "test_X.npy")
    track = np.load(root / "out" / "arrays" / "test_track.npy")
    rows = engine_check.check_rows(x, track)
    engine_check.write_check(folder / "check.npz", folder / "model.onnx", x[rows], track[rows])
    return folder, params


def test_auto_takes_openvino_at_the_precision_the_cpu_has_and_onnxruntime_without_it(
        monkeypatch):
    pytest.importorskip("openvino")
    expected = "bf16" if runtime.native_bf16() else "f32"
    assert resolve("auto") == Choice("openvino", expected)
    assert resolve("openvino-f32") == F32
    assert resolve("onnxruntime") == REFERENCE
    monkeypatch.setattr(runtime, "openvino_core", lambda: None)
    assert resolve("auto") == REFERENCE


def test_a_forced_engine_that_is_missing_is_one_clear_error(monkeypatch, trained, capsys):
    import predict_track

    root, params = trained
    monkeypatch.setattr(runtime, "openvino_core", lambda: None)
    with pytest.raises(StageError, match="needs OpenVINO, which is not installed here"):
        resolve("openvino")
    track = write_audio(root / "engine-t.wav", tone(3.0, sr=22050, seed=3), 22050)
    code = predict_track.main(["--params", str(params), "--model", str(root / "out" / "model"),
                               "--engine", "openvino-f32", str(track), "--quiet"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 1
    assert err == ["error: The engine 'openvino-f32' needs OpenVINO, which is not installed "
                   "here (pip install openvino), or choose --engine onnxruntime."]


def test_bf16_is_refused_on_a_cpu_without_native_bf16(monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    with pytest.raises(StageError, match="needs a CPU with native bf16 .*choose openvino-f32"):
        resolve("openvino-bf16")
    assert resolve("auto") == F32
    assert resolve("openvino-bf16", allow_emulated=True) == Choice("openvino", "bf16")


def test_every_backend_gives_the_reference_outputs_and_names_itself(linear_bundle):
    folder, _ = linear_bundle
    x = np.random.default_rng(1).normal(0, 1, (7, *network(folder / "model.onnx").input_shape))
    ref = network(folder / "model.onnx").outputs(x)
    got = network(folder / "model.onnx", F32).outputs(x)
    assert [g.shape for g in got] == [r.shape for r in ref] == [(7, 3), (7, 16)]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, atol=1e-5)
    emulated = network(folder / "model.onnx", Choice("openvino", "bf16"))(x)
    assert 1e-4 < np.max(np.abs(emulated - ref[0])) < engine_check.BF16_BOUND
    assert F32.name == "openvino f32" and REFERENCE.name == "onnxruntime fp32"


def test_a_bundle_labels_on_the_checked_backend_and_the_verdict_is_kept(linear_bundle,
                                                                         monkeypatch):
    from slapp.stages.label.predict import PredictOptions, predict_tracks
    from slapp.stages.train.bundle import load_bundle

    folder, _ = linear_bundle
    bundle = load_bundle(folder, engine="openvino-f32")
    assert bundle.engine == "openvino f32"
    track = write_audio(folder.parent / "t.wav", tone(6.0, sr=22050, seed=4), 22050)
    report = predict_tracks([str(track)], bundle, PredictOptions(), progress=False)
    assert "(openvino f32)" in report.summary()[0]
    reference = predict_tracks([str(track)], load_bundle(folder, engine="onnxruntime"),
                               PredictOptions(), progress=False)
    assert report.results[0].label == reference.results[0].label
    np.testing.assert_allclose(list(report.results[0].scores.values()),
                               list(reference.results[0].scores.values()), atol=1e-4)
    # the second time, the verdict comes from the user's cache folder: nothing measured
    monkeypatch.setattr(engine_check, "measure", lambda *a: pytest.fail("measured again"))
    runtime._OPEN.clear()
    assert load_bundle(folder, engine="openvino-f32").engine == "openvino f32"


def test_a_backend_that_fails_its_check_falls_back_with_one_line(linear_bundle, monkeypatch,
                                                                 caplog):
    from slapp.stages.train.bundle import load_bundle

    folder, _ = linear_bundle
    monkeypatch.setattr(engine_check, "F32_BOUND", 0.0)  # any difference at all fails
    monkeypatch.setattr(engine_check, "CHECK_VERSION", 99)  # not the kept verdict
    with caplog.at_level(logging.INFO, logger="slapp"):
        bundle = load_bundle(folder, engine="openvino-f32")
    assert bundle.engine == "onnxruntime fp32"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1
    assert lines[0].startswith("openvino f32 not used for this bundle: probabilities differ by ")
    assert lines[0].endswith("(more than 0); labelling on onnxruntime fp32.")


def test_the_crnn_which_openvino_cannot_convert_labels_on_onnxruntime(trained, tmp_path,
                                                                      caplog):
    pytest.importorskip("openvino")
    from slapp.stages.train.bundle import load_bundle

    root, _ = trained
    with caplog.at_level(logging.INFO, logger="slapp"):
        bundle = load_bundle(root / "out" / "model", engine="openvino-f32")
    assert bundle.engine == "onnxruntime fp32"
    said = [r.getMessage() for r in caplog.records if "not used for this bundle" in r.getMessage()]
    assert len(said) == 1 and "openvino cannot run it (" in said[0]


def test_planted_near_ties_are_rescored_so_bf16_labels_match_the_reference(linear_bundle):
    """Every track a near-tie (a margin of 1): all re-scored, the reference's scores
    exactly; no margin: bf16's own scores, which differ from the reference's."""
    from slapp.stages.label.predict import PredictOptions, predict_tracks
    from slapp.stages.train.bundle import load_bundle

    folder, _ = linear_bundle
    tracks = [str(write_audio(folder.parent / f"t{i}.wav",
                              tone(5.0, sr=22050, freq=f, seed=i), 22050))
              for i, f in enumerate((150.0, 600.0, 2400.0))]
    options = PredictOptions()
    reference = predict_tracks(tracks, load_bundle(folder, engine="onnxruntime"), options,
                               progress=False).results

    def bf16(margin):
        bundle = load_bundle(folder, engine="onnxruntime")
        checked = engine_check.open_checked(folder / "model.onnx", folder / "check.npz",
                                            "openvino-bf16", allow_emulated=True)
        checked.tie_margin = margin
        bundle._scorers = {None: checked}
        bundle.engine = checked.name
        return predict_tracks(tracks, bundle, options, progress=False)

    tied = bf16(1.0)
    assert [r.rescored for r in tied.results] == [True] * 3
    assert tied.summary()[1] == ("  3 near-tie track(s) scored again at full precision "
                                 "(bf16 could have flipped their label)")
    for got, ref in zip(tied.results, reference):
        assert got.label == ref.label
        np.testing.assert_allclose(list(got.scores.values()), list(ref.scores.values()),
                                   atol=1e-4)
    plain = bf16(0.0).results
    assert not any(r.rescored for r in plain)
    assert max(np.max(np.abs(np.subtract(list(a.scores.values()), list(b.scores.values()))))
               for a, b in zip(plain, reference)) > 1e-4


def test_the_check_counts_a_flipped_clear_track_and_forgives_a_near_tie():
    """Planted: track 0 nearly ties in the reference (0.51 / 0.49), track 1 is clear."""
    reference = np.array([[0.51, 0.49], [0.51, 0.49], [0.9, 0.1], [0.9, 0.1]], np.float32)
    data = {"reference": reference, "track": np.array([0, 0, 1, 1]), "x": np.zeros((4, 1))}

    class Fake:
        def __init__(self, out):
            self.out = out

        def __call__(self, x):
            return self.out

    near_tie_flipped = reference + np.array([[-0.02, 0.02]] * 2 + [[0, 0]] * 2, np.float32)
    found = engine_check.measure(Fake(near_tie_flipped), data, "bf16")
    assert found.ok and found.tie_margin == pytest.approx(4 * 0.02, abs=1e-6)
    clear_flipped = reference.copy()
    clear_flipped[2:] = [[0.1, 0.9]] * 2
    found = engine_check.measure(Fake(clear_flipped), data, "bf16")
    assert not found.ok
    assert found.why == "probabilities differ by 0.8 (more than 0.05)"
    found = engine_check.measure(Fake(reference + 2e-4), data, "f32")
    assert not found.ok and found.why == "probabilities differ by 0.0002 (more than 0.0001)"


def test_near_tie_says_which_scores_are_too_close():
    checked = engine_check.CheckedNetwork.__new__(engine_check.CheckedNetwork)
    checked.tie_margin = 0.04
    assert checked.near_tie(np.array([0.40, 0.38, 0.22]))
    assert not checked.near_tie(np.array([0.60, 0.30, 0.10]))
    checked.tie_margin = 0.0
    assert not checked.near_tie(np.array([0.40, 0.40, 0.20]))


def test_predict_track_engine_flag_names_the_backend_in_its_summary(linear_bundle):
    folder, params = linear_bundle
    track = write_audio(folder.parent / "s.wav", tone(4.0, sr=22050, seed=6), 22050)
    done = subprocess.run([sys.executable, "predict_track.py", "--params", str(params),
                           "--model", str(folder), "--engine", "onnxruntime", str(track)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "(onnxruntime fp32)" in done.stdout.splitlines()[-2 if "look at" in done.stdout
                                                              else -1]
