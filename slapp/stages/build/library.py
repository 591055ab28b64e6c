"""Stage 1's second part: the unlabelled library (``paths.unlabelled_dir``) built and cached
like the labelled tracks, with the same guarantees (atomic per-track files, a re-run
skips what is cached, rebuilds what changed, retries what failed; one bad track is
reported and counted), under ``<output_dir>/library`` (:mod:`slapp.store.unlabelled`).
The library never enters the split: it has no validation or test tracks."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from slapp.errors import StageError
from slapp.stages.build.worker import TrackTask
from slapp.store import cache
from slapp.store.atomic import read_json, remove_temp_files, write_json
from slapp.store.discovery import Dataset
from slapp.store.layout import BuildLayout
from slapp.store.unlabelled import Library


@dataclass
class LibraryBuild:
    """The library's part of a build run: its layout, keys, tasks still to do and, after
    :func:`finish_library`, what happened."""

    layout: BuildLayout
    library: Library
    todo: list[TrackTask] = field(default_factory=list)
    cached_before: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    pending: int = 0
    changed: list[str] = field(default_factory=list)
    copies: dict[str, str] = field(default_factory=dict)  # library key -> labelled key
    answered_copies: list[str] = field(default_factory=list)  # warnings (build.copies)
    searched: str = ""  # digest of the tracks the copy search compared

    def summary(self) -> list[str]:
        lib = self.library
        lines = []
        if lib.root is not None:
            lines.append(
                f"library (paths.unlabelled_dir, for training only): "
                f"{len(lib.files)} unlabelled tracks, {self.done} cached, "
                f"{self.cached_before} of them already, {len(self.failed)} failed"
                + (f", {self.pending} not done yet" if self.pending else ""))
            lines += [f"  failed: {key}: {why}" for key, why in sorted(self.failed.items())]
            if self.copies:
                first = min(self.copies)
                lines.append(f"  {len(self.copies)} library track(s) are copies of labelled "
                             f"tracks (by their audio; e.g. {first} of {self.copies[first]}): "
                             "left out of the library")
            if self.changed:
                lines.append(f"  rebuilt {len(self.changed)} library track(s) whose file "
                             "changed since it was cached")
        answered = sum(len(v) for v in lib.labelled.values())
        if answered or lib.problems or lib.none:
            lines.append(f"labels file (paths.labels_file): {answered} track(s) labelled, "
                         "in training" + (": " + ", ".join(
                             f"{c} {len(v)}" for c, v in sorted(lib.labelled.items()))
                                          if answered else "")
                         + (f"; {len(lib.none)} answered none of these (out of the library "
                            "and its suggestions)" if lib.none else "")
                         + (f"; {len(lib.problems)} row(s) not used" if lib.problems else ""))
            lines += [f"  {p}" for p in lib.problems]
        return lines


def with_labelled(dataset: Dataset, library: Library) -> Dataset:
    """``dataset`` with the labels file's tracks added to their classes."""
    files = dict(dataset.files)
    tracks = {c: list(keys) for c, keys in dataset.tracks.items()}
    for name, found in library.labelled.items():
        files.update(found)
        tracks[name] = sorted(set(tracks[name]) | set(found))
    return dataclasses.replace(dataset, files=files,
                               tracks={c: tuple(k) for c, k in tracks.items()})


def plan_library(params, library: Library, layout: BuildLayout, fingerprint: str, *,
                 rebuild: bool) -> LibraryBuild:
    """Check the library cache's settings (a cache of other settings is rebuilt: it holds
    nothing the user made by hand), drop files whose source changed, list the work."""
    plan = LibraryBuild(layout=layout, library=library)
    if library.root is None:
        return plan
    layout.tmp_dir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(layout.tmp_dir)
    info = read_json(layout.info_file) if layout.info_file.exists() else {}
    if rebuild or info.get("fingerprint") != fingerprint:
        cache.remove_cache(layout)
    write_json(layout.info_file, {"stage": "build_dataset (library)",
                                  "library_dir": str(library.root),
                                  "fingerprint": fingerprint}, tmp_dir=layout.tmp_dir)
    plan.changed = cache.drop_changed(library.files, layout, cache.manifest_entries(layout))
    plan.todo = [TrackTask(k, p, params, layout, fingerprint)
                 for k, p in sorted(library.files.items()) if not layout.track_file(k).exists()]
    plan.cached_before = len(library.files) - len(plan.todo)
    return plan


def finish_library(plan: LibraryBuild, results: dict[str, dict]) -> None:
    """Write the library's manifest (atomically) and fill ``plan``'s counts."""
    if plan.library.root is None:
        return
    layout, old = plan.layout, cache.manifest_entries(plan.layout)
    tracks = {}
    for key in sorted(plan.library.files):
        tracks[key] = cache.manifest_entry(key, layout, results, old)
        if key in plan.copies and tracks[key]["status"] == "done":
            tracks[key] = {**tracks[key], "status": "copy", "of": plan.copies[key]}
    counts = Counter(e["status"] for e in tracks.values())
    plan.done = counts.get("done", 0) + counts.get("copy", 0)  # a copy is cached too
    plan.pending = counts.get("pending", 0)
    plan.failed = {k: e["reason"] for k, e in tracks.items() if e["status"] == "failed"}
    write_json(layout.manifest_file, {
        "stage": "build_dataset (library)", "complete": plan.pending == 0,
        "library_dir": str(plan.library.root), "tracks": tracks,
        "copies": {"searched": plan.searched, "answered": plan.answered_copies}},
        tmp_dir=layout.tmp_dir)


def previous_manifest(layout: BuildLayout) -> dict | None:
    """The library manifest of the last run (None: none, or unreadable)."""
    try:
        return read_json(layout.manifest_file) if layout.manifest_file.exists() else None
    except StageError:
        return None


def library_keys(layout: BuildLayout) -> list[str]:
    """The library's cached tracks (its manifest's ``done`` entries whose file exists)."""
    if not layout.manifest_file.exists():
        return []
    tracks = read_json(layout.manifest_file).get("tracks", {})
    return sorted(k for k, e in tracks.items()
                  if e.get("status") == "done" and layout.track_file(k).exists())
