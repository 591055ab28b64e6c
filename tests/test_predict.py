"""Stage 4: labelling tracks with a bundle; outputs, bad inputs, resume."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest

from conftest import TINY, tone, write_audio, write_params
from slapp.dsp.slicing import track_starts


def _predict(trained, *args, tmp_path=None):
    import predict_track

    root, params = trained
    return predict_track.main(["--params", str(params), "--quiet", *map(str, args)])


def test_track_starts_cover_the_whole_track():
    starts = track_starts(100, snippet_samples=30, hop_samples=20)
    assert list(starts) == [0, 20, 40, 60, 70]  # the last one ends at sample 100
    assert list(track_starts(20, snippet_samples=30, hop_samples=10)) == [0]
    assert list(track_starts(50, snippet_samples=30, hop_samples=10)) == [0, 10, 20]


def test_labels_files_and_folders_with_csv_json_and_timeline(trained, tmp_path, capsys):
    root, _ = trained
    music = root / "music"
    out_csv, out_json = tmp_path / "labels.csv", tmp_path / "labels.json"
    assert _predict(trained, music / "treble", music / "bass" / "bass_0.wav",
                    "--output", out_csv) == 0
    table = capsys.readouterr().out
    assert "treble_0.wav" in table and "labelled 7 track(s), failed 0" in table
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 7
    assert set(rows[0]) >= {"path", "label", "confidence", "bass", "mid", "treble"}
    scores = [float(rows[0][c]) for c in ("bass", "mid", "treble")]
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)
    assert not (tmp_path / "labels.csv.partial.jsonl").exists()

    assert _predict(trained, music / "mid" / "mid_1.wav", "--output", out_json,
                    "--timeline", "--aggregate", "vote", "--hop", "0.25") == 0
    data = json.loads(out_json.read_text())
    track = data["tracks"][0]
    assert data["classes"] == ["bass", "mid", "treble"]
    starts = [row["start"] for row in track["timeline"]]
    # 3.25 s at hop 0.25 with 1 s snippets: 0, 0.25 ... 2.25, plus one ending at 3.25 —
    # each moved back to a whole 128-sample frame at 8 kHz (0.25 s -> 15 frames = 0.24 s)
    assert starts[:3] == [0.0, 0.24, 0.496] and starts[-1] == pytest.approx(2.24)
    assert track["snippets"] == len(starts)


def test_plot_draws_a_png_per_track(trained, tmp_path):
    root, _ = trained
    assert _predict(trained, root / "music" / "mid", "--plot", tmp_path / "plots") == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == [f"mid_{i}.png" for i in range(6)]
    assert (tmp_path / "plots" / "mid_0.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_compares_labels_with_class_folders(trained, tmp_path, capsys):
    """--evaluate: the accuracy line counts exactly the tracks whose label is their
    folder's name; a track in a folder that is no class is listed as not evaluated; with
    --plot the confusion matrix is drawn and the closing lines point at it."""
    root, _ = trained
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(root / "music" / "mid" / "mid_0.wav", other / "stray.wav")
    out = tmp_path / "labels.json"
    assert _predict(trained, root / "music", other, "--evaluate", "--plot", tmp_path / "p",
                    "--output", out) == 0
    text = capsys.readouterr().out
    tracks = json.loads(out.read_text())["tracks"]
    right = sum(t["label"] == os.path.basename(os.path.dirname(t["path"])) for t in tracks)
    assert f"evaluated against folder names: {right} of 18 right ({right / 18:.2f})" in text
    assert ("  the training tracks had no artist tags: if a class was mostly one artist, "
            "this figure flatters; expect less on new music") in text
    assert "not evaluated (1): failed, or the folder is not a class" in text
    assert f"look at: {tmp_path / 'p' / 'confusion.png'}: confusion matrix" in text
    assert (tmp_path / "p" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "next:" not in text  # not trained on the demo


def test_bad_inputs_are_reported_and_the_run_goes_on(trained, tmp_path, capsys):
    root, _ = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp3").write_bytes(b"")
    (bad / "notes.wav").write_text("not audio at all")
    write_audio(bad / "short.wav", tone(0.2, sr=16000), 16000)
    write_audio(bad / "silent.flac", np.zeros((32000, 1), np.float32), 16000)
    os.symlink("loop2.mp3", bad / "loop1.mp3")  # a link with no end (it crashed predict)
    os.symlink("loop1.mp3", bad / "loop2.mp3")
    good = root / "music" / "bass" / "bass_1.wav"
    code = _predict(trained, bad, good, tmp_path / "missing.mp3", "--output",
                    tmp_path / "o.csv")
    assert code == 3
    out = capsys.readouterr().out
    assert ("loop1.mp3  FAILED: a symbolic link that loops back on itself (no file at its "
            "end): fix or remove the link") in out
    assert "empty.mp3  FAILED: empty file (0 bytes)" in out
    assert "notes.wav  FAILED: not a readable audio file" in out
    assert "short.wav  FAILED: too short: 0.20 s of audio, expected at least 0.5 s" in out
    assert "silent.flac  FAILED: silent: peak level -inf dBFS" in out
    assert "missing.mp3  FAILED: not found" in out
    assert "labelled 1 track(s), failed 7" in out
    rows = {os.path.basename(r["path"]): r for r in csv.DictReader((tmp_path / "o.csv").open())}
    assert rows["bass_1.wav"]["label"] and not rows["bass_1.wav"]["error"]
    assert rows["empty.mp3"]["error"] == "empty file (0 bytes)"


def test_long_stereo_44k_mp3_is_labelled(trained, tmp_path, capsys):
    y = tone(75.0, sr=44100, freq=1760.0, channels=2)
    path = write_audio(tmp_path / "long track.mp3", y, 44100)
    assert _predict(trained, path, "--output", tmp_path / "o.json") == 0
    track = json.loads((tmp_path / "o.json").read_text())["tracks"][0]
    assert track["seconds"] == pytest.approx(75.0, abs=0.1)
    # the bundle's hop (1 s snippets, 0.5 s overlap): 0, 0.5 ... 74 s, the last ending at 75 s
    assert track["snippets"] == 149


def test_incomplete_or_missing_bundle_is_one_clear_error(trained, tmp_path, capsys):
    root, _ = trained
    import predict_track

    code = predict_track.main(["--model", str(tmp_path / "nope"), str(root / "music")])
    assert code == 1
    assert "error: Model bundle" in capsys.readouterr().err
    broken = tmp_path / "model"
    shutil.copytree(root / "out" / "model", broken)
    (broken / "bundle.json").unlink()
    assert predict_track.main(["--model", str(broken), str(root / "music")]) == 1
    assert "is incomplete (no bundle.json)" in capsys.readouterr().err
    shutil.copytree(root / "out" / "model", broken, dirs_exist_ok=True)
    info = json.loads((broken / "bundle.json").read_text())
    info["bundle_version"] = 99
    (broken / "bundle.json").write_text(json.dumps(info))
    assert predict_track.main(["--model", str(broken), str(root / "music")]) == 1
    assert "has format version 99" in capsys.readouterr().err


def test_bundle_settings_win_over_the_parameters_file(trained, tmp_path, capsys, caplog):
    root, _ = trained
    other = write_params(tmp_path / "other.json", root / "music", root / "out", **TINY,
                         features={"n_fft": 256, "hop_length": 128, "n_mels": 20})
    import predict_track

    reference = tmp_path / "ref.json"
    assert _predict(trained, root / "music" / "mid", "--output", reference) == 0
    changed = tmp_path / "changed.json"
    assert predict_track.main(["--params", str(other), str(root / "music" / "mid"),
                               "--output", str(changed)]) == 0
    assert "using the bundle's" in capsys.readouterr().err
    a = json.loads(reference.read_text())["tracks"]
    b = json.loads(changed.read_text())["tracks"]
    assert [t["scores"] for t in a] == [t["scores"] for t in b]


def test_interrupted_run_with_an_output_file_resumes(trained, tmp_path, capsys):
    root, _ = trained
    out = tmp_path / "o.json"
    assert _predict(trained, root / "music" / "mid", "--output", out) == 0
    full = json.loads(out.read_text())
    out.unlink()
    # what an interrupted run leaves: the header, two finished tracks, a torn line
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.outputs import partial_path, run_signature
    from slapp.stages.label.predict import PredictOptions

    part = partial_path(out)
    bundle = load_bundle(root / "out" / "model")
    header = {"signature": run_signature(bundle.info, PredictOptions().signature())}
    rows = [dict(t, notes=t["notes"], timeline=None) for t in full["tracks"][:2]]
    rows[0]["label"] = "treble"  # so we can tell it was reused, not recomputed
    part.write_text("\n".join(json.dumps(r) for r in [header, *rows]) + '\n{"path": "x')
    capsys.readouterr()
    assert _predict(trained, root / "music" / "mid", "--output", out) == 0
    assert "(2 from the interrupted run)" in capsys.readouterr().out
    again = json.loads(out.read_text())["tracks"]
    assert again[0]["label"] == "treble"
    assert [t["scores"] for t in again[1:]] == [t["scores"] for t in full["tracks"][1:]]
    assert not part.exists()


def test_long_tracks_are_scored_chunk_by_chunk_with_the_same_result(trained, tmp_path,
                                                                    monkeypatch):
    """A long track is featurised and scored a chunk of snippets at a time (memory stays
    small); the scores and timeline are those of one pass."""
    import slapp.stages.label.predict as predict
    from slapp.stages.train.bundle import load_bundle

    root, _ = trained
    bundle = load_bundle(root / "out" / "model")
    track = write_audio(tmp_path / "long.wav", tone(9.0, sr=22050, seed=7), 22050)
    options = predict.PredictOptions(hop_seconds=0.25, timeline=True)
    whole = predict.predict_tracks([str(track)], bundle, options, progress=False).results[0]
    import slapp.stages.label.predictor as predictor

    monkeypatch.setattr(predictor, "CHUNK_SNIPPETS", 5)
    small = predict.PredictOptions(hop_seconds=0.25, timeline=True, batch_size=5)
    assert predict.Predictor(bundle, small).chunk == 5  # 7 chunks of 5 snippets
    chunked = predict.predict_tracks([str(track)], bundle, small,
                                     progress=False).results[0]
    assert whole.snippets == chunked.snippets == 33  # (9 - 1) / 0.25 + 1
    assert [r["start"] for r in chunked.timeline] == [r["start"] for r in whole.timeline]
    np.testing.assert_allclose([list(r["scores"].values()) for r in chunked.timeline],
                               [list(r["scores"].values()) for r in whole.timeline],
                               atol=1e-6)
    assert chunked.scores == pytest.approx(whole.scores, abs=1e-6)



@pytest.mark.parametrize("streamed", [False, True])
def test_max_snippets_scores_an_even_subset_of_the_same_snippets(trained, tmp_path,
                                                                 monkeypatch, streamed):
    """--max-snippets N: N snippets spread from the first to the last, each scored as in
    a run over every snippet (also when the track is decoded as a stream)."""
    import slapp.stages.label.predict as predict
    from slapp.stages.build import stream
    from slapp.stages.train.bundle import load_bundle

    if streamed:
        monkeypatch.setattr(stream, "STREAM_SECONDS", 5)
    root, _ = trained
    bundle = load_bundle(root / "out" / "model")
    track = write_audio(tmp_path / "long.wav", tone(9.0, sr=22050, seed=7), 22050)
    every = predict.predict_tracks([str(track)], bundle, predict.PredictOptions(
        hop_seconds=0.25, timeline=True, max_snippets=0), progress=False).results[0]
    capped = predict.predict_tracks([str(track)], bundle, predict.PredictOptions(
        hop_seconds=0.25, timeline=True, max_snippets=5), progress=False).results[0]
    assert (every.snippets, capped.snippets) == (33, 5)
    starts = [r["start"] for r in every.timeline]
    assert [r["start"] for r in capped.timeline] == [starts[i] for i in (0, 8, 16, 24, 32)]
    rows = {r["start"]: list(r["scores"].values()) for r in every.timeline}
    np.testing.assert_allclose([list(r["scores"].values()) for r in capped.timeline],
                               [rows[r["start"]] for r in capped.timeline], atol=1e-6)


def test_every_snippet_is_scored_by_default_and_the_cap_is_validated(trained, tmp_path):
    """The method sums the scores of every snippet: no cap unless --max-snippets asks."""
    import slapp.stages.label.predict as predict
    from slapp.errors import StageError
    from slapp.stages.train.bundle import load_bundle

    bundle = load_bundle(trained[0] / "out" / "model")
    track = write_audio(tmp_path / "long.wav", tone(40.0, sr=22050, seed=3), 22050)
    default = predict.predict_tracks([str(track)], bundle, progress=False).results[0]
    # 1 s snippets every 0.5 s (the bundle's hop) over 40 s: starts 0, 0.5, ..., 39 s
    assert default.snippets == 79
    assert predict.Predictor(bundle, predict.PredictOptions(max_snippets=3)).max_snippets == 3
    with pytest.raises(StageError, match=r"--max-snippets value must be a whole number "
                                         r">= 0 \(0: every snippet\). Got -1 instead"):
        predict.PredictOptions(max_snippets=-1)

FREED = r"""
import ctypes, sys
from slapp import cli
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt(-1, 64 << 20)  # a trim threshold grown to 64 MB, as glibc's grows after big frees
if sys.argv[1] == "tuned":
    cli.return_freed_memory()
