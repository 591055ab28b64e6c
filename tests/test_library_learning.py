"""The unlabelled library through the scripts (musicnn-msd, tiny synthetic audio): built and
embedded like the labelled tracks but never in validation or test, learned from in a
second round, ``--suggest`` writes a CSV and a playlist, and the filled CSV's answers join
the next training; bad rows are one line each."""

from __future__ import annotations

import csv
import logging
import importlib.util
import json

import numpy as np
import pytest

from conftest import make_dataset, run_stages, tone, write_audio, write_params

needs_musicnn = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="musicnn weights not installed")


def _library(root):
    """Six unlabelled tones (two near each class's pitch), a file that is not audio, and
    an MP3 that is not one. 4.12 s long, no labelled tone's length (make_dataset: 0.25 s
    steps): a tone as long as a labelled one a semitone away is the same recording to the
    duplicate search (equal one-second spectral shapes) and would leave the library as a
    copy."""
    for i, freq in enumerate([115.0, 125.0, 450.0, 470.0, 1800.0, 1900.0]):
        write_audio(root / "inbox" / f"track_{i}.wav", tone(4.12, freq=freq, seed=100 + i),
                    22050)
    (root / "notes.txt").write_text("not music")
    (root / "inbox" / "broken.mp3").write_bytes(b"ID3" + b"\x00" * 200)
    return root


