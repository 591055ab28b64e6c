"""Who plays each track: the artist from the file's tags (ID3, Vorbis comments, FLAC, MP4,
through ``mutagen``) or from a CSV that maps tracks to groups (``split.groups_file``), and
what a collection's artists say about its classes.

A track with no artist is its own group. Artists are compared case- and space-blind
(``"Bob Marley"`` and ``"bob  marley"`` are one artist)."""

from __future__ import annotations

import csv
import os
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from slapp.errors import DatasetError

FEW_ARTISTS = 3  # a class with fewer artists than this teaches artists, not a genre


def read_artist(path: str | os.PathLike) -> str | None:
    """The artist tag of an audio file (album artist when there is none), or None when
    the file has no such tag or its tags cannot be read."""
    import mutagen

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or device: never opened
            return None
        tags = mutagen.File(path, easy=True)
    except Exception:  # a damaged header: the decoder will say what is wrong
        return None
    if tags is None or tags.tags is None:
        return None
    for field in ("artist", "albumartist"):
        try:
            values = tags.get(field) or []
        except (KeyError, ValueError):
            values = []
        for value in values:
            text = " ".join(str(value).split())
            if text:
                return text
    return None


def group_key(artist: str | None, track: str) -> str:
    """The split group of a track: its artist, compared case- and space-blind; a track
    with no artist is a group of its own."""
    return "artist:" + artist.casefold() if artist else "track:" + track


def read_groups_file(path: Path, keys: Sequence[str]) -> dict[str, str]:
    """Track key → artist from a CSV with a header naming a ``path`` column and an
    ``artist`` (or ``group``) column. A path matches a key when it equals it or ends with
    ``/<key>`` (so a CSV of paths relative to a parent folder works). Rows that match no
    track are ignored; an empty artist means unknown."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"Cannot read the groups file '{path}' (split.groups_file): "
                           f"{exc}. Expected a CSV with columns path,artist.") from None
    columns = set(rows[0]) if rows else set()
    name = "artist" if "artist" in columns else "group" if "group" in columns else None
    if "path" not in columns or name is None:
        raise DatasetError(f"The groups file '{path}' (split.groups_file) must have a "
                           "header with a 'path' column and an 'artist' (or 'group') "
                           f"column. Got {sorted(c for c in columns if c) or 'no header'}.")
    wanted = set(keys)
    out: dict[str, str] = {}
    for row in rows:
        where, who = (row.get("path") or "").strip().replace("\\", "/"), row.get(name) or ""
        who = " ".join(who.split())
        parts = where.split("/")
        for i in range(len(parts)):  # the path itself, then shorter and shorter tails
            key = "/".join(parts[i:])
            if key in wanted:
                if who:
                    out[key] = who
                break
    return out


def class_artists(tracks: Mapping[str, Sequence[str]], artists: Mapping[str, str | None]
                  ) -> dict[str, dict]:
    """Per class: ``tracks``, ``tagged`` (tracks with an artist) and ``artists`` (name →
    tracks, most first, first spelling seen)."""
    out = {}
    for name, keys in tracks.items():
        names: dict[str, str] = {}
        counts: Counter = Counter()
        for key in keys:
            artist = artists.get(key)
            if artist:
                shown = names.setdefault(artist.casefold(), artist)
                counts[shown] += 1
        out[name] = {"tracks": len(keys), "tagged": sum(counts.values()),
                     "artists": dict(counts.most_common())}
    return out


def artist_warnings(summary: Mapping[str, dict]) -> list[str]:
    """One line per class whose tracks come from fewer than :data:`FEW_ARTISTS` artists
    (classes without any artist tag are not judged)."""
    lines = []
    for name, c in summary.items():
        artists, n = c["artists"], c["tracks"]
        untagged = n - c["tagged"]
        if not artists or len(artists) + untagged >= FEW_ARTISTS:
            continue
        if len(artists) == 1 and not untagged:
            who = f"all by {next(iter(artists))}"
        else:
            who = "by " + ", ".join(f"{a} ({k})" for a, k in artists.items()) + (
                f" and {untagged} untagged" if untagged else "")
        lines.append(f"{name}: {n} tracks, {who}: the model will learn "
                     f"{'that artist' if len(artists) == 1 else 'those artists'} rather "
                     f"than {name}; add tracks by other artists")
    return lines


def training_artists(artists: Mapping[str, str | None] | None, tracks: Sequence[dict]
                     ) -> list[str]:
    """The artists of the training tracks (each once, case-blind, sorted): what a bundle
    records so that prediction can say which artists an accuracy is on; ``[]`` when no
    track has an artist. ``tracks``: stage 2's ``tracks.json`` entries (key, split)."""
    names: dict[str, str] = {}
    for t in tracks:
        artist = (artists or {}).get(t["key"])
        if t["split"] == "train" and artist:
            names.setdefault(artist.casefold(), artist)
    return sorted(names.values(), key=str.casefold)


def heard_tracks(artists: Mapping[str, str | None] | None, tracks: Sequence[dict], *,
                 pretrained: bool) -> tuple[set[str] | None, list[str]]:
    """``(keys of evaluation tracks whose artist has a training track, or None when no
    track has an artist; lines on the training artists per class)``. ``pretrained``:
    the model is a pretrained backbone's head (no hint to use one)."""
    if not artists or not any(artists.values()):
        return None, []
    trained = [t for t in tracks if t["split"] == "train"]
    heard = {artists[t["key"]].casefold() for t in trained if artists.get(t["key"])}
    keys = {t["key"] for t in tracks if t["split"] != "train" and artists.get(t["key"])
            and artists[t["key"]].casefold() in heard}
    by_class: dict[str, list[str]] = {}
    for t in trained:
        by_class.setdefault(t["class"], []).append(t["key"])
    per_class = class_artists(by_class, artists)
    lines = ["  training artists per class: " + ", ".join(
        f"{c} {len(v['artists'])}" for c, v in sorted(per_class.items()))]
    warnings = [f"  warning: {w}" for w in artist_warnings(per_class)]
    if warnings and not pretrained:
        warnings.append('  hint: with few artists per class, "model": {"backbone": '
                        '"musicnn-msd"} (pretrained) labels artists it never heard better: '
                        "0.81 against 0.57 mean recall on gtzan-other-artists "
                        "(BENCHMARKS.md)")
    return keys, lines + warnings
