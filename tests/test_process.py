"""process_dataset: train-only statistics, shuffling, arrays, refusals."""

import json

import numpy as np
import pytest

import process_dataset
from slapp.stages.build.dataset import build_dataset as build
from slapp.store.cache import read_track
from slapp.store.layout import BuildLayout
from slapp.errors import StageError
from slapp.dsp.normalization import RunningStats, apply
from slapp.params import load_params
from slapp.stages.process.arrays import process_dataset as process

from conftest import make_dataset, write_params


@pytest.fixture
def built(tmp_path):
    music = make_dataset(tmp_path / "music", per_class=6, seconds=3.0)
    p = write_params(tmp_path / "p.json", music, tmp_path / "out",
                     split={"val_share": 0.2, "test_share": 0.2})
    params = load_params(p)
    build(params, progress=False)
    return tmp_path, params


def load_arrays(out, part):
    return {k: np.load(out / "arrays" / f"{part}_{k}.npy", mmap_mode="r")
            for k in ("X", "y", "track", "start")}


def test_statistics_come_from_training_snippets_only(built):
    tmp, params = built
    process(params, progress=False)
    split = json.loads((tmp / "out" / "train_val_test_dict.json").read_text())
    layout = BuildLayout(tmp / "out")
    train_only, everything = RunningStats(32, -99.99), RunningStats(32, -99.99)
    for parts in split.values():
        for part, keys in parts.items():
            for key in keys:
                mel = read_track(layout, key)[0]
                everything.update(mel)
                if part == "train":
                    train_only.update(mel)
    stats = json.loads((tmp / "out" / "arrays" / "normalization.json").read_text())
    want = train_only.finish("standard")
    assert np.allclose(stats["mean"], want["mean"], atol=1e-9)
    assert np.allclose(stats["std"], want["std"], atol=1e-9)
    assert not np.allclose(stats["mean"], everything.finish("standard")["mean"], atol=1e-3)
    # the streaming result equals the two-pass textbook formula
    flat = np.concatenate([read_track(layout, k)[0].reshape(-1, 32)
                           for parts in split.values() for k in parts["train"]]).astype(np.float64)
    assert np.allclose(stats["mean"], flat.mean(0)) and np.allclose(stats["std"], flat.std(0))
    # and the training arrays come out standardised
    X = np.asarray(load_arrays(tmp / "out", "train")["X"], dtype=np.float64).reshape(-1, 32)
    assert np.allclose(X.mean(0), 0, atol=1e-4) and np.allclose(X.std(0), 1, atol=1e-3)


def test_rows_match_the_cache_and_labels(built):
    tmp, params = built
    process(params, progress=False)
    tracks = json.loads((tmp / "out" / "arrays" / "tracks.json").read_text())
    stats = json.loads((tmp / "out" / "arrays" / "normalization.json").read_text())
    classes = tracks["classes"]
    by_id = {t["id"]: t for t in tracks["tracks"]}
    layout = BuildLayout(tmp / "out")
    for part in ("train", "val", "test"):
        a = load_arrays(tmp / "out", part)
        assert a["X"].shape[1:] == (63, 32) and a["X"].dtype == np.float32
        for i in range(0, len(a["y"]), 5):
            t = by_id[int(a["track"][i])]
            assert t["split"] == part and classes[int(a["y"][i])] == t["class"]
            mel, starts = read_track(layout, t["key"])
            j = int(np.flatnonzero(starts == a["start"][i])[0])
            assert np.allclose(a["X"][i], apply(mel[j], stats), atol=1e-5)


def test_train_is_shuffled_reproducibly_val_test_keep_order(built, tmp_path):
    tmp, params = built
    process(params, progress=False)
    first = np.array(load_arrays(tmp / "out", "train")["track"])
    assert np.count_nonzero(np.diff(first)) > len(first) // 2  # tracks are not contiguous
    val = np.array(load_arrays(tmp / "out", "val")["track"])
    assert np.all(np.diff(val) >= 0)
    # same seed elsewhere → same order; another seed → another order
    for seed, same in ((0, True), (5, False)):
        p = json.loads((tmp / "p.json").read_text())
        p["paths"]["output_dir"] = str(tmp_path / f"o{seed}")
        p["process"] = {"seed": seed}
        (tmp / f"p{seed}.json").write_text(json.dumps(p))
        other = load_params(tmp / f"p{seed}.json")
        build(other, progress=False)
        process(other, progress=False)
        order = np.array(np.load(tmp_path / f"o{seed}" / "arrays" / "train_track.npy"))
        assert np.array_equal(order, first) == same


