"""The beets plug-in against a real beets library: import, `beet slapp`, the fields and the
files' tags, a second run doing nothing, --pretend, min_confidence, --undo, the import hook
and bad input (beets from the registry, a temporary library and config, no network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, tone, write_audio

BEET = Path(sys.executable).parent / "beet"
FREQS = {"low": 110.0, "middle": 440.0, "high": 1760.0}


def genre_of(path: Path):
    import mutagen

    return mutagen.File(path, easy=True).get("genre")


class Beets:
    """A temporary beets set-up: its config folder, library and music."""

    def __init__(self, tmp: Path, bundle: Path, **slapp):
        self.music = tmp / "music"
        self.files = {name: write_audio(self.music / f"{name}.mp3",
                                        tone(4.0, sr=22050, freq=f, seed=i), 22050)
                      for i, (name, f) in enumerate(FREQS.items())}
        import mutagen

        first = mutagen.File(self.files["low"], easy=True)
        first["genre"] = ["Jazz"]
        first.save()
        self.home = tmp / "beets"
        self.home.mkdir()
        options = "\n".join(f"  {k}: {v}" for k, v in {"model": bundle, **slapp}.items())
        (self.home / "config.yaml").write_text(
            f"directory: {tmp / 'lib'}\nlibrary: {tmp / 'lib.db'}\n"
            "import:\n  copy: no\n  write: yes\n  quiet: yes\n"
            f"plugins: slapp\nslapp:\n{options}\n")
        self.pcm = {n: sf.read(str(p))[0] for n, p in self.files.items()}

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "BEETSDIR": str(self.home), "PYTHONPATH": str(ROOT)}
        return subprocess.run([str(BEET), *args], capture_output=True, text=True, env=env,
                              timeout=300)

    def fields(self, fmt: str) -> dict[str, str]:
        out = self("ls", "-f", f"$path|{fmt}").stdout.splitlines()
        return {Path(line.split("|")[0]).stem: line.split("|", 1)[1] for line in out}


@pytest.fixture
def beets(trained, tmp_path):
    root, _ = trained
    setup = Beets(tmp_path, root / "out" / "model", min_confidence=0.0)
    assert setup("import", "-A", str(setup.music)).returncode == 0
    return setup


def test_beet_slapp_labels_writes_tags_and_a_second_run_does_nothing(beets, trained):
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import predict_tracks

    done = beets("slapp")
    assert done.returncode == 0, done.stderr
    assert "3 item(s) to label, 0 already labelled" in done.stderr
    rows = beets.fields("$genres|$slapp_confidence|$slapp_model|$slapp_previous")
    bundle = load_bundle(trained[0] / "out" / "model")
    expected = predict_tracks([str(p) for p in beets.files.values()], bundle,
                              progress=False).results
    for (name, path), result in zip(beets.files.items(), expected):
        genres, confidence, model, previous = rows[name].split("|")
        assert genres == result.label and genre_of(path) == [result.label]
        assert float(confidence) == pytest.approx(result.confidence, abs=0.06)
        assert len(model) == 12 and previous == ("Jazz" if name == "low" else "")
        np.testing.assert_array_equal(sf.read(str(path))[0], beets.pcm[name])  # audio kept
    again = beets("slapp")
    assert again.returncode == 0
    assert "0 item(s) to label, 3 already labelled by bundle" in again.stderr
    forced = beets("slapp", "--force")
    assert "3 item(s) to label, 0 already labelled" in forced.stderr


def test_pretend_changes_nothing_and_undo_puts_back_all_but_the_users_edit(beets):
    before = beets.fields("$genres")
    pretend = beets("slapp", "--pretend")
    assert pretend.returncode == 0 and "would set Jazz -> " in pretend.stderr
    assert beets.fields("$genres") == before and genre_of(beets.files["low"]) == ["Jazz"]
    assert beets("slapp").returncode == 0
    assert beets("modify", "-y", "genres=Mine", f"path:{beets.files['high']}").returncode == 0
    undo = beets("slapp", "--undo")
    assert undo.returncode == 0, undo.stderr
    assert "genres is 'Mine', not slapp's" in undo.stderr
    assert "undone 2 item(s), left 1 changed since" in undo.stderr
    assert genre_of(beets.files["low"]) == ["Jazz"] and genre_of(beets.files["middle"]) is None
    assert genre_of(beets.files["high"]) == ["Mine"]
    assert beets.fields("$slapp_model")["low"] == "$slapp_model"  # the fields are gone


def test_below_min_confidence_items_are_left_and_can_be_queried(trained, tmp_path):
    setup = Beets(tmp_path, trained[0] / "out" / "model", min_confidence=1.0)
    assert setup("import", "-A", str(setup.music)).returncode == 0
    done = setup("slapp")
    assert "changed 0 item(s), 3 below min_confidence (beet ls slapp_check:1)" in done.stderr
    assert len(setup("ls", "slapp_check:1").stdout.splitlines()) == 3
    assert genre_of(setup.files["low"]) == ["Jazz"] and genre_of(setup.files["middle"]) is None


def test_the_import_hook_labels_new_items(trained, tmp_path):
    setup = Beets(tmp_path, trained[0] / "out" / "model", min_confidence=0.0, auto="yes")
    done = setup("import", "-A", str(setup.music))
    assert done.returncode == 0, done.stderr
    rows = setup.fields("$genres|$slapp_model")
    assert len(rows) == 3
    for name, row in rows.items():
        genres, model = row.split("|")
        assert genres in ("bass", "mid", "treble") and len(model) == 12
        assert genre_of(setup.files[name]) == [genres]


def test_bad_input_is_one_line_and_the_other_items_go_on(beets, tmp_path):
    beets.files["middle"].unlink()  # gone since the import
    beets.files["high"].write_text("not audio any more")
    done = beets("slapp")
    assert done.returncode == 0
    errors = [line for line in done.stderr.splitlines() if "middle.mp3" in line
              or "high.mp3" in line]
    assert len(errors) == 2 and "not found" in errors[0] + errors[1]
    assert "changed 1 item(s), 0 below min_confidence" in done.stderr and "2 failed" in \
        done.stderr
    assert beets.fields("$slapp_model")["middle"] == "$slapp_model"  # left untouched
    (beets.home / "config.yaml").write_text((beets.home / "config.yaml").read_text().replace(
        "  model: ", f"  model: {tmp_path / 'nowhere'}  # "))
    missing = beets("slapp")
    assert missing.returncode == 1
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert lines == [f"error: slapp: Model bundle '{tmp_path / 'nowhere'}' not found. Expected "
                     "the folder train_crnn.py writes (paths.model_dir), or pass --model."]


def _min_confidence(setup: Beets, value: float) -> None:
    config = setup.home / "config.yaml"
    lines = [ln for ln in config.read_text().splitlines() if "min_confidence" not in ln]
    config.write_text("\n".join(lines) + f"\n  min_confidence: {value}\n")


@pytest.mark.parametrize("first,second", [(0.999, 0.0), (0.0, 0.999)])
def test_undo_puts_back_the_users_genre_whatever_slapp_did_between(beets, first, second):
    """Unsure then labelled, or labelled then unsure: --undo gives back 'Jazz' (the
    value before slapp's first write), in the database and in the file."""
    _min_confidence(beets, first)
    assert beets("slapp").returncode == 0
    _min_confidence(beets, second)
    assert beets("slapp", "-f").returncode == 0
    labelled = beets.fields("$genres")["low"]
    assert labelled != "Jazz"  # slapp's label is in the field now
    pretend = beets("slapp", "-u", "--pretend")
    assert f"would put back {labelled} -> Jazz" in pretend.stderr, pretend.stderr
    assert beets.fields("$genres")["low"] == labelled
    undo = beets("slapp", "-u")
    assert undo.returncode == 0, undo.stderr
    assert beets.fields("$genres")["low"] == "Jazz" and genre_of(beets.files["low"]) == ["Jazz"]
    assert beets.fields("$slapp_previous")["low"] == "$slapp_previous"