@needs_musicnn
def test_library_training_and_suggestions_through_the_scripts(tmp_path, capsys):
    import predict_track

    music = make_dataset(tmp_path / "music", per_class=4, seconds=4.0)
    library = _library(tmp_path / "library")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "musicnn-msd"},
                          paths={"input_dir": str(music), "output_dir": str(tmp_path / "out"),
                                 "unlabelled_dir": str(library)},
                          slicing={"overlap_seconds": 2.0, "max_snippets_per_track": 3},
                          training={"epochs": 20, "learning_rate": 0.01, "batch_size": 8,
                                    "library": {"min_confidence": 0.5, "suggest": 4,
                                                "method": "self-train"}})
    run_stages(params, "build", "process", "train")
    out = capsys.readouterr().out
    assert ("library (paths.unlabelled_dir, for training only): 7 unlabelled tracks, "
            "6 cached, 0 of them already, 1 failed") in out
    assert "  failed: inbox/broken.mp3: " in out
    assert "library: 6 unlabelled tracks embedded for training" in out
    joined = [line for line in out.splitlines() if line.startswith("  library: ")
              and "joined training" in line]
    assert len(joined) == 1 and " of 6 unlabelled tracks joined training" in joined[0]
    n_joined = int(joined[0].split("library: ")[1].split(" of 6")[0])
    assert n_joined >= 1  # the second round ran on pseudo-labelled tracks
    root = tmp_path / "out"
    keys = json.loads((root / "arrays" / "library.json").read_text())["keys"]
    assert keys == [f"inbox/track_{i}.wav" for i in range(6)]
    split = json.loads((root / "train_val_test_dict.json").read_text())
    assert not any("inbox" in k for c in split.values() for p in c.values() for k in p)
    bundle = json.loads((root / "model" / "bundle.json").read_text())
    assert bundle["trained"]["library"] == joined[0].strip()
    # stage 3 keeps 4 library tracks to label in <output_dir>/to-label.csv
    to_label = root / "to-label.csv"
    assert (f"  library: 4 track(s) worth labelling next added to {to_label} (listen: "
            f"{to_label.with_suffix('.m3u8')}); answer them with predict_track.py --answer "
            "(a page) or in the label column, set paths.labels_file to it and train again") in out
    listed = list(csv.DictReader(to_label.open()))
    assert len({r["path"] for r in listed}) == 4
    assert {r["path"] for r in listed} <= {str(library / "inbox" / f"track_{i}.wav")
                                           for i in range(6)}
    run_stages(params, "train")  # up to date: the file is left as it is
    assert len(list(csv.DictReader(to_label.open()))) == 4
    first_library = bundle["signature"]["arrays"]["library"]

    # --suggest: the CSV to fill and the playlist; no track twice
    suggest_file = tmp_path / "answers" / "to-label.csv"
    code = predict_track.main(["--params", str(params), "--quiet", str(library / "inbox"),
                               "--suggest", "3", "--suggest-file", str(suggest_file)])
    out = capsys.readouterr().out
    assert code == 3  # the broken file is listed as failed, the rest labelled
    rows = list(csv.DictReader(suggest_file.open()))
    assert len(rows) == 3 and len({r["path"] for r in rows}) == 3
    assert all(r["label"] == "" and r["guess"] in ("bass", "mid", "treble") for r in rows)
    playlist = suggest_file.with_suffix(".m3u8").read_text().splitlines()
    assert playlist[0] == "#EXTM3U" and len(playlist) == 7
    assert f"answer them on a page: predict_track.py --answer {suggest_file}" in out
    # answer one, write a bad row and a wrong label; a second --suggest keeps them all
    rows[0]["label"] = "mid"
    rows[1]["label"] = "jazz"
    rows.append({"path": str(tmp_path / "missing.wav"), "label": "bass", "guess": "",
                 "confidence": "", "artist": ""})
    with suggest_file.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    predict_track.main(["--params", str(params), "--quiet", str(library / "inbox"),
                        "--suggest", "2", "--suggest-file", str(suggest_file)])
    again = list(csv.DictReader(suggest_file.open()))
    assert [r["label"] for r in again[:4]] == ["mid", "jazz", "", "bass"]
    assert len(again) == 6 and len({r["path"] for r in again}) == 6
    capsys.readouterr()

    # the next training takes the answer; each bad row is one line naming file and line
    raw = json.loads(params.read_text())
    raw["paths"]["labels_file"] = str(suggest_file)
    params.write_text(json.dumps(raw))
    run_stages(params, "build")
    out = capsys.readouterr().out
    answered = rows[0]["path"].split("/inbox/")[1]
    assert (f"labels file (paths.labels_file): 1 track(s) labelled, in training: mid 1; "
            "2 row(s) not used") in out
    assert (f"{suggest_file}, line 3: label 'jazz' is not a class; expected one of bass, "
            "mid, treble, or none (not used)") in out
    assert f"{suggest_file}, line 5: '{tmp_path / 'missing.wav'}' is not a file" in out
    assert "6 unlabelled tracks, 5 cached, 5 of them already, 1 failed" in out
    split = json.loads((root / "train_val_test_dict.json").read_text())
    assert split["mid"]["train"].count(f"mid/+labels/inbox/{answered}") == 1
    run_stages(params, "process", "train")
    keys = json.loads((root / "arrays" / "library.json").read_text())["keys"]
    assert f"inbox/{answered}" not in keys and len(keys) == 5
    retrained = json.loads((root / "model" / "bundle.json").read_text())
    assert retrained["signature"]["arrays"]["library"] != first_library  # a changed
    assert retrained["trained"]["date"] > bundle["trained"]["date"]       # library retrains
    # dropping the labels file again: the split stays valid, the answer leaves training
    raw["paths"]["labels_file"] = None
    params.write_text(json.dumps(raw))
    run_stages(params, "build")
    split = json.loads((root / "train_val_test_dict.json").read_text())
    assert not any("+labels" in k for c in split.values() for p in c.values() for k in p)


def test_a_labels_file_without_its_columns_is_one_clear_error(tmp_path, capsys):
    import build_dataset

    music = make_dataset(tmp_path / "music")
    bad = tmp_path / "labels.csv"
    bad.write_text("file,genre\nx.wav,bass\n")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          paths={"input_dir": str(music), "output_dir": str(tmp_path / "out"),
                                 "labels_file": str(bad)})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: Labels file '{bad}' has no 'path' and 'label' columns in its "
                   "first line (got file, genre). Expected a CSV with columns path,label."]


def test_a_missing_library_folder_is_one_clear_error(tmp_path, capsys):
    import build_dataset

    music = make_dataset(tmp_path / "music")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          paths={"input_dir": str(music), "output_dir": str(tmp_path / "out"),
                                 "unlabelled_dir": str(tmp_path / "nowhere")})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: Library folder '{tmp_path / 'nowhere'}' (paths.unlabelled_dir) "
                   "does not exist or is not a folder. Expected a folder of audio files (any "
                   "sub-folders), or null."]


