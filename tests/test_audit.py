"""The collection audit: planted duplicates (re-encoded, resampled, trimmed and offset,
quieter) are found with their kind and the split leak; a class whose encoding differs is
named as a shortcut; one-artist classes are warned; nothing false on clean music."""

from __future__ import annotations

import json
import subprocess
import zlib

import numpy as np

from conftest import write_audio, write_params


def music(seconds: float, seed: int, sr: int = 22050) -> np.ndarray:
    """A seeded 'song': a new random chord every half second, with some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * sr)) / sr
    parts = []
    for _ in range(int(seconds * 2)):
        freqs = 110 * 2 ** (rng.integers(0, 36, size=3) / 12)
        parts.append(sum(np.sin(2 * np.pi * f * t) for f in freqs) / 6
                     + 0.01 * rng.standard_normal(len(t)))
    return np.concatenate(parts).astype(np.float32)[:, None]


def _ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args],
                   check=True)


def test_planted_faults_are_found_and_clean_tracks_are_not(tmp_path, capsys):
    import audit_dataset
    import build_dataset

    root = tmp_path / "music"
    for c, name in enumerate(("ambient", "folk", "techno")):
        rate = 16000 if name == "techno" else 22050  # a class of other encoding
        for i in range(5):
            write_audio(root / name / f"{name}{i}.wav", music(12.0, 10 * c + i, rate), rate)
    src = root / "ambient" / "ambient0.wav"
    _ffmpeg("-i", str(src), "-b:a", "64k", "-af", "volume=-6dB",
            str(root / "folk" / "stolen.mp3"))                      # re-encoded, quieter
    _ffmpeg("-ss", "2.3", "-i", str(root / "folk" / "folk1.wav"),
            str(root / "ambient" / "cut.wav"))                      # trimmed and offset
    params = write_params(tmp_path / "p.json", root, tmp_path / "out",
                          audio={"sample_rate": 22050},
                          slicing={"snippet_seconds": 3.0, "overlap_seconds": 1.0,
                                   "max_snippets_per_track": 14},
                          features={"n_fft": 2048, "hop_length": 512, "n_mels": 100},
                          split={"val_share": 0.2, "test_share": 0.2, "seed": 1})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 0
    capsys.readouterr()
    assert audit_dataset.main(["--params", str(params), "--quiet"]) == 0
    out = capsys.readouterr().out
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    groups = {tuple(t["key"] for t in g["tracks"]): g for g in audit["duplicates"]}
    assert set(groups) == {("ambient/ambient0.wav", "folk/stolen.mp3"),
                           ("ambient/cut.wav", "folk/folk1.wav")}
    assert groups[("ambient/ambient0.wav", "folk/stolen.mp3")]["kind"] == "exact"
    assert groups[("ambient/cut.wav", "folk/folk1.wav")]["kind"] == "different cut"
    split = json.loads((tmp_path / "out" / "train_val_test_dict.json").read_text())
    side = {k: s for parts in split.values() for s, keys in parts.items() for k in keys}
    for keys, g in groups.items():
        assert g["leak"] == (len({side[k] for k in keys}) > 1 and
                             "train" in {side[k] for k in keys})
    assert any(s.startswith("techno: 5 of 5 techno tracks are 16000 Hz mono") and
               "no other track is" in s and "a model can tell techno by its encoding" in s
               for s in audit["shortcuts"])
    assert "duplicates: 2 group(s)" in out
    fixed = json.loads((tmp_path / "out" / "audit_split.json").read_text())
    fixed_side = {k: s for parts in fixed.values() for s, keys in parts.items() for k in keys}
    assert set(fixed_side) == set(side)
    for keys in groups:
        assert len({fixed_side[k] for k in keys}) == 1
    leaks = sum(g["leak"] for g in groups.values())
    assert sum(fixed_side[k] != side[k] for k in side) == leaks
    png = (tmp_path / "out" / "audit_map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and f"written: {tmp_path / 'out' / 'audit_map.png'}" in out
    rows = (tmp_path / "out" / "audit.csv").read_text().splitlines()
    assert rows[0].startswith("key,class,split,artist,encoding") and len(rows) == 18


def sounds(kind: str, seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """Three kinds of sound a pretrained network tells apart: low sine 'pads', noise
    'drums' (bursts every quarter second) and high 'bells' (decaying partials)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if kind == "pads":
        y = sum(np.sin(2 * np.pi * f * t) for f in 55 * 2 ** (rng.integers(0, 12, 3) / 12))
    elif kind == "drums":
        env = np.exp(-30 * ((t * 4) % 1) / 4)
        y = 2 * env * rng.standard_normal(n)
    else:
        f = 1500 * 2 ** (rng.integers(0, 12) / 12)
        y = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2.7, 5.4)) * np.exp(-2 * (t % 1))
    return (0.2 * y / np.abs(y).max()).astype(np.float32)[:, None]


