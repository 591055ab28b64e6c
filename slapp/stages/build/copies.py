"""Library tracks that are copies of labelled tracks, found by their audio (the audit's
duplicate search, :func:`slapp.dsp.duplicates.find_duplicates`, on the cached snippets):
a common layout is a library from which the class folders were copied, renamed or not.
A copy (the same recording, as long, lined up: the search's "exact" kind) leaves the
library (it would be suggested, pseudo-labelled or answered into training while its
original is labelled, maybe held out); an answered track that is a copy of a labelled one
is a warning naming both."""

from __future__ import annotations

import hashlib
import logging
from pathlib import PurePosixPath

from slapp.dsp.duplicates import find_duplicates, seconds_of
from slapp.errors import StageError
from slapp.stages.build.library import LibraryBuild, previous_manifest
from slapp.store import cache
from slapp.store.layout import BuildLayout
from slapp.store.unlabelled import LABELLED, OUTSIDE

logger = logging.getLogger(__name__)

LIB, LAB = "library:", "labelled:"


def _digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:16]


def _shapes(params, layout: BuildLayout, lengths: dict[str, float], tag: str, out: dict,
            seconds: dict) -> None:
    fps = max(1, round(params.audio.sample_rate / params.features.hop_length))
    for key, length in lengths.items():
        try:
            mel, _ = cache.read_track(layout, key)
        except (StageError, OSError):
            continue  # not cached (failed, pending): nothing to compare
        out[tag + key], seconds[tag + key] = seconds_of(mel, fps), length


def find_copies(params, layout: BuildLayout, labelled: dict[str, float],
                lib_layout: BuildLayout, library: dict[str, float], previous: dict | None = None
                ) -> tuple[dict[str, str], list[str], str]:
    """``({library key: the labelled key it copies}, one line per answered track that is
    a copy of a labelled one, a digest of the tracks searched)``; ``labelled``,
    ``library``: each build's keys and their lengths (s). ``previous``: the library
    manifest of the last run when this run built nothing: its findings are reused if it searched the same
    tracks (a re-run reads no cache file again)."""
    digest = _digest(sorted(labelled) + ["|"] + sorted(library))
    if not library and not any(LABELLED in k for k in labelled):
        return {}, [], digest
    found = (previous or {}).get("copies") or {}
    if found.get("searched") == digest:
        return ({k: e["of"] for k, e in previous.get("tracks", {}).items()
                 if e.get("status") == "copy"}, list(found.get("answered", [])), digest)
    shapes: dict[str, object] = {}
    seconds: dict[str, float] = {}
    _shapes(params, layout, labelled, LAB, shapes, seconds)
    _shapes(params, lib_layout, library, LIB, shapes, seconds)
    copies, lines = {}, []
    for a, b, share, kind in find_duplicates(shapes, seconds):
        if kind != "exact":  # a copy is the same recording, as long (another cut is music
            continue         # the user may mean to keep: the audit lists those)
        (ka, kb) = sorted((a, b), key=lambda k: (not k.startswith(LIB), LABELLED in k))
        if ka.startswith(LIB) and kb.startswith(LAB):
            copies.setdefault(ka[len(LIB):], kb[len(LAB):])
        elif ka.startswith(LAB) and LABELLED in kb and LABELLED not in ka:
            original, answered = ka[len(LAB):], kb[len(LAB):]
            said, folder = answered.split("/")[0], original.split("/")[0]
            how = ("labelled differently" if said != folder else
                   "the same recording twice in training")
            rel = PurePosixPath(answered).relative_to(said, LABELLED)
            shown = rel.name if rel.parts[0] == OUTSIDE else rel
            lines.append(f"labels file: the answer '{said}' for {shown} is a copy of "
                         f"'{original}' ({share:.0%} of its audio; class folder '{folder}'): "
                         f"{how}")
    return copies, lines, digest


def mark_copies(params, layout: BuildLayout, labelled: dict[str, float], lib: LibraryBuild,
                lib_results: dict[str, dict], *, built: bool) -> None:
    """Fill ``lib`` with the copies :func:`find_copies` finds (``labelled``: the labelled
    build's keys and lengths), the previous run's when this one ``built`` nothing; each
    answered copy is one warning."""
    lengths = {k: e["seconds"] for k, e in {**cache.manifest_entries(lib.layout),
                                           **lib_results}.items()
               if k in lib.library.files and e.get("seconds") is not None}
    lib.copies, lib.answered_copies, lib.searched = find_copies(
        params, layout, labelled, lib.layout, lengths,
        previous=None if built or lib_results else previous_manifest(lib.layout))
    for line in lib.answered_copies:
        logger.warning("%s", line)