def anon_mb():
    line = [l for l in open("/proc/self/status") if l.startswith("RssAnon")][0]
    return int(line.split()[1]) / 1024
before = anon_mb()
blocks = [libc.malloc(100 << 10) for _ in range(250)]  # heap blocks, under mmap's threshold
for b in blocks:
    ctypes.memset(b, 1, 100 << 10)
for b in reversed(blocks):
    libc.free(b)
print(anon_mb() - before)
"""


def test_the_scripts_give_freed_memory_back_to_the_system(monkeypatch):
    import platform
    import subprocess
    import sys

    from slapp import cli

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    kept = {mode: float(subprocess.run([sys.executable, "-c", FREED, mode], check=True,
                                       capture_output=True, text=True).stdout)
            for mode in ("default", "tuned")}
    assert kept["default"] > 20 and kept["tuned"] < 3  # 25 MB freed: kept vs given back
    monkeypatch.setattr("ctypes.util.find_library", lambda name: "libnot-a-libc.so.9")
    assert cli.return_freed_memory() is False  # no such C library: said, not raised


def test_a_bundle_without_its_training_artists_says_the_figure_may_flatter():
    from slapp.stages.label.outputs import artists_note

    assert artists_note(None) == (
        "the bundle does not record its training artists (trained by an older slapp): if "
        "these tracks' artists were in training, this figure flatters")
    assert artists_note({"heard": {"count": 0, "right": 0},
                         "unheard": {"count": 5, "right": 4}}) == (
        "all 5 tracks are by artists not in training (or untagged): the figure to expect "
        "on new music")
