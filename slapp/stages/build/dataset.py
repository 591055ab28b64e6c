"""Stage 1, ``build_dataset.py``: input folder → split file + per-track log-mel cache.

Order of work: find the tracks and check the parameters (errors before any work), take
the output folder's lock, write the split and the build info, then decode and featurize
every track not yet cached, in parallel, each written atomically. A re-run skips what is
cached, retries what failed, and refuses a cache made with other feature settings.
"""

from __future__ import annotations

import dataclasses

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


from slapp.stages.build.worker import TrackTask, run_tracks, warm_up
from slapp.stages.build.copies import mark_copies
from slapp.stages.build.library import (LibraryBuild, finish_library, plan_library,
                                        with_labelled)
from slapp.store import cache
from slapp.store.atomic import read_json, remove_temp_files, write_json
from slapp.store.layout import BuildLayout, output_layout
from slapp.store.discovery import Dataset, find_tracks
from slapp.store.unlabelled import Library, find_library, library_layout
from slapp.executor import open_executor
from slapp.errors import StageError
from slapp.store.lock import output_lock
from slapp.params import PipelineParams
from slapp.store.split import SPLITS, split_of
from slapp.store.split_policy import (collection_artists, collection_lines, prepare_split,
                                      split_method, split_origin)

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build run did; :meth:`summary` renders it for the terminal."""

    layout: BuildLayout
    n_tracks: int
    cached_before: int
    cached_now: int = 0
    pending: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    tracks_per_split: dict[str, int] = field(default_factory=dict)
    snippets_per_split: dict[str, int] = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)
    ignored: str = ""
    changed: list[str] = field(default_factory=list)   # rebuilt: the file changed
    gone: list[str] = field(default_factory=list)      # cached, but the file is gone
    seconds: float = 0.0
    interrupted: bool = False
    collection: list[str] = field(default_factory=list)  # artists per class, the split
    library: LibraryBuild | None = None  # paths.unlabelled_dir and paths.labels_file

    def summary(self) -> list[str]:
        """Lines for the end of a run: counts, failures with reasons, outputs, time."""
        head = "build interrupted" if self.interrupted else "build finished"
        lines = [f"{head} in {self.seconds:.1f} s: {self.n_tracks} tracks, "
                 f"{self.cached_now} cached now, {self.cached_before} already cached "
                 f"(skipped), {len(self.failed)} failed"
                 + (f", {self.pending} not done yet" if self.pending else "")]
        if self.failed:
            lines.append(f"failed tracks ({len(self.failed)}), not used:")
            lines += [f"  {key}: {reason}" for key, reason in sorted(self.failed.items())]
        if self.notes:
            lines.append(f"warnings ({len(self.notes)} tracks, still used):")
            lines += [f"  {key}: {'; '.join(n)}" for key, n in sorted(self.notes.items())]
        if self.changed:
            lines.append(f"rebuilt {len(self.changed)} track(s) whose file changed since it "
                         "was cached: " + ", ".join(self.changed[:10])
                         + (f" and {len(self.changed) - 10} more" if len(self.changed) > 10
                            else ""))
        if self.gone:
            lines.append(f"{len(self.gone)} cached track(s) whose file is gone (no longer "
                         "used): " + ", ".join(self.gone[:10])
                         + (f" and {len(self.gone) - 10} more" if len(self.gone) > 10
                            else ""))
        if self.ignored:
            lines.append(f"ignored {self.ignored}")
        if self.sources:
            lines.append("decoded this run: " + ", ".join(
                f"{n} x {src}" for src, n in self.sources.most_common()))
        lines += self.collection
        if self.library is not None:
            lines += self.library.summary()
        lines.append("snippets: " + ", ".join(
            f"{part} {self.snippets_per_split.get(part, 0)} "
            f"({self.tracks_per_split.get(part, 0)} tracks)" for part in SPLITS))
        size = sum(p.stat().st_size for p in self.layout.cache_dir.rglob("*.npz"))
        lines.append(f"split: {self.layout.split_file}")
        lines.append(f"cache: {self.layout.cache_dir} ({size / 1e6:.1f} MB)")
        lines.append(f"manifest: {self.layout.manifest_file}")
        if self.interrupted or self.pending:
            lines.append("run the same command again to continue where it stopped")
        return lines


# --- the stage -------------------------------------------------------------------------


def _check_cache_settings(layout: BuildLayout, info: dict | None, settings: dict,
                          fingerprint: str, rebuild: bool) -> None:
    if rebuild:
        cache.remove_cache(layout)
        return
    if info is None and layout.cache_dir.exists() and any(layout.cache_dir.iterdir()):
        raise StageError(
            f"'{layout.cache_dir}' holds cached tracks but '{layout.info_file}' is missing, so "
            "the settings they were made with are unknown. Run build_dataset.py --rebuild.")
    if info is not None and info.get("fingerprint") != fingerprint:
        changes = cache.changed_settings(info.get("feature_settings", {}), settings)
        raise StageError(
            f"The cache in '{layout.cache_dir}' was built with other feature parameters ("
            + "; ".join(changes or ["cache format"]) + "). Run build_dataset.py --rebuild "
            "to delete it and build again, or set paths.output_dir to a new folder.")


def build_dataset(params: PipelineParams, *, rebuild: bool = False, resplit: bool = False,
                  progress: bool = True) -> BuildReport:
    """Run stage 1 (see the module docstring); returns what was done.

    Raises :class:`~slapp.errors.SlappError` subclasses for problems the user must fix.
    Ctrl-C stops the workers, writes the manifest of what is done and returns a report
    with ``interrupted=True``.
    """
    start = time.monotonic()
    dataset = find_tracks(params.paths.input_dir,
                          skip=(Path(params.paths.output_dir), params.model_dir))
    for folder in dataset.outputs:
        logger.warning("output folder '%s' lies inside the input folder: not read as music",
                       folder)
    library = find_library(params, dataset.classes, dataset.files.values(),
                           skip=(Path(params.paths.output_dir), params.model_dir))
    dataset = with_labelled(dataset, library)
    library = _learnt_from(params, library)
    layout = output_layout(params)
    settings = params.feature_settings()
    fingerprint = cache.fingerprint(settings)
    with output_lock(layout.root, "build_dataset.py"):
        layout.tmp_dir.mkdir(parents=True, exist_ok=True)
        remove_temp_files(layout.tmp_dir)
        info = read_json(layout.info_file) if layout.info_file.exists() else None
        _check_cache_settings(layout, info, settings, fingerprint, rebuild)
        split, collection = _split_and_record(params, dataset, layout, info, resplit,
                                              library)
        lib = plan_library(params, library, library_layout(params), fingerprint,
                           rebuild=rebuild)
        keys = sorted(dataset.files)
        old = cache.manifest_entries(layout)
        changed = cache.drop_changed(dataset.files, layout, old)
        todo = [k for k in keys if not layout.track_file(k).exists()]
        report = BuildReport(layout=layout, n_tracks=len(keys),
                             cached_before=len(keys) - len(todo),
                             ignored=dataset.ignored_summary(), changed=changed,
                             gone=sorted(k for k, e in old.items() if k not in dataset.files
                                         and layout.track_file(k).exists()),
                             collection=collection, library=lib)
        _log_plan(params, len(keys), len(todo), len(changed))
        tasks = [TrackTask(k, dataset.files[k], params, layout, fingerprint) for k in todo]
        results, lib_results = _run(params, layout, tasks, lib, report, progress)
        if not report.interrupted:
            mark_copies(params, layout, _lengths(keys, old, results), lib, lib_results,
                        built=bool(results))
        finish_library(lib, lib_results)
        _finish(report, keys, split, layout, results, old, start)
    return report


def _learnt_from(params: PipelineParams, library: Library) -> Library:
    """``library`` without its unlabelled folder when the backbone does not learn from
    one (said once): nothing is decoded for it."""
    if library.root is not None and not params.backbone.embedding_layer(params):
        logger.warning("paths.unlabelled_dir is set, but the %s backbone does not learn from "
                       "an unlabelled library (the musicnn backbones do): not built",
                       params.model.backbone)
        return dataclasses.replace(library, root=None, files={})
    return library


def _run(params: PipelineParams, layout: BuildLayout, tasks: list[TrackTask],
         lib: LibraryBuild, report: BuildReport, progress: bool
         ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Build ``tasks`` then the library's on one executor: ``(results, library results)``;
    Ctrl-C sets ``report.interrupted`` and keeps what finished."""
    results: dict[str, dict] = {}
    lib_results: dict[str, dict] = {}
    try:
        if tasks or lib.todo:
            with open_executor(params, warm_up=lambda: warm_up(params)) as executor:
                executor.check_shared(layout.root)
                run_tracks(tasks, executor, progress=progress, results=results)
                if lib.todo:
                    logger.info("%d library tracks to build (%d already cached)",
                                len(lib.todo), lib.cached_before)
                    run_tracks(lib.todo, executor, progress=progress,
                               results=lib_results, desc="build library")
    except KeyboardInterrupt:
        report.interrupted = True
    return results, lib_results


