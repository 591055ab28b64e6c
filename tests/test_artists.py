"""Artists: read from the files' tags or a CSV, kept on one side of the split, warned
about when a class is one or two artists, and named in stage 3's figures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import TINY, run_stages, tone, write_audio, write_params
from slapp.store.artists import read_artist


def tag(path: Path, artist: str) -> Path:
    import mutagen

    f = mutagen.File(path, easy=True)
    if f.tags is None:
        f.add_tags()
    f["artist"] = artist
    f.save()
    return path


# bass: six artists; mid: three artists of two tracks; treble: one artist
ARTISTS = {"bass": [f"Bassist {i}" for i in range(6)],
           "mid": ["Duo A", "Duo A", "Duo B", "Duo B", "Duo C", "Duo C"],
           "treble": ["Solo Artist"] * 6}


def tagged_collection(root: Path, ext: str = ".mp3", tags: bool = True) -> Path:
    freqs = {"bass": 110.0, "mid": 440.0, "treble": 1760.0}
    for name, artists in ARTISTS.items():
        for i, artist in enumerate(artists):
            path = write_audio(root / name / f"{name}_{i}{ext}",
                               tone(2.0, sr=22050, freq=freqs[name] * (1 + 0.03 * i),
                                    seed=i), 22050)
            if tags:
                tag(path, artist)
    return root


def _split(out: Path) -> dict:
    return json.loads((out / "train_val_test_dict.json").read_text())


def _artist_sides(split: dict, artist_of) -> dict[str, set[str]]:
    sides: dict[str, set[str]] = {}
    for parts in split.values():
        for side, keys in parts.items():
            for key in keys:
                sides.setdefault(artist_of(key), set()).add(side)
    return sides


def test_tags_are_read_from_mp3_flac_ogg_and_m4a(tmp_path):
    import imageio_ffmpeg

    y = tone(1.0, sr=22050)
    for ext in (".mp3", ".flac", ".ogg"):
        path = write_audio(tmp_path / f"t{ext}", y, 22050)
        assert read_artist(tag(path, f"Band {ext}")) == f"Band {ext}"
    m4a = tmp_path / "t.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi",
                    "-i", "sine=duration=1", "-c:a", "aac", str(m4a)], check=True)
    assert read_artist(m4a) is None  # no tag yet
    assert read_artist(tag(m4a, "Band .m4a")) == "Band .m4a"
    assert read_artist(write_audio(tmp_path / "plain.wav", y, 22050)) is None


def test_the_default_split_keeps_every_artist_on_one_side_and_warns_of_one_artist_classes(
        tmp_path, capsys):
    import build_dataset

    music = tagged_collection(tmp_path / "music")
    params = write_params(tmp_path / "p.json", music, tmp_path / "out",
                          split={"val_share": 0.2, "test_share": 0.2, "seed": 3})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 0
    text = capsys.readouterr().out
    split = _split(tmp_path / "out")
    by_key = {f"{c}/{c}_{i}.mp3": a for c, names in ARTISTS.items()
              for i, a in enumerate(names)}
    sides = _artist_sides(split, by_key.__getitem__)
    assert all(len(s) == 1 for a, s in sides.items() if a != "Solo Artist"), sides
    assert {c: [len(split[c][s]) for s in ("train", "val", "test")] for c in split} == {
        "bass": [4, 1, 1], "mid": [2, 2, 2], "treble": [4, 1, 1]}
    assert ("split by artist (split.method 'auto': 18 of 18 tracks have an artist): no "
            "artist is on two sides, except in classes with too few artists") in text
    assert ("warning: treble: 6 tracks, all by Solo Artist: the model will learn that "
            "artist rather than treble; add tracks by other artists") in text
    assert "1 of 4 test tracks are by artists that are also in training (treble 1)" in text
    assert "artists per class: bass 6, mid 3, treble 1" in text
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["artists"]["mid/mid_2.mp3"] == "Duo B" and info["split_method"] == "artist"


def test_untagged_files_split_by_a_groups_csv(tmp_path, capsys):
    import build_dataset

    music = tagged_collection(tmp_path / "music", ext=".wav", tags=False)
    rows = ["path,genre,artist"] + [f"collection/music/{c}/{c}_{i}.wav,{c},{a}"
                                    for c, names in ARTISTS.items()
                                    for i, a in enumerate(names)]
    groups = tmp_path / "artists.csv"
    groups.write_text("\n".join(rows) + "\n")
    params = write_params(tmp_path / "p.json", music, tmp_path / "out",
                          split={"val_share": 0.2, "test_share": 0.2, "seed": 3,
                                 "groups_file": str(groups)})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "split by artist (split.method 'auto': 18 of 18 tracks have an artist)" in text
    by_key = {f"{c}/{c}_{i}.wav": a for c, names in ARTISTS.items()
              for i, a in enumerate(names)}
    sides = _artist_sides(_split(tmp_path / "out"), by_key.__getitem__)
    assert sides["Duo A"] in ({"train"}, {"val"}, {"test"}) and len(sides["Duo B"]) == 1


def test_without_artists_auto_splits_at_random_and_says_why(tmp_path, capsys):
    import build_dataset

    music = tagged_collection(tmp_path / "music", ext=".wav", tags=False)
    params = write_params(tmp_path / "p.json", music, tmp_path / "out")
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert ("split track-wise at random (split.method 'auto': only 0 of 18 tracks have an "
            "artist, too few to keep artists apart; add artist tags or "
            "split.groups_file)") in text


def test_a_groups_csv_without_the_columns_is_one_line_error(tmp_path, capsys):
    import build_dataset

    music = tagged_collection(tmp_path / "music", ext=".wav", tags=False)
    groups = tmp_path / "artists.csv"
    groups.write_text("file;who\nbass/bass_0.wav;X\n")
    params = write_params(tmp_path / "p.json", music, tmp_path / "out",
                          split={"groups_file": str(groups)})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: The groups file '{groups}' (split.groups_file) must have a header with a "
        "'path' column and an 'artist' (or 'group') column. Got ['file;who'].")


def test_stage_3_says_which_test_tracks_are_by_artists_heard_in_training(tmp_path, capsys):
    import train_crnn

    music = tagged_collection(tmp_path / "music")
    params = write_params(tmp_path / "p.json", music, tmp_path / "out", **TINY,
                          split={"val_share": 0.2, "test_share": 0.2, "seed": 3})
    run_stages(params, "build", "process")
    capsys.readouterr()
    assert train_crnn.main(["--params", str(params), "--quiet"]) == 0
    text = capsys.readouterr().out
    evaluation = json.loads((tmp_path / "out" / "model" / "evaluation.json").read_text())
    artists = evaluation["test"]["track"]["artists"]
    assert artists["heard"]["count"] == 1 and artists["unheard"]["count"] == 3
    assert (f"on 3 tracks by artists not in training (or untagged): "
            f"{artists['unheard']['right']} right; on 1 by artists also in training: "
            f"{artists['heard']['right']} right") in text
    assert "training artists per class: bass 4, mid 1, treble 1" in text
    assert "warning: mid: 2 tracks, all by Duo" in text


def test_predict_evaluate_says_which_tracks_are_by_artists_heard_in_training(tmp_path,
                                                                             capsys):
    """The bundle records its training artists; predict_track.py --evaluate splits its
    figure by them (an untagged track counts as not heard)."""
    import predict_track

    music = tagged_collection(tmp_path / "music")
    params = write_params(tmp_path / "p.json", music, tmp_path / "out", **TINY,
                          split={"val_share": 0.2, "test_share": 0.2, "seed": 3})
    run_stages(params, "build", "process", "train")
    by_key = {f"{c}/{c}_{i}.mp3": a for c, names in ARTISTS.items()
              for i, a in enumerate(names)}
    in_train = {by_key[key] for parts in _split(tmp_path / "out").values()
                for key in parts["train"]}
    bundle = json.loads((tmp_path / "out" / "model" / "bundle.json").read_text())
    assert bundle["training_artists"] == sorted(in_train, key=str.casefold)
    write_audio(music / "treble" / "treble_untagged.mp3", tone(2.0, sr=22050, freq=1800.0),
                22050)
    capsys.readouterr()
    out_json = tmp_path / "labels.json"
    assert predict_track.main(["--params", str(params), "--quiet", "--evaluate",
                               "--output", str(out_json), str(music)]) == 0
    text = capsys.readouterr().out
    labels = {Path(t["path"]).name: t["label"]
              for t in json.loads(out_json.read_text())["tracks"]}
    heard = {f"{c}_{i}.mp3" for c, names in ARTISTS.items()
             for i, artist in enumerate(names) if artist in in_train}
    right = {name for name, label in labels.items() if name.startswith(label + "_")}
    assert len(labels) == 19 and 0 < len(heard) < 19
    assert (f"  on {19 - len(heard)} tracks by artists not in training (or untagged): "
            f"{len(right - heard)} right; on {len(heard)} by artists also in training: "
            f"{len(right & heard)} right") in text

def test_a_collection_without_any_artist_says_so_once(tmp_path, capsys):
    import build_dataset

    music = tagged_collection(tmp_path / "music", ext=".wav", tags=False)
    params = write_params(tmp_path / "p.json", music, tmp_path / "out")
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert ("artists: none of the 18 tracks has an artist tag, so slapp cannot tell whether "
            "a class is mostly one artist (add artist tags or split.groups_file)") in out
    assert "artists per class" not in out and "test tracks are by artists" not in out
