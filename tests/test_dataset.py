import unicodedata

import pytest

from slapp.store.discovery import find_tracks
from slapp.errors import DatasetError

from conftest import tone, write_audio


def test_classes_sorted_and_tracks_found(tmp_path):
    for c in ("zeta", "Alpha", "mid"):
        write_audio(tmp_path / c / "a.wav", tone(0.5, sr=8000), 8000)
    write_audio(tmp_path / "mid" / "album" / "b.mp3", tone(0.5, sr=8000), 8000)
    (tmp_path / "mid" / "cover.jpg").write_bytes(b"x")
    (tmp_path / "mid" / ".DS_Store").write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / "README.txt").write_text("hi")
    ds = find_tracks(tmp_path)
    assert ds.classes == ("Alpha", "mid", "zeta")
    assert ds.tracks["mid"] == ("mid/a.wav", "mid/album/b.mp3")
    assert ds.n_tracks == 4
    assert ds.ignored == ("README.txt", "mid/cover.jpg")
    assert ds.ignored_summary() == ("2 files that are not audio (.txt x1, .jpg x1); "
                                    "1 system folders/files (mid/.DS_Store)")


def test_keys_are_nfc(tmp_path):
    nfd = unicodedata.normalize("NFD", "café")
    write_audio(tmp_path / nfd / "é.wav", tone(0.5, sr=8000), 8000)
    write_audio(tmp_path / "b" / "x.wav", tone(0.5, sr=8000), 8000)
    ds = find_tracks(tmp_path)
    key = unicodedata.normalize("NFC", "café/é.wav")
    assert key in ds.files and ds.files[key].exists()


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"Input folder '.*nope' does not exist"):
        find_tracks(tmp_path / "nope")


def test_one_class(tmp_path):
    write_audio(tmp_path / "only" / "a.wav", tone(0.5, sr=8000), 8000)
    with pytest.raises(DatasetError, match=r"has 1 class folder\(s\) \('only'\). Expected at "
                                           r"least 2"):
        find_tracks(tmp_path)


def test_class_without_audio(tmp_path):
    write_audio(tmp_path / "a" / "a.wav", tone(0.5, sr=8000), 8000)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"Class folder '.*b' contains no audio files"):
        find_tracks(tmp_path)
