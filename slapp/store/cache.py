"""The feature cache of stage 1: one ``cache/<key>.npz`` per track (see
:mod:`slapp.store.layout`), keyed by a fingerprint of the feature settings.

A ``.npz`` exists only once it is complete (atomic write), so it alone means "done".
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import numpy as np

from slapp.store.atomic import read_json, write_npz
from slapp.errors import StageError
from slapp.store.layout import BuildLayout

CACHE_FORMAT = 1


def fingerprint(settings: dict) -> str:
    """Short hash of the feature settings (plus the cache format)."""
    text = json.dumps({"format": CACHE_FORMAT, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


FRAMING = "track"  # snippets cut in frame space from one spectrogram per track
OLD_FRAMING = ("snippets made by an older slapp (one spectrogram per snippet; now one per "
               "track, snippets cut from it)")


def changed_settings(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``["features.n_mels: 100 -> 128", ...]`` for every leaf that differs."""
    if not prefix and old and "framing" not in old and "framing" in new:
        return [OLD_FRAMING] + changed_settings({**old, "framing": new["framing"]}, new)
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_settings(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def write_track(layout: BuildLayout, key: str, *, mel: np.ndarray, starts: np.ndarray,
                dtype: str, fingerprint: str, source: tuple[int, int] | None = None) -> None:
    """Atomically store one track's features as ``cache/<key>.npz``, with ``source``:
    the audio file's ``(size in bytes, modification time in ns)`` it was made from."""
    arrays = {"mel": mel.astype(dtype, copy=False), "starts": starts.astype(np.float32),
              "fingerprint": np.array(fingerprint)}
    if source is not None:
        arrays["source"] = np.array(source, dtype=np.int64)
    write_npz(layout.track_file(key), arrays, tmp_dir=layout.tmp_dir)


def source_stat(path: str | os.PathLike) -> list[int]:
    """``[size in bytes, modification time in ns]`` of a file: what a cached file records
    of its source (an audio file for the spectrograms, a spectrogram file for the
    embeddings), to notice a file replaced in place."""
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def file_digest(path: str | os.PathLike) -> str:
    """A short sha256 digest (16 hex digits) of a file's bytes, read a MiB at a time: what
    names a network file's version (an ONNX backbone, a bundle's ``model.onnx``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cached_source(path: str | os.PathLike) -> list[int] | None:
    """The ``source`` a cache file recorded, or None (made before slapp recorded it, or
    unreadable: then the caller cannot tell and keeps it)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return [int(v) for v in data["source"]] if "source" in data.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def read_track(layout: BuildLayout, key: str, *, fingerprint: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(mel (n, n_frames, n_mels), starts (n,) seconds)`` of a cached track.

    Raises :class:`StageError` naming the file when it is unreadable or, if
    ``fingerprint`` is given, was made with other feature settings.
    """
    path = layout.track_file(key)
    try:
        with np.load(path, allow_pickle=False) as data:
            mel, starts, fp = data["mel"], data["starts"], str(data["fingerprint"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise StageError(f"Cache file '{path}' is unreadable ({exc}). Delete it and run "
                         "build_dataset.py again to rebuild just that track.") from None
    if fingerprint is not None and fp != fingerprint:
        raise StageError(f"Cache file '{path}' was made with other feature settings. Run "
                         "build_dataset.py --rebuild.")
    return mel, starts


def snippet_count(path: str | os.PathLike) -> int:
    """Snippets in a cached track, from the array header only (no data read)."""
    with zipfile.ZipFile(path) as z, z.open("mel.npy") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, _ = read(f)
    return int(shape[0])


def remove_cache(layout: BuildLayout) -> None:
    """Delete every cached track (for ``--rebuild``)."""
    import shutil

    if layout.cache_dir.exists():
        shutil.rmtree(layout.cache_dir)
    if layout.manifest_file.exists():
        os.unlink(layout.manifest_file)


def manifest_entries(layout: BuildLayout) -> dict[str, dict]:
    """The previous build run's per-track manifest entries (empty when none or
    unreadable)."""
    if layout.manifest_file.exists():
        try:
            return read_json(layout.manifest_file).get("tracks", {})
        except StageError:
            pass
    return {}


def manifest_entry(key: str, layout: BuildLayout, new: dict[str, dict],
                   old: dict[str, dict]) -> dict:
    """A track's manifest entry after a build run (the labelled build and the library's
    alike): this run's result, else the previous run's ``done`` entry while its cache file
    is there, else one read from the file (a file damaged by something outside slapp is
    deleted: rebuilt next run), else ``pending``."""
    if key in new:
        return {k: v for k, v in new[key].items() if k != "key"}
    path = layout.track_file(key)
    if path.exists():
        prev = old.get(key)
        if prev and prev.get("status") == "done":
            return prev
        try:
            return {"status": "done", "snippets": snippet_count(path),
                    "file": cached_source(path)}
        except Exception:  # damaged by something outside slapp: rebuild it next run
            path.unlink()
    return {"status": "pending"}


def drop_changed(files: dict, layout: BuildLayout, old: dict[str, dict]) -> list[str]:
    """Keys of ``files`` (key → audio file) whose cached track was made from the file at
    another size or modification time than it has now (``old``: the manifest entries);
    their cache files are deleted, so they are rebuilt."""
    changed = []
    for key in sorted(files):
        path = layout.track_file(key)
        if not path.exists():
            continue
        recorded = old.get(key, {}).get("file") or cached_source(path)
        try:
            now = source_stat(files[key])
        except OSError:
            continue  # vanished since the scan: its build will report it
        if recorded is not None and list(recorded) != now:
            path.unlink()
            changed.append(key)
    return changed