def _lengths(keys, old: dict[str, dict], new: dict[str, dict]) -> dict[str, float]:
    """``{key: seconds}`` of the built tracks among ``keys`` (this run's, else the last)."""
    entries = {**old, **new}
    return {k: entries[k]["seconds"] for k in sorted(keys)
            if entries.get(k, {}).get("seconds") is not None}


def _log_plan(params: PipelineParams, n_keys: int, n_todo: int, n_changed: int) -> None:
    if n_changed:
        logger.info("%d track(s) changed since they were cached: rebuilding them", n_changed)
    if n_todo:
        logger.info("%d tracks to build (%d already cached), %d workers (%s engine)", n_todo,
                    n_keys - n_todo, min(params.n_workers, n_todo), params.engine.kind)
    else:
        logger.info("nothing to do: all %d tracks are cached", n_keys)


def _split_and_record(params: PipelineParams, dataset: Dataset, layout: BuildLayout,
                      info: dict | None, resplit: bool, library: Library
                      ) -> tuple[dict, list[str]]:
    """Read the artists, make or reuse the split and write ``build_info.json`` (before any
    audio work). Returns ``(split, the summary's lines on the collection)``."""
    artists = collection_artists(dataset.files, params.split.groups_file)
    method, why = split_method(params.split, artists)
    split = prepare_split(params.split, dataset.tracks, layout, info, resplit, method, artists,
                          extra_train={c: sorted(v) for c, v in library.labelled.items()})
    settings = params.feature_settings()
    write_json(layout.info_file, {
        "stage": "build_dataset", "cache_format": cache.CACHE_FORMAT,
        "input_dir": str(dataset.root), "classes": list(dataset.classes),
        "fingerprint": cache.fingerprint(settings), "feature_settings": settings,
        "n_frames": params.n_frames, "n_mels": params.features.n_mels,
        "split_origin": split_origin(params.split), "split_method": method,
        "artists": artists}, tmp_dir=layout.tmp_dir)
    answered = frozenset(k for keys in library.labelled.values() for k in keys)
    return split, collection_lines(split, artists, method, why, answered)


