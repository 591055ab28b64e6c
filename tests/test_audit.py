"""The collection audit: planted duplicates (re-encoded, resampled, trimmed and offset,
quieter) are found with their kind and the split leak; a class whose encoding differs is
named as a shortcut; one-artist classes are warned; nothing false on clean music."""

from __future__ import annotations

import json
import subprocess

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
    assert any(s.startswith("techno: 5 of 5 files are 16000 Hz mono") and
               "a model can tell techno by its encoding" in s for s in audit["shortcuts"])
    assert "duplicates: 2 group(s)" in out
    png = (tmp_path / "out" / "audit_map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and f"written: {tmp_path / 'out' / 'audit_map.png'}" in out
    rows = (tmp_path / "out" / "audit.csv").read_text().splitlines()
    assert rows[0].startswith("key,class,split,artist,encoding") and len(rows) == 18
