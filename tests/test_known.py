"""``known`` and ``none``: a track unlike every trained class is labelled ``none``; the
threshold the bundle stores is the one used; ``--none-below 0`` turns it off."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import make_dataset, run_stages, write_audio, write_params
from slapp.models import known

needs_musicnn = pytest.mark.skipif(
    __import__("importlib").util.find_spec("musicnn") is None,
    reason="musicnn weights not installed (pip install --no-deps musicnn==0.1.0)")


def test_calibration_leaves_each_artist_out():
    """Two near-copies by one artist do not vouch for each other: each is scored against
    the other artist's tracks."""
    ref = known.track_vectors([np.array([[1.0, 0.0]]), np.array([[0.99, 0.1]]),
                               np.array([[0.0, 1.0]])])
    cal = known.calibrate(ref, ["A", "a", "B"], k=1)  # case-blind: A and a are one artist
    expected = np.sort([ref[0] @ ref[2], ref[1] @ ref[2], ref[2] @ ref[1]])
    np.testing.assert_allclose(cal, expected, atol=1e-6)


def test_known_is_the_share_of_the_calibration_reached():
    cal = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(known.known_scores(np.array([0.05, 0.2, 0.35, 0.9]), cal),
                               [0.0, 0.5, 0.75, 1.0])


def _noise(seconds: float, seed: int) -> np.ndarray:
    """A fourth, unlike style: clicks in noise (no pitch at all)."""
    rng = np.random.default_rng(seed)
    y = 0.2 * rng.standard_normal(int(seconds * 22050))
    y[:: 22050 // 8] = 0.9
    return y.astype(np.float32)[:, None]


def _rows(path):
    with open(path, newline="") as f:
        return {r["path"].split("/")[-1]: r for r in csv.DictReader(f)}


@needs_musicnn
def test_three_class_model_labels_a_fourth_style_none(tmp_path, capsys):
    import predict_track

    music = make_dataset(tmp_path / "music", per_class=5, seconds=4.0)
    params = write_params(tmp_path / "params.json", music, tmp_path / "out",
                          model={"backbone": "musicnn-msd"},
                          slicing={"max_snippets_per_track": 2},
                          training={"epochs": 20, "learning_rate": 0.01, "batch_size": 8})
    run_stages(params, "build", "process", "train")
    bundle = json.loads((tmp_path / "out" / "model" / "bundle.json").read_text())
    assert bundle["known"]["method"] == "knn-cosine"
    assert bundle["known"]["threshold"] == 0.2  # training.none_below's default

    new = tmp_path / "new"
    for i in range(3):
        write_audio(new / f"clicks_{i}.wav", _noise(4.0, seed=i), 22050)
    unseen = make_dataset(tmp_path / "unseen", per_class=1, seconds=4.5)
    for p in unseen.rglob("*.wav"):
        p.rename(new / f"tone_{p.name}")
    out = tmp_path / "labels.csv"
    assert predict_track.main(["--params", str(params), str(new), "--output", str(out),
                               "--quiet"]) == 0
    rows = _rows(out)
    assert [rows[f"clicks_{i}.wav"]["label"] for i in range(3)] == ["none"] * 3
    assert all(float(rows[f"clicks_{i}.wav"]["known"]) < 0.2 for i in range(3))
    assert rows["clicks_0.wav"]["guess"] in ("bass", "mid", "treble")
    tones = [r for name, r in rows.items() if name.startswith("tone_")]
    assert len(tones) == 3 and all(r["label"] != "none" for r in tones)
    assert "3 track(s) labelled none" in capsys.readouterr().out

    # --none-below 0: every track gets a class again
    assert predict_track.main(["--params", str(params), str(new), "--output", str(out),
                               "--none-below", "0", "--quiet"]) == 0
    assert all(r["label"] in ("bass", "mid", "treble") for r in _rows(out).values())

    # the threshold stored in the bundle is the one used
    info = tmp_path / "out" / "model" / "bundle.json"
    bundle["known"]["threshold"] = 0.0
    info.write_text(json.dumps(bundle))
    assert predict_track.main(["--params", str(params), str(new), "--output", str(out),
                               "--quiet"]) == 0
    assert all(r["label"] != "none" for r in _rows(out).values())


def test_none_below_out_of_range_is_one_line(trained, capsys):
    import predict_track

    root, params = trained
    assert predict_track.main(["--params", str(params), str(root / "music"),
                               "--none-below", "2"]) == 1
    assert "The --none-below value must be a number from 0 to 1" in capsys.readouterr().err