def _finish(report: BuildReport, keys: list[str], split: dict, layout: BuildLayout,
            results: dict[str, dict], old: dict[str, dict], start: float) -> None:
    """Fill the report and write the manifest (atomically)."""
    where = split_of(split)
    tracks = {}
    for key in keys:
        entry = cache.manifest_entry(key, layout, results, old)
        tracks[key] = {**entry, "split": where[key]}  # a re-split moves cached tracks
        if entry["status"] == "done":
            report.tracks_per_split[where[key]] = report.tracks_per_split.get(where[key], 0) + 1
            report.snippets_per_split[where[key]] = (report.snippets_per_split.get(where[key], 0)
                                                     + entry["snippets"])
            if entry.get("notes"):
                report.notes[key] = entry["notes"]
        elif entry["status"] == "failed":
            report.failed[key] = entry["reason"]
        else:
            report.pending += 1
    for result in results.values():
        if result["status"] == "done":
            report.cached_now += 1
            report.sources[result["source"]] += 1
    report.seconds = time.monotonic() - start
    counts = Counter(t["status"] for t in tracks.values())
    write_json(layout.manifest_file, {
        "stage": "build_dataset", "complete": counts.get("pending", 0) == 0,
        "counts": {s: counts.get(s, 0) for s in ("done", "failed", "pending")},
        "snippets_per_split": report.snippets_per_split, "tracks": tracks},
        tmp_dir=layout.tmp_dir)