def test_the_crnn_ignores_the_library_with_one_warning(tmp_path, capsys):
    from conftest import TINY

    music = make_dataset(tmp_path / "music")
    library = _library(tmp_path / "library")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "crnn", **TINY["model"]},
                          paths={"input_dir": str(music), "output_dir": str(tmp_path / "out"),
                                 "unlabelled_dir": str(library)})
    run_stages(params, "build", "process")
    printed = capsys.readouterr()
    warnings = [line for line in (printed.out + printed.err).splitlines()
                if "unlabelled_dir is set" in line]
    said = ("WARNING: paths.unlabelled_dir is set, but the crnn backbone does not learn from "
            "an unlabelled library (the musicnn backbones do): ")
    assert warnings == [said + "not built", said + "ignored"]  # stage 1, stage 2
    assert not (tmp_path / "out" / "library").exists()  # nothing decoded for it
    assert not (tmp_path / "out" / "arrays" / "library.json").exists()


def test_none_answers_leave_the_library_and_a_new_labels_file_is_no_error(tmp_path, caplog):
    """An answer 'none' takes the track out of the library (so out of its suggestions and
    of training); a labels file that does not exist yet is a note, not an error."""
    from slapp.params import params_from_dict
    from slapp.store.unlabelled import find_library

    library = tmp_path / "lib"
    for name in ("a", "b", "c"):
        write_audio(library / f"{name}.wav", tone(1.0, seed=ord(name)), 22050)
    labels = tmp_path / "answers.csv"
    params = params_from_dict({"paths": {"input_dir": str(tmp_path), "unlabelled_dir":
                                         str(library), "labels_file": str(labels)}})
    logger = logging.getLogger("slapp.store.unlabelled")
    logger.addHandler(caplog.handler)  # whatever an earlier test set up for "slapp"
    try:
        with caplog.at_level("INFO", logger="slapp.store.unlabelled"):
            lib = find_library(params, ("bass", "mid"), [])
    finally:
        logger.removeHandler(caplog.handler)
    assert sorted(lib.files) == ["a.wav", "b.wav", "c.wav"] and not lib.problems
    assert f"labels file '{labels}' (paths.labels_file) does not exist yet" in caplog.text
    labels.write_text(f"path,label\n{library / 'a.wav'},none\n{library / 'b.wav'},mid\n"
                      f"{library / 'c.wav'},\n")
    lib = find_library(params, ("bass", "mid"), [])
    assert sorted(lib.files) == ["c.wav"] and lib.none == {(library / "a.wav").resolve()}
    assert list(lib.labelled) == ["mid"] and not lib.problems


def test_a_labels_file_in_a_missing_folder_is_one_clear_error(tmp_path):
    from slapp.errors import DatasetError
    from slapp.params import params_from_dict
    from slapp.store.unlabelled import find_library

    bad = tmp_path / "nowhere" / "answers.csv"
    params = params_from_dict({"paths": {"input_dir": str(tmp_path), "labels_file": str(bad)}})
    with pytest.raises(DatasetError, match=f"Labels file '{bad}' \\(paths.labels_file\\) is "
                                           "not a file in an existing folder"):
        find_library(params, ("bass",), [])


def test_a_damaged_library_cache_file_is_rebuilt_not_a_traceback(tmp_path, capsys):
    """A truncated library cache file without a manifest to vouch for it (a build killed
    before writing it) is found when the manifest is written, deleted and built again by
    the next run, as in the labelled build (before: a traceback)."""
    music = make_dataset(tmp_path / "music")
    library = _library(tmp_path / "library")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "musicnn-msd"},
                          paths={"input_dir": str(music), "output_dir": str(tmp_path / "out"),
                                 "unlabelled_dir": str(library)})
    run_stages(params, "build")
    lib = tmp_path / "out" / "library"
    damaged = lib / "cache" / "inbox" / "track_0.wav.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    (lib / "build_manifest.json").unlink()
    capsys.readouterr()
    run_stages(params, "build")
    out = capsys.readouterr().out
    assert "7 unlabelled tracks, 5 cached, 6 of them already, 1 failed, 1 not done yet" in out
    assert not damaged.exists()
    run_stages(params, "build")
    out = capsys.readouterr().out
    assert "7 unlabelled tracks, 6 cached, 5 of them already, 1 failed" in out, out
    manifest = json.loads((lib / "build_manifest.json").read_text())
    assert manifest["tracks"]["inbox/track_0.wav"]["status"] == "done"
    assert np.load(damaged)["mel"].shape[0] >= 1