def test_wrong_labels_by_sound_rank_the_moved_track_first_and_are_cached(tmp_path,
                                                                        monkeypatch):
    from slapp.stages.audit import label_issues

    files, tracks, artists = {}, {}, {}
    for kind in ("pads", "drums", "bells"):
        for i in range(6):
            folder = "pads" if (kind, i) == ("drums", 5) else kind  # one drum track moved
            key = f"{folder}/{kind}{i}.wav"
            files[key] = write_audio(tmp_path / "music" / key,
                                     sounds(kind, 7.0, zlib.crc32(f"{kind}{i}".encode())), 16000)
            tracks[key] = {"class": folder}
            artists[key] = f"{kind} player {i % 3}"  # three artists per class
    cache = tmp_path / "out" / "audit" / "embeddings"
    found = label_issues.find_label_issues(tracks, files, artists, cache, progress=False)
    assert found.skipped == ""
    assert found.issues[0]["key"] == "pads/drums5.wav"
    assert found.issues[0]["sounds_like"] == "drums" and found.issues[0]["class"] == "pads"
    assert found.sounds_like["pads/drums5.wav"] == "drums"
    assert [i["key"] for i in found.issues] == ["pads/drums5.wav"]  # nothing else flagged
    assert len(list(cache.glob("*.npy"))) == 18

    def no_embedding(*args, **kwargs):
        raise AssertionError("an unchanged track was embedded again")

    monkeypatch.setattr(label_issues, "track_embedding", no_embedding)
    again = label_issues.find_label_issues(tracks, files, artists, cache, progress=False)
    assert [i["key"] for i in again.issues] == ["pads/drums5.wav"]


def test_fold_groups_keep_artists_together_but_deal_a_dominant_artist_track_by_track():
    from slapp.stages.audit.label_issues import fold_groups

    keys = ["blues/a", "blues/b", "blues/c", "jazz/d", "jazz/e", "jazz/f", "jazz/g"]
    labels = ["blues"] * 3 + ["jazz"] * 4
    artists = {"blues/a": "Hooker", "blues/b": "Hooker", "blues/c": "King",
               "jazz/d": "Davis", "jazz/e": "Davis", "jazz/f": "Coltrane"}
    assert fold_groups(keys, labels, artists) == [
        "blues/a", "blues/b", "artist:king", "artist:davis", "artist:davis",
        "artist:coltrane", "jazz/g"]


def test_the_split_file_without_leaks_moves_each_group_to_its_majority_side(tmp_path):
    from slapp.stages.audit.audit import split_without_leaks

    split = {"rock": {"train": ["rock/a", "rock/b"], "val": ["rock/c"], "test": ["rock/d"]},
             "pop": {"train": ["pop/e"], "val": [], "test": ["pop/f", "pop/g"]}}
    (tmp_path / "split.json").write_text(json.dumps(split))
    groups = [{"tracks": [{"key": "rock/a"}, {"key": "rock/d"}, {"key": "pop/f"}]},
              {"tracks": [{"key": "pop/f"}, {"key": "pop/g"}, {"key": "rock/c"}]},
              {"tracks": [{"key": "pop/e"}, {"key": "rock/c"}]}]
    out = split_without_leaks(tmp_path / "split.json", groups[:1], tmp_path / "one.json")
    assert json.loads(out.read_text()) == {  # two of three on test: rock/a joins them
        "rock": {"train": ["rock/b"], "val": ["rock/c"], "test": ["rock/d", "rock/a"]},
        "pop": {"train": ["pop/e"], "val": [], "test": ["pop/f", "pop/g"]}}
    out = split_without_leaks(tmp_path / "split.json", groups[1:2], tmp_path / "two.json")
    assert json.loads(out.read_text())["rock"] == {"train": ["rock/a", "rock/b"], "val": [],
                                                    "test": ["rock/d", "rock/c"]}
    out = split_without_leaks(tmp_path / "split.json", groups[2:], tmp_path / "tie.json")
    assert json.loads(out.read_text())["rock"]["train"] == ["rock/a", "rock/b", "rock/c"]


