"""Bad input across the four scripts, one table: the message, the exit status, and that
nothing already written was lost."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest

from conftest import TINY, write_params

SCRIPTS = ["build_dataset", "process_dataset", "train_crnn", "predict_track"]


def _main(script, params, *extra):
    args = ["--params", str(params), "--quiet", *extra]
    if script == "predict_track":
        args.append(str(params.parent))
    return importlib.import_module(script).main(args)


BAD_PARAMS = [
    ({"slicing": {"overlap_seconds": 1.0}},
     r"'slicing.overlap_seconds' parameter must be a number in the range \[0, 1.0\)"),
    ({"features": {"n_fft": 32000}}, r"'features.n_fft' parameter must be at most the "
                                     r"samples in one snippet \(16000"),
    ({"split": {"val_share": 0.6, "test_share": 0.5}}, r"must sum to less than 1"),
    ({"slicing": {"snippet_seconds": 0}}, r"'slicing.snippet_seconds' parameter must be"),
    ({"features": {"n_mel": 64}}, r"Unknown parameter 'features.n_mel'. Did you mean "
                                  r"'n_mels'\?"),
    ({"training": {"batch_size": "32"}}, r"'training.batch_size' parameter must be an int"),
    ({"model": {"crnn": {"pool_sizes": [[2, 2]]}}},
     r"'model.crnn.pool_sizes' parameter must be one"),
]


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("override,message", BAD_PARAMS)
def test_bad_parameters_are_one_line_errors_in_every_script(tmp_path, dataset, capsys,
                                                            script, override, message):
    import re

    params = write_params(tmp_path / "params.json", dataset, tmp_path / "out", **override)
    assert _main(script, params) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()  # refused before touching anything


def test_malformed_json_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "params.json"
    path.write_text('{"paths": {"input_dir": "x",}}')
    for script in SCRIPTS:
        assert _main(script, path) == 1
        err = capsys.readouterr().err
        assert f"'{path}' is not valid JSON" in err and "line 1" in err


def test_unwritable_output_folder(tmp_path, dataset, capsys):
    # a folder below a plain file cannot be created, even by root (unlike chmod tests)
    (tmp_path / "a-file").write_text("x")
    params = write_params(tmp_path / "params.json", dataset, tmp_path / "a-file" / "out")
    assert _main("build_dataset", params) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot write to output folder") and "a-file/out" in err


def test_disk_full_while_bundling_leaves_no_bundle_that_is_trusted(trained, tmp_path, capsys,
                                                            monkeypatch):
    root, _ = trained
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    params = write_params(tmp_path / "p.json", root / "music", out, **TINY)
    before = {p.name: p.read_bytes() for p in (out / "model").iterdir()}
    import slapp.store.atomic as atomic

    real = atomic.atomic_write

    def full(path, write, **kw):
        if str(path).endswith("evaluation.json"):
            raise OSError(28, "No space left on device")
        return real(path, write, **kw)

    monkeypatch.setattr(atomic, "atomic_write", full)
    import slapp.stages.train.held_out as held_out
    import slapp.stages.train.training as train

    monkeypatch.setattr(held_out, "write_json", lambda p, obj, **kw: full(
        p, lambda f: f.write(json.dumps(obj).encode())))
    with pytest.raises(OSError, match="No space left"):
        train.train_crnn(__import__("slapp.params", fromlist=["x"]).load_params(params),
                         retrain=True, progress=False)
    # the bundle is marked incomplete, so prediction refuses it instead of trusting it
    assert not (out / "model" / "bundle.json").exists()
    import predict_track

    assert predict_track.main(["--model", str(out / "model"), str(root / "music")]) == 1
    assert "is incomplete" in capsys.readouterr().err
    monkeypatch.undo()
    import train_crnn  # and a re-run repairs it: the same files, a bundle predict accepts

    assert train_crnn.main(["--params", str(params), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "model").iterdir()) == sorted(before)
    assert predict_track.main(["--model", str(out / "model"), str(root / "music")]) == 0