def test_copies_of_labelled_tracks_leave_the_library_by_their_audio(tmp_path, capsys):
    """A library holding renamed copies of the class folders' tracks: the copies leave
    the library (never suggested, never pseudo-labelled); an answered copy whose label
    differs from its original's folder is a warning naming both."""
    import shutil

    def melody(seed: int, low: float) -> np.ndarray:
        """4 s of random notes (a new one every 0.25 s) in a register: each its own music."""
        rng = np.random.default_rng(seed)
        t = np.arange(22050 // 4) / 22050
        notes = [0.3 * np.sin(2 * np.pi * low * 2 ** (rng.integers(0, 24) / 12) * t)
                 for _ in range(16)]
        return np.concatenate(notes).astype(np.float32)[:, None]

    music = tmp_path / "music"
    for c, low in (("bass", 80.0), ("mid", 300.0), ("treble", 1200.0)):
        for i in range(4):
            write_audio(music / c / f"{c}_{i}.wav", melody(10 * len(c) + i, low), 22050)
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(music / "bass" / "bass_1.wav", library / "renamed.wav")
    shutil.copy(music / "mid" / "mid_2.wav", library / "other name.wav")
    for i, low in enumerate([300.0, 700.0]):
        write_audio(library / f"new_{i}.wav", melody(2000 + i, low), 22050)
    shutil.copy(music / "treble" / "treble_0.wav", tmp_path / "answered.wav")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label\n{tmp_path / 'answered.wav'},bass\n")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "musicnn-msd"},
                          paths={"input_dir": str(music), "output_dir": str(tmp_path / "out"),
                                 "unlabelled_dir": str(library), "labels_file": str(labels)})
    run_stages(params, "build")
    printed = capsys.readouterr()
    out = printed.out
    assert ("  2 library track(s) are copies of labelled tracks (by their audio; e.g. other "
            "name.wav of mid/mid_2.wav): left out of the library") in out
    tracks = json.loads((tmp_path / "out" / "library" / "build_manifest.json").read_text())[
        "tracks"]
    assert {k: e["status"] for k, e in tracks.items()} == {
        "new_0.wav": "done", "new_1.wav": "done", "other name.wav": "copy",
        "renamed.wav": "copy"}
    assert tracks["renamed.wav"]["of"] == "bass/bass_1.wav"
    from slapp.stages.build.library import library_keys
    from slapp.store.layout import BuildLayout

    assert library_keys(BuildLayout(tmp_path / "out" / "library")) == ["new_0.wav", "new_1.wav"]
    assert ("labels file: the answer 'bass' for answered.wav is a copy of "
            "'treble/treble_0.wav' (100% of its audio; class folder 'treble'): labelled "
            "differently") in printed.out + printed.err


def test_answers_are_keyed_by_file_and_a_track_given_two_labels_is_never_used(tmp_path):
    """Two track01.wav of different folders are two answers; rows X, Y, X for one track
    leave it out (as the warning says), not labelled X."""
    from slapp.params import params_from_dict
    from slapp.store.unlabelled import find_library

    a, b, c = (tmp_path / d / "track01.wav" for d in ("one", "two", "three"))
    for i, path in enumerate((a, b, c)):
        write_audio(path, tone(1.0, seed=i), 22050)
    labels = tmp_path / "answers.csv"
    labels.write_text(f"path,label\n{a},bass\n{b},bass\n{c},bass\n{c},mid\n{c},bass\n")
    params = params_from_dict({"paths": {"input_dir": str(tmp_path),
                                         "labels_file": str(labels)}})
    lib = find_library(params, ("bass", "mid"), [])
    assert sorted(lib.labelled["bass"].values()) == sorted([a, b])
    assert lib.labelled.get("mid", {}) == {}
    assert [p.split(": ", 1)[1] for p in lib.problems] == [
        f"'{c}' is labelled 'mid' here and 'bass' on line 4; expected one label per track "
        "(neither is used)",
        f"'{c}' was given two labels above; expected one label per track (not used)"]
