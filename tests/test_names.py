"""A file name is data: names with line breaks and control characters cannot add lines to
a playlist, a CSV, the terminal, a log line, the page or the journal."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import ROOT, tone, write_audio

EVIL = ["a\nevil.mp3", "b\n#EXTINF:1,x\nevil2.mp3", "plain.mp3"]


@pytest.fixture(scope="module")
def labelled(trained, tmp_path_factory):
    """A labelled run over three tracks (two with line breaks in their names) and one
    non-audio file whose name holds an escape sequence; every output asked for."""
    root, params = trained
    tmp = tmp_path_factory.mktemp("names")
    music = tmp / "music" / "bass"
    for i, name in enumerate(EVIL):
        write_audio(music / name, tone(3.0, sr=22050, freq=110.0, seed=i), 22050)
    (music / "c\x1b[31m\nbad.mp3").write_text("not audio")
    out = tmp / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "predict_track.py", "--params", str(params), str(tmp / "music"),
         "--output", str(out / "labels.csv"), "--playlists", str(out / "lists"),
         "--report", str(out / "page.html"), "--write-tags", "--apply", "--tags-journal",
         str(out / "journal.json"), "--min-confidence", "0"],
        capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 3, done.stderr  # the non-audio file failed, the rest labelled
    return tmp, out, done


def test_playlists_hold_one_entry_per_track_and_every_entry_is_a_track(labelled):
    tmp, out, _ = labelled
    entries = []
    for playlist in (out / "lists").glob("*.m3u8"):
        if playlist.stem == "check-these":
            continue
        for line in playlist.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            path = (Path(unquote(urlparse(line).path)) if line.startswith("file://")
                    else (playlist.parent / line).resolve())
            assert path.is_file(), f"{playlist.name}: {line!r} is no track of the input"
            entries.append(path.name)
    assert sorted(entries) == sorted(EVIL)


def test_the_csv_reads_back_the_real_names(labelled):
    tmp, out, _ = labelled
    rows = list(csv.DictReader((out / "labels.csv").open(encoding="utf-8", newline="")))
    names = sorted({Path(r["path"]).name for r in rows if r["label"]})  # rows per snippet
    assert names == sorted(EVIL)


def test_the_terminal_and_the_log_get_one_line_per_track_with_escapes(labelled):
    _, _, done = labelled
    lines = done.stdout.splitlines()
    for escaped in ("a\\nevil.mp3", "b\\n#EXTINF:1,x\\nevil2.mp3"):
        rows = [line for line in lines if escaped in line]
        assert len(rows) == 2, rows  # its table row and its tag line, one line each
    assert not any(line.startswith(("evil", "#EXTINF")) for line in lines)
    errors = [line for line in done.stderr.splitlines() if "bad.mp3" in line]
    assert len(errors) == 1 and "c\\x1b[31m\\nbad.mp3" in errors[0]
    assert "\x1b" not in done.stdout + done.stderr  # no escape sequence reaches the terminal


def test_the_page_and_the_journal_keep_the_names_as_data(labelled):
    tmp, out, _ = labelled
    page = (out / "page.html").read_text(encoding="utf-8")
    payload = re.search(r'<script type="application/json" id="data">(.*?)</script>', page,
                        re.S).group(1)
    names = sorted(Path(t["path"]).name for t in json.loads(payload)["tracks"]
                   if not t["error"])
    assert names == sorted(EVIL)
    journal = json.loads((out / "journal.json").read_text(encoding="utf-8"))
    written = sorted(Path(e["path"]).name for e in journal["files"])
    assert written == sorted(EVIL)
