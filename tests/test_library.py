"""Labels into the library: genre tags written, read back (mutagen and ffmpeg) and undone
exactly, with the audio untouched, for MP3, FLAC, Ogg Vorbis, Opus and M4A; playlists a
player can follow; the HTML page's structure."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import tone, write_audio
from slapp.stages.label.outputs import PredictReport, TrackResult
from slapp.stages.deliver.tags import apply_tags, plan_tags, undo_tags

FORMATS = [".mp3", ".flac", ".ogg", ".opus", ".m4a"]


def _ffmpeg(*args) -> bytes:
    import imageio_ffmpeg

    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y",
                           *args], check=True, capture_output=True).stdout


def make_file(path: Path, *, genre: str | None = None, seed: int = 0) -> Path:
    import mutagen
    import soundfile as sf

    y = tone(2.0, sr=48000, seed=seed)
    if path.suffix == ".m4a":
        wav = write_audio(path.with_suffix(".wav"), y, 48000)
        _ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "96k", str(path))
        wav.unlink()
    elif path.suffix == ".opus":
        sf.write(str(path), y, 48000, format="OGG", subtype="OPUS")
    elif path.suffix == ".ogg":
        sf.write(str(path), y, 48000, format="OGG", subtype="VORBIS")
    else:
        write_audio(path, y, 48000)
    f = mutagen.File(path, easy=True)
    if f.tags is None:
        f.add_tags()
    f["artist"] = "Somebody"
    if genre:
        f["genre"] = genre
    f.save()
    return path


def genre_of(path: Path):
    import mutagen

    tags = mutagen.File(path, easy=True).tags
    return tags.get("genre") if tags is not None else None


def ffmpeg_genre(path: Path) -> str | None:
    """The genre as ffmpeg reads it (container or stream metadata, as ffprobe shows it:
    the imageio-ffmpeg wheel ships ffmpeg without ffprobe)."""
    import re

    import imageio_ffmpeg

    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True).stderr.decode("utf-8", "replace")
    found = re.findall(r"^\s+genre\s*:\s*(.*?)\s*$", err, flags=re.M | re.I)
    return found[0] if found else None


def pcm(path: Path) -> np.ndarray:
    from slapp.dsp.audio import decode

    return decode(path, sample_rate=48000).y


def audio_bytes(path: Path) -> bytes:
    """The bytes of the audio frames: an MP3 without its ID3v2/ID3v1 tags, a FLAC after
    its metadata blocks; other containers interleave tags and pages (compared decoded)."""
    data = path.read_bytes()
    if path.suffix == ".mp3":
        if data[:3] == b"ID3":
            data = data[10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]):]
        return data[:-128] if data[-128:-125] == b"TAG" else data
    if path.suffix == ".flac":
        i, last = 4, False
        while not last:
            last = bool(data[i] & 0x80)
            i += 4 + int.from_bytes(data[i + 1:i + 4], "big")
        return data[i:]
    return b""


def result(path: Path, label: str, confidence: float, notes=()) -> TrackResult:
    return TrackResult(path=str(path), label=label, confidence=confidence,
                       scores={label: confidence, "other": 1 - confidence}, seconds=2.0,
                       snippets=1, notes=list(notes))


@pytest.mark.parametrize("ext", FORMATS)
def test_genre_tags_are_written_read_back_and_undone_with_the_audio_untouched(tmp_path,
                                                                              ext):
    tagged = make_file(tmp_path / f"had_genre{ext}", genre="Jazz", seed=1)
    bare = make_file(tmp_path / f"no_genre{ext}", seed=2)
    os.chmod(bare, 0o640)
    os.utime(tagged, (1_600_000_000, 1_600_000_000))
    before = {p: (pcm(p), audio_bytes(p), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
              for p in (tagged, bare)}
    plan = plan_tags([result(tagged, "blues", 0.9), result(bare, "rock", 0.8)],
                     min_confidence=0.5)
    assert [(c.old.get("genre"), c.new["genre"]) for c in plan] == [
        (["Jazz"], ["blues"]), (None, ["rock"])]
    assert genre_of(tagged) == ["Jazz"]  # planning writes nothing
    journal = tmp_path / "journal.json"
    assert apply_tags(plan, journal) == (2, [])
    assert genre_of(tagged) == ["blues"] and genre_of(bare) == ["rock"]
    assert ffmpeg_genre(tagged) == "blues" and ffmpeg_genre(bare) == "rock"
    for path, (y, raw, mtime, mode) in before.items():
        np.testing.assert_array_equal(pcm(path), y)
        assert audio_bytes(path) == raw
        assert path.stat().st_mtime_ns == mtime and stat.S_IMODE(path.stat().st_mode) == mode
    assert [e["done"] for e in json.loads(journal.read_text())["files"]] == [True, True]
    undone = undo_tags(journal)
    assert (undone.restored, undone.left, undone.failed) == (2, [], [])
    assert genre_of(tagged) == ["Jazz"] and genre_of(bare) is None
    for path, (y, raw, mtime, _) in before.items():
        np.testing.assert_array_equal(pcm(path), y)
        assert audio_bytes(path) == raw and path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".*slapp-tmp*"))


def test_a_run_killed_halfway_leaves_whole_files_and_undo_or_rerun_finishes(tmp_path,
                                                                            monkeypatch):
    import slapp.stages.deliver.tags as tags

    files = [make_file(tmp_path / f"t{i}.mp3", genre="Pop", seed=i) for i in range(3)]
    plan = plan_tags([result(f, "metal", 0.9) for f in files], min_confidence=0.5)
    real, calls = tags._rewrite, []

    def killed_on_second(path, values, keys):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C / SIGTERM between two files
        real(path, values, keys)

    monkeypatch.setattr(tags, "_rewrite", killed_on_second)
    journal = tmp_path / "j.json"
    with pytest.raises(KeyboardInterrupt):
        apply_tags(plan, journal)
    monkeypatch.setattr(tags, "_rewrite", real)
    assert [genre_of(f) for f in files] == [["metal"], ["Pop"], ["Pop"]]
    assert [e["done"] for e in json.loads(journal.read_text())["files"]] == [True, False,
                                                                             False]
    assert not list(tmp_path.glob(".*slapp-tmp*"))
    undone = undo_tags(journal)
    assert (undone.restored, undone.unchanged, undone.left) == (1, 2, [])
    assert [genre_of(f) for f in files] == [["Pop"]] * 3
    again = plan_tags([result(f, "metal", 0.9) for f in files], min_confidence=0.5)
    assert apply_tags(again, tmp_path / "j2.json") == (3, [])
    assert [genre_of(f) for f in files] == [["metal"]] * 3


def test_read_only_hard_linked_and_unsure_tracks_are_left_alone(tmp_path):
    ro = make_file(tmp_path / "ro.mp3", seed=1)
    os.chmod(ro, 0o444)
    linked = make_file(tmp_path / "linked.mp3", seed=2)
    os.link(linked, tmp_path / "other-name.mp3")
    unsure = make_file(tmp_path / "unsure.mp3", seed=3)
    plan = plan_tags([result(ro, "a", 0.9), result(linked, "a", 0.9),
                      result(unsure, "a", 0.3)], min_confidence=0.5)
    if os.geteuid() != 0:  # root may write read-only files: only the hard link is refused
        assert plan[0].refused == "read-only (the file or its folder)"
    assert plan[1].refused.startswith("it has 2 hard links")
    assert [c.path for c in plan] == [str(ro), str(linked)]  # 0.3 < 0.5: not planned


def test_the_cli_dry_run_writes_nothing_then_apply_and_undo(trained, tmp_path, capsys):
    import shutil

    import predict_track

    root, params = trained
    music = tmp_path / "music"
    shutil.copytree(root / "music" / "mid", music / "mid")
    song = write_audio(music / "mid" / "song.mp3", tone(3.0, sr=22050, freq=440.0), 22050)
    wav = music / "mid" / "mid_0.wav"
    base = ["--params", str(params), "--quiet", str(music), "--min-confidence", "0"]
    assert predict_track.main(base + ["--write-tags"]) == 0
    out = capsys.readouterr().out
    assert "genre tags: 1 to change, 0 already right, 6 refused" in out
    assert "(dry run: add --apply to write them)" in out
    assert (f"  not tagged: {wav}: slapp writes genre tags in MP3, FLAC, Ogg Vorbis, "
            "Opus and MP4/M4A files only") in out
    tag_line = next(line for line in out.splitlines() if line.startswith(f"  tag {song}:"))
    assert tag_line.startswith(f"  tag {song}: genre (none) -> ")
    label = tag_line.split(" -> ")[1].split(" (")[0]
    assert label in ("bass", "mid", "treble")
    assert genre_of(song) is None  # a dry run
    journal = tmp_path / "journal.json"
    assert predict_track.main(base + ["--write-tags", "--apply", "--tags-journal",
                                      str(journal)]) == 0
    assert (f"genre tags written to 1 file(s); the old values are in {journal}; to undo: "
            f"predict_track.py --undo-tags {journal}") in capsys.readouterr().out
    assert genre_of(song) == [label]
    assert predict_track.main(["--undo-tags", str(journal)]) == 0
    assert f"restored the tags of 1 file(s) from {journal}" in capsys.readouterr().out
    assert genre_of(song) is None
    assert predict_track.main(base + ["--apply"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --apply writes the tags that --write-tags shows: give both.")


def test_playlists_hold_relative_paths_best_first_and_a_list_to_check(tmp_path):
    from slapp.stages.deliver.playlists import write_playlists

    music = tmp_path / "music"
    files = [write_audio(music / "a" / f"{i}.wav", tone(1.0), 22050) for i in range(4)]
    results = [result(files[0], "rock", 0.6), result(files[1], "rock", 0.95),
               result(files[2], "jazz", 0.4), result(files[3], "jazz", 0.9, ["upsampled"]),
               TrackResult(path=str(music / "gone.mp3"), error="not found")]
    written = write_playlists(results, tmp_path / "lists", min_confidence=0.5)
    assert sorted(written) == ["check-these", "jazz", "rock"]

    def entries(name):
        lines = written[name].read_text(encoding="utf-8").splitlines()
        assert lines[0] == "#EXTM3U"
        paths = [line for line in lines[1:] if not line.startswith("#")]
        assert all(not Path(p).is_absolute() for p in paths)
        return [(written[name].parent / p).resolve() for p in paths]

    assert entries("rock") == [files[1].resolve(), files[0].resolve()]
    assert entries("jazz") == [files[3].resolve(), files[2].resolve()]
    assert entries("check-these") == [files[3].resolve(), files[2].resolve()]
    assert all(p.exists() for p in entries("rock") + entries("jazz"))


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headers, self.data, self.scripts, self._in = [], None, 0, None

    def handle_starttag(self, tag, attrs):
        self._in = (tag, dict(attrs))
        self.scripts += tag == "script"

    def handle_endtag(self, tag):
        if self._in and self._in[0] == "script" and self._in[1].get("id") == "data":
            self.data = json.loads(self.data)
        self._in = None

    def handle_data(self, data):
        tag, attrs = self._in or (None, {})
        if tag == "th" and "data-k" in attrs:
            self.headers.append(data.strip())
        if tag == "script" and attrs.get("id") == "data":
            self.data = (self.data or "") + data


def test_the_page_is_one_file_with_the_table_data_and_relative_audio(tmp_path):
    from slapp.stages.deliver.page import write_page

    files = [write_audio(tmp_path / "music" / "jazz" / f"{i}.wav", tone(1.0), 22050)
             for i in range(2)]
    rows = [result(files[0], "jazz", 0.9), result(files[1], "rock", 0.3)]
    rows[0].timeline = [{"start": 0.0, "label": "jazz", "scores": {"jazz": 0.8,
                                                                     "other": 0.2}}]
    report = PredictReport(results=rows, classes=["jazz", "rock"], bundle=tmp_path / "m",
                           truth={"right": 1, "count": 2, "confusion": [[1, 1], [0, 0]],
                                  "skipped": []})
    page = tmp_path / "out" / "labels.html"
    write_page(page, report, min_confidence=0.5)
    text = page.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(text)
    assert parsed.headers == ["track", "label", "confidence"]
    tracks = parsed.data["tracks"]
    assert [t["src"] for t in tracks] == ["../music/jazz/0.wav", "../music/jazz/1.wav"]
    assert [t["check"] for t in tracks] == [False, True] and tracks[0]["tl"] == [[0, 0.8]]
    assert "Against the folder names: 1 of 2 right (0.50)" in text
    assert "http://" not in text and "https://" not in text  # nothing from the network


def _set_genre(path: Path, value: str) -> None:
    import mutagen

    f = mutagen.File(path, easy=True)
    f.tags["genre"] = [value]
    f.save()


def test_undo_puts_back_only_what_slapp_wrote(tmp_path):
    """A genre the user set after slapp's, or a file changed since, is left as it is and
    named; the other files are restored; --force overwrites."""
    files = [make_file(tmp_path / f"t{i}.mp3", genre="Pop", seed=i) for i in range(3)]
    plan = plan_tags([result(f, "metal", 0.9) for f in files], min_confidence=0.5)
    journal = tmp_path / "j.json"
    assert apply_tags(plan, journal) == (3, [])
    _set_genre(files[0], "Doom Jazz")  # the user's own later edit
    with open(files[1], "ab") as f:  # the file changed since (same tags)
        f.write(b"\0" * 128)
    undone = undo_tags(journal)
    assert undone.restored == 1 and undone.failed == []
    assert undone.left == [
        (str(files[0].resolve()), "its genre Doom Jazz is not what slapp wrote (genre "
                                  "metal): changed since, by you or another program"),
        (str(files[1].resolve()), "the file changed since slapp wrote its tags (its size "
                                  "or modification time)")]
    assert [genre_of(f) for f in files] == [["Doom Jazz"], ["metal"], ["Pop"]]
    forced = undo_tags(journal, force=True)
    assert (forced.restored, forced.unchanged, forced.left) == (2, 1, [])
    assert [genre_of(f) for f in files] == [["Pop"]] * 3


def test_the_journal_lands_in_the_state_folder_and_undo_lists_it(trained, tmp_path, capsys,
                                                                monkeypatch):
    import shutil

    import predict_track

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root, params = trained
    music = tmp_path / "music"
    shutil.copytree(root / "music" / "mid", music / "mid")
    song = write_audio(music / "mid" / "song.mp3", tone(3.0, sr=22050, freq=440.0), 22050)
    assert predict_track.main(["--params", str(params), "--quiet", str(music),
                               "--min-confidence", "0", "--write-tags", "--apply"]) == 0
    out = capsys.readouterr().out
    journals = list((tmp_path / "state" / "slapp" / "tag-journals").glob("slapp-tags-*.json"))
    assert len(journals) == 1 and f"the old values are in {journals[0]}" in out
    assert predict_track.main(["--undo-tags"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("recent tag journals in ")
    assert listed[1].endswith(f"1 file(s)  predict_track.py --undo-tags {journals[0]}")
    _set_genre(song, "Mine")
    assert predict_track.main(["--undo-tags", str(journals[0])]) == 3
    out = capsys.readouterr().out
    assert "restored the tags of 0 file(s)" in out
    assert "left 1 file(s) as they are: they changed since slapp wrote them" in out
    assert f"  left: {song.resolve()}: its genre Mine is not what slapp wrote" in out
    assert genre_of(song) == ["Mine"]
