"""The synthetic demo collection: deterministic, one folder per style, real MP3s."""

from __future__ import annotations

import numpy as np

from slapp.dsp.audio import decode
from slapp.demo import SAMPLE_RATE, SECONDS, STYLES, make_demo, synthesize


def test_synthesis_is_deterministic_and_styles_differ():
    a, b = synthesize("funk", 3), synthesize("funk", 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:SAMPLE_RATE * 5], synthesize("funk", 4)[:SAMPLE_RATE * 5])
    for style in STYLES:
        y = synthesize(style, 1)
        assert SECONDS[0] <= len(y) / SAMPLE_RATE <= SECONDS[1]
        assert 0.5 < np.max(np.abs(y)) <= 0.9 and np.isfinite(y).all()


def test_make_demo_writes_mp3s_and_keeps_existing_files(tmp_path):
    counts = make_demo(tmp_path, per_style=1, unseen_per_style=1)
    assert counts == {"written": 10, "kept": 0, "total": 10}
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.mp3"))
    assert files[:5] == [f"labelled/{s}/{s}_00.mp3" for s in sorted(STYLES)]
    decoded = decode(tmp_path / "labelled" / "rock" / "rock_00.mp3", sample_rate=SAMPLE_RATE)
    assert abs(len(decoded.y) / SAMPLE_RATE - len(synthesize("rock", 0)) / SAMPLE_RATE) < 0.2
    assert files[5:] == [f"unseen/{s}/{s}_unseen_0.mp3" for s in sorted(STYLES)]
    assert make_demo(tmp_path, per_style=1, unseen_per_style=1)["kept"] == 10


def test_styles_overlap_some_tracks_borrow_a_neighbours_layer(monkeypatch):
    """The demo is meant to be learnable but not trivial: about half the tracks (each of
    3 layers borrowed with probability 0.2) change when borrowing is switched off."""
    import slapp.demo as demo

    seeds = range(12)
    with_borrowing = [synthesize("funk", s) for s in seeds]
    monkeypatch.setattr(demo, "BORROW_PROBABILITY", 0.0)
    without = [synthesize("funk", s) for s in seeds]
    changed = sum(not np.array_equal(a, b) for a, b in zip(with_borrowing, without))
    assert 3 <= changed <= 9  # 1 - 0.8**3 = 0.49 of them on average


def test_four_scripts_as_subprocesses_label_unseen_demo_tracks_well_above_chance(tmp_path):
    """What a user runs, as they run it: the demo collection, then the four scripts in
    order as separate processes; the unseen tracks (never trained on) come out mostly
    right — 5 styles, so chance is 1 in 5."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, write_params

    make_demo(tmp_path / "demo", per_style=6, unseen_per_style=1)
    params = write_params(
        tmp_path / "params.json", tmp_path / "demo" / "labelled", tmp_path / "out",
        audio={"sample_rate": 16000},
        slicing={"snippet_seconds": 2.0, "overlap_seconds": 0.5, "max_snippets_per_track": 8},
        features={"n_fft": 512, "hop_length": 256, "n_mels": 48},
        split={"val_share": 0.17, "test_share": 0.17, "seed": 1},
        model={"crnn": {"conv_filters": [8, 16, 16], "pool_sizes": [[2, 4], [2, 4], [2, 3]],
                        "recurrent_units": [16], "conv_dropout": 0.0,
                        "recurrent_dropout": 0.1}},
        training={"batch_size": 16, "epochs": 12, "learning_rate": 0.005,
                  "early_stopping_patience": 4})
    out = tmp_path / "labels.json"
    for script, *args in (("build_dataset.py",), ("process_dataset.py",),
                          ("train_crnn.py",),
                          ("predict_track.py", str(tmp_path / "demo" / "unseen"),
                           "--output", str(out))):
        proc = subprocess.run([sys.executable, str(ROOT / script), "--params", str(params),
                               "--quiet", *args], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, f"{script}: {proc.stderr[-2000:]}"
    tracks = json.loads(out.read_text())["tracks"]
    assert len(tracks) == len(STYLES)
    right = [t["path"] for t in tracks if f"/{t['label']}_unseen_" in t["path"]]
    assert len(right) >= 3, [(t["path"], t["label"]) for t in tracks]
