"""build_dataset end to end: bad tracks, re-runs, changed parameters, locks, scripts."""

import json

import numpy as np
import pytest

import build_dataset
from slapp.stages.build.dataset import build_dataset as build
from slapp.store.cache import read_track
from slapp.store.layout import BuildLayout
from slapp.errors import DatasetError, StageError
from slapp.store.lock import output_lock
from slapp.params import load_params

from conftest import make_dataset, tone, write_audio, write_params


@pytest.fixture
def bad_dataset(tmp_path):
    root = make_dataset(tmp_path / "music")
    bass = root / "bass"
    (bass / "empty.mp3").write_bytes(b"")
    (bass / "text.mp3").write_text("definitely not an mp3\n" * 50)
    write_audio(bass / "silent.wav", np.zeros((22050 * 2, 1), np.float32), 22050)
    write_audio(bass / "short.wav", tone(0.3, sr=22050), 22050)
    full = write_audio(tmp_path / "full.mp3", tone(9.0, sr=22050, freq=120), 22050)
    data = full.read_bytes()
    (bass / "truncated.mp3").write_bytes(data[: len(data) // 3])
    write_audio(root / "mid" / "long ten minutes.wav", tone(600, sr=16000, freq=500), 16000)
    write_audio(root / "mid" / "eight k.mp3", tone(3.0, sr=8000, freq=450), 8000)
    write_audio(root / "treble" / "ça va — 48k stéréo.mp3",
                tone(3.0, sr=48000, freq=1800, channels=2), 48000)
    (root / "treble" / "cover.jpg").write_bytes(b"\xff\xd8")
    return root


def test_bad_tracks_are_reported_counted_and_the_rest_is_built(tmp_path, bad_dataset):
    params = load_params(write_params(tmp_path / "p.json", bad_dataset, tmp_path / "out"))
    report = build(params, progress=False)
    assert report.n_tracks == 12 + 8
    assert report.failed == {
        "bass/empty.mp3": "empty file (0 bytes)",
        "bass/short.wav": "too short: 0.30 s of audio, expected at least 0.5 s "
                          "(slicing.min_track_seconds)",
        "bass/silent.wav": "silent: peak level -inf dBFS, expected above -60 dBFS "
                           "(audio.silence_threshold_db)",
        "bass/text.mp3": "not a readable audio file (the decoders do not recognise its "
                         "content)",
    }
    assert report.cached_now == 16
    assert any("truncated" in n for n in report.notes["bass/truncated.mp3"])
    assert any("8000 Hz source upsampled" in n for n in report.notes["mid/eight k.mp3"])
    assert report.sources["48000 Hz stereo"] == 1
    layout = BuildLayout(tmp_path / "out")
    mel, starts = read_track(layout, "treble/ça va — 48k stéréo.mp3")
    assert mel.shape == (5, 63, 32) and mel.dtype == np.float32  # 1 + 16000 // 256 frames
    # every 0.5 s, moved back to whole 256-sample frames
    np.testing.assert_allclose(starts, np.array([0, 31, 62, 93, 125]) * 256 / 16000)
    mel, starts = read_track(layout, "mid/long ten minutes.wav")
    assert mel.shape[0] == 6 and starts[0] == 0 and starts[-1] > 590  # evenly spread
    manifest = json.loads(layout.manifest_file.read_text())
    assert manifest["counts"] == {"done": 16, "failed": 4, "pending": 0}
    assert manifest["tracks"]["bass/empty.mp3"]["status"] == "failed"
    text = "\n".join(report.summary())
    assert "16 cached now" in text and "4 failed" in text and "bass/empty.mp3: empty" in text
    assert "ignored 1 files that are not audio (.jpg x1)" in text
    split = json.loads(layout.split_file.read_text())
    assert sum(map(len, split["bass"].values())) == 9  # failed tracks stay in the split


def test_rerun_skips_and_retries_failed(tmp_path, dataset):
    params = load_params(write_params(tmp_path / "p.json", dataset, tmp_path / "out"))
    first = build(params, progress=False)
    assert first.cached_now == 12 and not first.failed
    (dataset / "mid" / "bad.wav").write_bytes(b"RIFF")
    # a new track is outside the existing split: refused with the remedy
    with pytest.raises(DatasetError, match=r"leaves out 1 track\(s\).*'mid/bad.wav'.*--resplit"):
        build(params, progress=False)
    again = build(params, resplit=True, progress=False)
    assert again.cached_before == 12 and again.cached_now == 0
    assert list(again.failed) == ["mid/bad.wav"]
    (dataset / "mid" / "bad.wav").unlink()
    write_audio(dataset / "mid" / "bad.wav", tone(1.0), 22050)  # user fixed the file
    fixed = build(params, progress=False)
    assert fixed.cached_now == 1 and not fixed.failed


def test_changed_feature_parameters_are_refused_then_rebuilt(tmp_path, dataset):
    out = tmp_path / "out"
    build(load_params(write_params(tmp_path / "p.json", dataset, out)), progress=False)
    changed = load_params(write_params(tmp_path / "p.json", dataset, out,
                                       features={"n_mels": 40}, slicing={"overlap_seconds": 0.25}))
    with pytest.raises(StageError, match=r"built with other feature parameters \("
                                         r"features.n_mels: 32 -> 40; slicing.overlap_seconds: "
                                         r"0.5 -> 0.25\). Run build_dataset.py --rebuild"):
        build(changed, progress=False)
    report = build(changed, rebuild=True, progress=False)
    assert report.cached_now == 12
    mel, _ = read_track(BuildLayout(out), "bass/bass_0.wav")
    assert mel.shape[-1] == 40


def test_changed_split_parameters_need_resplit(tmp_path, dataset):
    out = tmp_path / "out"
    build(load_params(write_params(tmp_path / "p.json", dataset, out)), progress=False)
    before = (out / "train_val_test_dict.json").read_text()
    changed = load_params(write_params(tmp_path / "p.json", dataset, out, split={"seed": 2}))
    with pytest.raises(StageError, match=r"split parameters changed.*split.seed: 1 -> 2.*--resplit"):
        build(changed, progress=False)
    assert (out / "train_val_test_dict.json").read_text() == before  # nothing lost
    report = build(changed, resplit=True, progress=False)
    assert report.cached_now == 0  # features kept
    # the manifest follows the new split, also for tracks cached before it
    new_split = json.loads((out / "train_val_test_dict.json").read_text())
    assert new_split != json.loads(before)
    where = {key: part for c in new_split for part, keys in new_split[c].items()
             for key in keys}
    manifest = json.loads((out / "build_manifest.json").read_text())["tracks"]
    assert {key: entry["split"] for key, entry in manifest.items()} == where


def test_user_split_file_is_validated_and_used(tmp_path, dataset):
    split = {c: {"train": [f"{c}/{c}_0.wav", f"{c}/{c}_1.wav"], "val": [f"{c}/{c}_2.wav"],
                 "test": [f"{c}/{c}_3.wav"]} for c in ("bass", "mid", "treble")}
    (tmp_path / "mysplit.json").write_text(json.dumps(split))
    p = write_params(tmp_path / "p.json", dataset, tmp_path / "out",
                     split={"file": str(tmp_path / "mysplit.json")})
    build(load_params(p), progress=False)
    assert json.loads((tmp_path / "out" / "train_val_test_dict.json").read_text()) == split
    del split["mid"]["test"]
    (tmp_path / "mysplit.json").write_text(json.dumps(split))
    with pytest.raises(DatasetError, match=r"mysplit.json' leaves out 1 track\(s\)"):
        build(load_params(p), progress=False)


def test_second_run_on_the_same_output_is_refused(tmp_path, params_file):
    params = load_params(params_file)
    with output_lock(tmp_path / "out", "build_dataset.py"):
        with pytest.raises(StageError, match=r"is in use by another slapp run \("
                                             r"build_dataset.py, pid \d+"):
            build(params, progress=False)
    assert build(params, progress=False).cached_now == 12  # the lock is free again


def test_parallel_build_equals_serial_build(tmp_path, dataset):
    serial = write_params(tmp_path / "s.json", dataset, tmp_path / "s", workers=1)
    parallel = write_params(tmp_path / "p.json", dataset, tmp_path / "p", workers=2)
    build(load_params(serial), progress=False)
    build(load_params(parallel), progress=False)
    for key in ("bass/bass_0.wav", "treble/treble_3.wav"):
        a = read_track(BuildLayout(tmp_path / "s"), key)
        b = read_track(BuildLayout(tmp_path / "p"), key)
        assert np.allclose(a[0], b[0], atol=1e-4) and np.array_equal(a[1], b[1])


def test_script_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text('{"paths": {"input_dir": "x"}, "slicing": {"overlap_seconds": 5}}')
    assert build_dataset.main(["--params", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "'slicing.overlap_seconds'" in err


def test_script_missing_input_folder(tmp_path, capsys):
    p = write_params(tmp_path / "p.json", tmp_path / "nowhere", tmp_path / "out")
    assert build_dataset.main(["--params", str(p), "--quiet"]) == 1
    assert "Input folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_script_summary(params_file, capsys):
    assert build_dataset.main(["--params", str(params_file), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "12 cached now" in out and "snippets: train" in out


def test_cache_without_build_info_is_refused(tmp_path, params_file):
    params = load_params(params_file)
    build(params, progress=False)
    (tmp_path / "out" / "build_info.json").unlink()
    with pytest.raises(StageError, match=r"build_info.json' is missing.*--rebuild"):
        build(params, progress=False)
    assert build(params, rebuild=True, progress=False).cached_now == 12