def test_rerun_does_nothing(built, capsys):
    tmp, params = built
    process(params, progress=False)
    before = (tmp / "out" / "arrays" / "train_X.npy").stat().st_mtime_ns
    assert process(params, progress=False).up_to_date
    assert (tmp / "out" / "arrays" / "train_X.npy").stat().st_mtime_ns == before
    assert process_dataset.main(["--params", str(tmp / "p.json"), "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_minmax_methods_differ_on_the_log_floor():
    """minmax stretches [min, max] to [0, 1], the floor (silence, padding) included;
    nonzero_minmax takes its minimum above the floor, so music uses the whole range and
    the floor is clipped to 0."""
    from slapp.dsp.normalization import RunningStats, apply

    floor = -100.0
    music = np.linspace(-60.0, 20.0, 4 * 8, dtype=np.float32).reshape(1, 4, 8)
    padded = np.concatenate([music, np.full((1, 2, 8), floor, np.float32)], axis=1)
    results = {}
    for method in ("minmax", "nonzero_minmax"):
        acc = RunningStats(n_mels=8, floor_db=floor + 1e-3)
        acc.update(padded)
        stats = acc.finish(method)
        results[method] = apply(padded, stats)
    plain, nonzero = results["minmax"], results["nonzero_minmax"]
    np.testing.assert_allclose([plain.min(), plain.max()], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(plain[0, :4].min(), 40 / 120, atol=1e-6)  # music: 1/3 up
    np.testing.assert_allclose([nonzero[0, :4].min(), nonzero.max()], [0.0, 1.0], atol=1e-6)
    assert np.all(nonzero[0, 4:] == 0.0)  # the floor clipped, not below 0


def test_empty_test_split(tmp_path):
    music = make_dataset(tmp_path / "music", per_class=4)
    params = load_params(write_params(tmp_path / "p.json", music, tmp_path / "out",
                                      split={"val_share": 0.25, "test_share": 0.0}))
    build(params, progress=False)
    report = process(params, progress=False)
    assert report.snippets["test"] == 0
    assert not (tmp_path / "out" / "arrays" / "test_X.npy").exists()
    assert "test: no snippets" in "\n".join(report.summary())


def test_failed_tracks_refused_or_skipped(built):
    tmp, params = built
    (tmp / "music" / "mid" / "broken.mp3").write_bytes(b"")
    build(params, resplit=True, progress=False)
    with pytest.raises(StageError, match=r"1 track\(s\) failed in the build: mid/broken.mp3 "
                                         r"\(empty file \(0 bytes\)\).*--skip-failed"):
        process(params, progress=False)
    report = process(params, skip_failed=True, progress=False)
    assert report.skipped_failed and "left out 1 tracks" in "\n".join(report.summary())


def test_incomplete_build_and_missing_build(built, tmp_path):
    tmp, params = built
    next((tmp / "out" / "cache" / "bass").glob("*.npz")).unlink()
    with pytest.raises(StageError, match=r"build is incomplete: 1 track\(s\) are not cached "
                                         r"\(bass/.*Run build_dataset.py"):
        process(params, progress=False)
    fresh = load_params(write_params(tmp_path / "q.json", tmp / "music", tmp_path / "nobuild"))
    with pytest.raises(StageError, match=r"No build found .* Run build_dataset.py first"):
        process(fresh, progress=False)


def test_truncated_cache_file_is_named(built):
    tmp, params = built
    victim = next((tmp / "out" / "cache" / "treble").glob("*.npz"))
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(StageError, match=r"Cache file '.*treble.*npz' is unreadable .* "
                                         r"rebuild just that track"):
        process(params, progress=False)
    assert not (tmp / "out" / "arrays" / "process_manifest.json").exists()


def test_changed_parameters_are_refused(built):
    tmp, _ = built
    p = json.loads((tmp / "p.json").read_text())
    p["features"]["n_mels"] = 40
    (tmp / "p.json").write_text(json.dumps(p))
    with pytest.raises(StageError, match=r"other parameters .*features.n_mels: 32 -> 40.*"
                                         r"--rebuild"):
        process(load_params(tmp / "p.json"), progress=False)


def test_one_class_in_training(tmp_path):
    music = make_dataset(tmp_path / "music", classes=("a", "b"), per_class=3)
    split = {"a": {"train": ["a/a_0.wav", "a/a_1.wav", "a/a_2.wav"]},
             "b": {"train": ["b/b_0.wav"], "test": ["b/b_1.wav", "b/b_2.wav"]}}
    (tmp_path / "s.json").write_text(json.dumps(split))
    params = load_params(write_params(tmp_path / "p.json", music, tmp_path / "out",
                                      split={"file": str(tmp_path / "s.json")}))
    build(params, progress=False)
    (tmp_path / "out" / "cache" / "b" / "b_0.wav.npz").unlink()
    manifest = json.loads((tmp_path / "out" / "build_manifest.json").read_text())
    manifest["tracks"]["b/b_0.wav"] = {"split": "train", "status": "failed", "reason": "x"}
    (tmp_path / "out" / "build_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StageError, match=r"training split holds snippets of 1 class\(es\) "
                                         r"\(a\)"):
        process(params, skip_failed=True, progress=False)


def test_interrupted_run_leaves_nothing_trusted(built, monkeypatch):
    tmp, params = built
    process(params, progress=False)
    reference = np.load(tmp / "out" / "arrays" / "train_X.npy")
    p = json.loads((tmp / "p.json").read_text())
    p["process"] = {"seed": 3}  # a change, so the re-run really rewrites everything
    (tmp / "p.json").write_text(json.dumps(p))
    changed = load_params(tmp / "p.json")
    import slapp.stages.process.arrays as mod

    calls = {"n": 0}
    real_write = mod._RowWriter.write

    def interrupting_write(self, rows, positions):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        real_write(self, rows, positions)

    monkeypatch.setattr(mod._RowWriter, "write", interrupting_write)
    with pytest.raises(KeyboardInterrupt):
        process(changed, progress=False)
    monkeypatch.setattr(mod._RowWriter, "write", real_write)
    # the old arrays are untouched, and no temp file is left behind
    assert np.array_equal(np.load(tmp / "out" / "arrays" / "train_X.npy"), reference)
    assert not list((tmp / "out" / ".tmp").iterdir())
    report = process(changed, progress=False)
    assert not report.up_to_date
    assert (tmp / "out" / "arrays" / "process_manifest.json").exists()


@pytest.mark.skipif(__import__("importlib").util.find_spec("musicnn") is None,
                    reason="musicnn weights not installed")
def test_a_replaced_backbone_re_embeds_and_a_broken_one_is_one_line(tmp_path, capsys):
    """Each embedding records its backbone's digest: a re-exported backbone re-embeds
    every track (never a mix of two); a backbone file that will not open is one error
    naming it (before: one failure per track blaming its cache file)."""
    import onnx

    from conftest import make_dataset, run_stages, write_params

    music = make_dataset(tmp_path / "music")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "musicnn-msd"})
    run_stages(params, "build", "process")
    backbone = tmp_path / "out" / "embeddings" / "musicnn-msd" / "backbone.onnx"
    model = onnx.load(str(backbone))
    model.doc_string = "re-exported"
    onnx.save(model, str(backbone))
    from slapp.stages.process.embed import backbone_id

    folder = tmp_path / "out" / "embeddings" / "musicnn-msd"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.npz")}
    run_stages(params, "process")
    assert len(before) == 12 and all(p.stat().st_mtime_ns != t for p, t in before.items())
    assert {str(np.load(p)["backbone"]) for p in before} == {backbone_id(backbone)}
    capsys.readouterr()

    backbone.write_bytes(b"not an onnx file")
    (tmp_path / "out" / "embeddings" / "musicnn-msd" / "bass" / "bass_0.wav.npz").unlink()
    assert process_dataset.main(["--params", str(params), "--quiet"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("WARNING")]
    assert len(err) == 1 and err[0].startswith(f"error: The ONNX backbone '{backbone}' "
                                               "cannot be opened (")
    assert err[0].endswith("Delete it and run process_dataset.py again: it is made anew.")