def test_the_duplicate_search_finds_copies_among_many_and_ignores_silence():
    from slapp.dsp.duplicates import find_duplicates

    rng = np.random.default_rng(0)

    def unit(x):
        x = x - x.mean(axis=1, keepdims=True)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    shapes = {f"a/{i}": unit(rng.standard_normal((40, 60))) for i in range(300)}
    shapes["b/copy"] = unit(shapes["a/7"] + 0.01 * rng.standard_normal((40, 60)))
    shapes["b/half"] = unit(np.vstack([shapes["a/9"][20:], rng.standard_normal((20, 60))]))
    shapes["c/silent1"] = np.zeros((40, 60), np.float32)  # flat seconds: no shape at all
    shapes["c/silent2"] = np.zeros((40, 60), np.float32)
    shapes["d/link"] = shapes["a/5"]  # the same file under another name
    seconds = {k: 10.0 for k in shapes}
    found = sorted(find_duplicates(shapes, seconds, {"d/link": "inode 5", "a/5": "inode 5"}))
    assert [(a, b, kind) for a, b, _, kind in found] == [
        ("a/5", "d/link", "same file"), ("a/7", "b/copy", "exact"),
        ("a/9", "b/half", "different cut")]
    assert [round(share, 2) for _, _, share, _ in found] == [1.0, 1.0, 0.5]
    assert find_duplicates({"a/0": shapes["a/0"], "a/1": shapes["a/1"]}, seconds) == []


def test_a_track_its_folder_is_contradicted_outright_is_flagged_even_where_cleanlab_is_not_sure(
        tmp_path, monkeypatch):
    from slapp.stages.audit import label_issues

    keys = [f"{c}/{c}{i}" for c in "abc" for i in range(4)]
    tracks = {k: {"class": k[0]} for k in keys}
    probs = np.full((12, 3), 0.0005)
    for row, key in enumerate(keys):
        probs[row, "abc".index(key[0])] = 0.999
    probs[keys.index("b/b3")] = [0.9, 0.005, 0.095]  # sounds like a, less than a's own do
    monkeypatch.setattr(label_issues, "embed_tracks",
                        lambda files, folder, progress, backbone_file: (
                            {k: np.arange(4.0) * i for i, k in enumerate(files)}, {}))
    monkeypatch.setattr(label_issues, "out_of_fold", lambda x, y, groups: probs)
    found = label_issues.find_label_issues(tracks, {k: tmp_path / k for k in keys}, {},
                                           tmp_path, progress=False)
    assert found.issues == [{"key": "b/b3", "class": "b", "sounds_like": "a",
                             "p_class": 0.005, "p_sounds_like": 0.9}]


def test_a_small_class_with_a_few_exceptions_is_a_shortcut_by_its_counts():
    """10 of the 11 jazz tracks are 44.1 kHz stereo (one reggae clip moved in), none of the
    92 others is: the rule on the counts names it, with them; a value spread over classes
    is not named."""
    from slapp.stages.audit.shortcuts import categorical

    tracks = {f"jazz/{i}": {"class": "jazz", "source": "44100 Hz stereo"} for i in range(10)}
    tracks["jazz/moved"] = {"class": "jazz", "source": "22050 Hz mono"}
    for c in range(9):
        for i in range(92 // 9 + (c < 92 % 9)):
            tracks[f"c{c}/{i}"] = {"class": f"c{c}", "source": "22050 Hz mono"}
    assert sum(t["class"] != "jazz" for t in tracks.values()) == 92
    lines = categorical(tracks, "source", "sample rate and channels")
    assert len(lines) == 1
    assert lines[0].startswith("jazz: 10 of 11 jazz tracks are 44100 Hz stereo; no other "
                               "track is (p = ")
    assert lines[0].endswith("a model can tell jazz by its sample rate and channels")
    for i in range(0, 92, 10):  # the same value in every class now: no shortcut
        tracks[f"c{i % 9}/{i // 9}"]["source"] = "44100 Hz stereo"
    assert categorical(tracks, "source", "sample rate and channels") == []


def test_with_musicnn_the_audit_reads_and_makes_stage_2s_embeddings(tmp_path, capsys):
    """One embedding per track: the audit embeds through stage 2's path into stage 2's
    folder, keeps no cache of its own, and stage 2 then has nothing left to embed."""
    import audit_dataset

    from conftest import make_dataset, run_stages

    music = make_dataset(tmp_path / "music")
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "musicnn-msd"})
    run_stages(params, "build")
    assert audit_dataset.main(["--params", str(params), "--quiet"]) == 0
    stage2 = tmp_path / "out" / "embeddings" / "musicnn-msd"
    made = {p: p.stat().st_mtime_ns for p in stage2.rglob("*.npz")}
    assert len(made) == 12
    assert not list((tmp_path / "out" / "audit").rglob("*.npy"))
    run_stages(params, "process")
    assert {p: p.stat().st_mtime_ns for p in stage2.rglob("*.npz")} == made
