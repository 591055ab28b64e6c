"""Playlists from the labels: one M3U8 per label, and one of the tracks to check first.

Paths are relative to the playlist's folder (so the folder can move with the music), in
UTF-8 (``.m3u8``), each entry preceded by ``#EXTINF:<seconds>,<name> (<confidence>)``;
tracks are sorted by confidence, highest first. A file name is data, never lines: a name
holding a line break or another control character (Linux allows them) is written as an
absolute ``file://`` URI with percent-escapes (which VLC, mpv and foobar2000 open), and
its title line shows the escapes, so no entry can add lines to a playlist.
"""

from __future__ import annotations

import os
from pathlib import Path

from slapp.store.atomic import atomic_write
from slapp.store.discovery import has_control, shown

CHECK = "check-these"  # the playlist of uncertain tracks


def playlist_entry(result, folder: Path) -> str:
    """One track's ``#EXTINF`` line and path (relative to ``folder``, or a URI)."""
    rel = os.path.relpath(Path(result.path).resolve(), folder.resolve())
    if has_control(rel):
        rel = Path(result.path).resolve().as_uri()  # percent-escaped: one line
    seconds = int(round(result.seconds or -1))
    name = shown(Path(result.path).stem)
    return f"#EXTINF:{seconds},{name} ({result.label} {result.confidence:.2f})\n{rel}\n"


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in label).strip() or "_"


def write_playlists(results, folder: Path, *, min_confidence: float) -> dict[str, Path]:
    """``<folder>/<label>.m3u8`` for every label, ``<folder>/check-these.m3u8`` for the
    tracks below ``min_confidence`` or with notes (audio unlike the training audio,
    upsampled, truncated...). Returns ``{name: file}``; each file is written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    labelled = sorted((r for r in results if not r.error), key=lambda r: -r.confidence)
    lists: dict[str, list] = {}
    for r in labelled:
        lists.setdefault(r.label, []).append(r)
    lists[CHECK] = [r for r in labelled if r.confidence < min_confidence or r.notes]
    written = {}
    for name, items in lists.items():
        if not items and name != CHECK:
            continue
        text = "#EXTM3U\n" + "".join(playlist_entry(r, folder) for r in items)
        path = folder / f"{_safe(name)}.m3u8"
        atomic_write(path, lambda f, data=text.encode("utf-8"): f.write(data))
        written[name] = path
    return written
