"""Stage 2, ``process_dataset.py``: feature cache → normalised, shuffled training arrays.

Reads the split and the cache of stage 1, computes normalisation statistics from the
training snippets only (one streaming pass), then writes per split ``X`` / ``y`` /
``track`` / ``start`` ``.npy`` files row by row with plain file writes (never the whole
array in memory, and no growing memory map either), so a cache larger than RAM works.

Every file is first written under ``output/.tmp``; only when all are complete are they
moved into ``output/arrays`` and the manifest, which is what later stages trust, is
written last. An interrupted run leaves no trusted file; a re-run starts over.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slapp.store import cache
from slapp.store.atomic import TMP_SUFFIX, atomic_write, read_json, remove_temp_files, write_json
from slapp.store.layout import ArraysLayout, BuildLayout, output_layout
from slapp.errors import StageError
from slapp.store.lock import output_lock
from slapp.dsp.normalization import RunningStats, apply
from slapp.params import PipelineParams
from slapp.store.split import SPLITS
from slapp.stages.process.embed import embed_cached_tracks, read_embedding
from slapp.stages.process.library import (embedding_signature, library_keys_to_embed,
                                          library_signature, write_library_arrays)

logger = logging.getLogger(__name__)

ARRAY_KINDS = ("X", "y", "track", "start")


@dataclass
class ProcessReport:
    arrays: ArraysLayout
    up_to_date: bool = False
    snippets: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, Counter] = field(default_factory=dict)
    skipped_failed: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0
    unit: str = "dB"  # of the features (the backbone's input)
    library: int = 0  # unlabelled library tracks embedded for training

    def summary(self) -> list[str]:
        if self.up_to_date:
            return [f"nothing to do: the arrays in '{self.arrays.root}' are up to date with "
                    "the cache and the parameters"]
        lines = [f"process finished in {self.seconds:.1f} s"]
        for part in SPLITS:
            n = self.snippets.get(part, 0)
            if not n:
                lines.append(f"  {part}: no snippets (no arrays written)")
                continue
            counts = self.per_class[part]
            share = {c: counts[c] / n for c in counts}
            lines.append(f"  {part}: {n} snippets; per class: "
                         + ", ".join(f"{c} {counts[c]}" for c in sorted(counts))
                         + f" (balance: smallest {min(share.values()):.1%}, largest "
                           f"{max(share.values()):.1%})")
        if self.skipped_failed:
            lines.append(f"left out {len(self.skipped_failed)} tracks that failed in the "
                         "build (--skip-failed)")
        s = self.stats
        u = self.unit
        lines.append(f"normalization '{s['method']}' from training snippets only: values "
                     f"{s['min']:.1f} to {s['max']:.1f} {u}; per-bin mean {min(s['mean']):.1f} "
                     f"to {max(s['mean']):.1f} {u}, std {min(s['std']):.2f} to "
                     f"{max(s['std']):.2f} {u}")
        if self.library:
            lines.append(f"  library: {self.library} unlabelled tracks embedded for training "
                         "(paths.unlabelled_dir; never in validation or test)")
        size = sum(p.stat().st_size for p in self.arrays.root.glob("*.npy"))
        lines.append(f"arrays: {self.arrays.root} ({size / 1e6:.1f} MB); statistics: "
                     f"{self.arrays.stats_file}")
        return lines


def _included_tracks(layout: BuildLayout, split: dict, skip_failed: bool
                     ) -> tuple[dict[str, list[tuple[str, str, int]]], list[str]]:
    """Per split, ``(key, class, n_snippets)`` of the tracks to use; and skipped failures."""
    if not layout.manifest_file.exists():
        raise StageError(f"No finished build in '{layout.root}' (no "
                         f"{layout.manifest_file.name}). Run build_dataset.py first.")
    tracks = read_json(layout.manifest_file).get("tracks", {})
    chosen: dict[str, list] = {part: [] for part in SPLITS}
    pending, failed = [], []
    for name in sorted(split):
        for part in SPLITS:
            for key in split[name][part]:
                entry = tracks.get(key, {"status": "pending"})
                if entry["status"] == "done" and not layout.track_file(key).exists():
                    entry = {"status": "pending"}
                if entry["status"] == "done":
                    chosen[part].append((key, name, int(entry["snippets"])))
                elif entry["status"] == "failed":
                    failed.append(f"{key} ({entry.get('reason', 'failed')})")
                else:
                    pending.append(key)
    if pending:
        shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5
                                          else "")
        raise StageError(f"The build is incomplete: {len(pending)} track(s) are not cached "
                         f"({shown}). Run build_dataset.py to finish it.")
    if failed and not skip_failed:
        shown = "; ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5
                                         else "")
        raise StageError(f"{len(failed)} track(s) failed in the build: {shown}. Fix or remove "
                         "them and re-run build_dataset.py, or run process_dataset.py "
                         "--skip-failed to go on without them.")
    return chosen, failed


def _inputs_signature(layout: BuildLayout, info: dict, params: PipelineParams,
                      chosen: dict) -> dict:
    # each track's source stamp: a track rebuilt from a changed file changes the arrays
    entries = read_json(layout.manifest_file).get("tracks", {})
    stamps = {key: entries.get(key, {}).get("file") for rows in chosen.values()
              for key, _, _ in rows}
    listing = json.dumps([chosen, stamps], sort_keys=True).encode("utf-8")
    return {"build_fingerprint": info["fingerprint"],
            "split_sha256": hashlib.sha256(layout.split_file.read_bytes()).hexdigest(),
            "tracks_sha256": hashlib.sha256(listing).hexdigest(),
            "normalization": params.process.normalization, "seed": params.process.seed}


class _RowWriter:
    """Writes rows of a ``(n, *row_shape)`` float32 ``.npy`` file in any order."""

    def __init__(self, path: Path, n: int, row_shape: tuple[int, ...]):
        self.row_bytes = int(np.prod(row_shape)) * 4
        self.f = open(path, "wb")
        header = {"descr": "<f4", "fortran_order": False, "shape": (n, *row_shape)}
        np.lib.format.write_array_header_2_0(self.f, header)
        self.offset = self.f.tell()
        self.f.truncate(self.offset + n * self.row_bytes)
        self.fd = self.f.fileno()

    def write(self, rows: np.ndarray, positions: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype="<f4")
        if len(positions) and np.all(np.diff(positions) == 1):
            os.pwrite(self.fd, rows.tobytes(), self.offset + int(positions[0]) * self.row_bytes)
            return
        for row, pos in zip(rows, positions):
            os.pwrite(self.fd, row.tobytes(), self.offset + int(pos) * self.row_bytes)

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.fd)
        self.f.close()


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array), tmp_dir=path.parent)


def _read(layout: BuildLayout, key: str, fingerprint: str, n: int, shape: tuple[int, int]
          ) -> tuple[np.ndarray, np.ndarray]:
    mel, starts = cache.read_track(layout, key, fingerprint=fingerprint)
    if mel.shape != (n, *shape):
        raise StageError(f"Cache file '{layout.track_file(key)}' holds an array of shape "
                         f"{mel.shape}, expected {(n, *shape)} from the build manifest. Delete "
                         "it and run build_dataset.py again to rebuild just that track.")
    return mel, starts


def _with_embedding(read, layout: BuildLayout, backbone: str, layer: str, key: str, *,
                    n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``read``'s ``(mel, starts)`` of a track and its cached embedding ``(n, width)``."""
    mel, starts = read(key, n=n)
    emb = read_embedding(layout, backbone, key, layer)
    if len(emb) != len(mel):
        raise StageError(f"Embedding file '{layout.embedding_file(backbone, key)}' has "
                         f"{len(emb)} rows for {len(mel)} snippets. Delete it and run "
                         "process_dataset.py again.")
    return mel, starts, emb


def process_dataset(params: PipelineParams, *, skip_failed: bool = False,
                    progress: bool = True) -> ProcessReport:
    """Run stage 2 (see the module docstring)."""
    start_time = time.monotonic()
    layout = output_layout(params)
    arrays = layout.arrays
    if not layout.info_file.exists() or not layout.split_file.exists():
        raise StageError(f"No build found in '{layout.root}'. Run build_dataset.py first.")
    with output_lock(layout.root, "process_dataset.py"):
        info = read_json(layout.info_file)
        fingerprint = _check_fingerprint(info, params)
        chosen, failed = _included_tracks(layout, read_json(layout.split_file), skip_failed)
        _check_train_classes(chosen)
        layer = params.backbone.embedding_layer(params)
        lib_layout, lib_keys = library_keys_to_embed(params, layer)
        signature = {**_inputs_signature(layout, info, params, chosen),
                     "embedding": embedding_signature(params, layout, layer),
                     "library": library_signature(lib_layout, lib_keys)}
        report = ProcessReport(arrays=arrays, skipped_failed=failed,
                               unit=params.backbone.feature_unit)
        if _up_to_date(arrays, signature):
            report.up_to_date = True
            return report
        layout.tmp_dir.mkdir(parents=True, exist_ok=True)
        remove_temp_files(layout.tmp_dir)
        shape = (int(info["n_frames"]), int(info["n_mels"]))
        read = functools.partial(_read, layout, fingerprint=fingerprint, shape=shape)
        if layer:
            embed_cached_tracks(params, layout, [k for part in SPLITS for k, _, _ in
                                                 chosen[part]], progress=progress)
            read = functools.partial(_with_embedding, read, layout, params.backbone.name,
                                     layer)
        if lib_keys:  # before any array is replaced: an interrupted embedding loses nothing
            embed_cached_tracks(params, lib_layout, lib_keys, progress=progress,
                                backbone_file=layout.backbone_file(params.backbone.name),
                                what="library ")
        report.stats = _train_statistics(chosen["train"], read, shape[1], params, progress)
        track_ids = {key: i for i, (key, _, _) in enumerate(
            t for part in SPLITS for t in chosen[part])}
        classes = list(info["classes"])
        files = _write_arrays(layout, chosen, read, shape, report, classes, track_ids,
                              params.process.seed, progress)
        files += write_library_arrays(layout, lib_layout, lib_keys, params.backbone.name, layer)
        report.library = len(lib_keys)
        write_json(arrays.stats_file, report.stats, tmp_dir=layout.tmp_dir)
        write_json(arrays.tracks_file, {
            "classes": classes,
            "tracks": [{"id": track_ids[key], "key": key, "class": name, "split": part,
                        "snippets": n} for part in SPLITS for key, name, n in chosen[part]]},
            tmp_dir=layout.tmp_dir)
        write_json(arrays.classes_file, classes, tmp_dir=layout.tmp_dir)
        report.seconds = time.monotonic() - start_time
        write_json(arrays.manifest_file, {  # last: it vouches for the rest
            "stage": "process_dataset", "complete": True, "inputs": signature,
            "classes": classes, "snippet_shape": list(shape), "snippets": report.snippets,
            "files": files + [arrays.stats_file.name, arrays.tracks_file.name,
                              arrays.classes_file.name]},
            tmp_dir=layout.tmp_dir)
    return report


def _check_fingerprint(info: dict, params: PipelineParams) -> str:
    """The current feature fingerprint; refuses a cache built with other settings."""
    fingerprint = cache.fingerprint(params.feature_settings())
    if info.get("fingerprint") != fingerprint:
        changes = cache.changed_settings(info.get("feature_settings", {}),
                                         params.feature_settings())
        raise StageError("The cache was built with other parameters than the current "
                         f"ones ({'; '.join(changes)}). Run build_dataset.py --rebuild, "
                         "or restore the old values.")
    return fingerprint


def _check_train_classes(chosen: dict) -> None:
    train_classes = sorted({name for _, name, _ in chosen["train"]})
    if len(train_classes) < 2:
        raise StageError(f"The training split holds snippets of {len(train_classes)} "
                         f"class(es) ({', '.join(train_classes) or 'none'}). Expected at "
                         "least 2: build a dataset with two or more classes.")


def _up_to_date(arrays: ArraysLayout, signature: dict) -> bool:
    if not arrays.manifest_file.exists():
        return False
    old = read_json(arrays.manifest_file)
    return bool(old.get("complete") and old.get("inputs") == signature
                and all(Path(arrays.root / f).exists() for f in old.get("files", [])))


def _train_statistics(items: list, read, n_mels: int, params: PipelineParams,
                      progress: bool) -> dict:
    """Pass 1: normalisation statistics from the training snippets only."""
    f = params.features
    floor_db = 10 * np.log10(f.log_amin / f.log_reference)
    acc = RunningStats(n_mels=n_mels, floor_db=float(floor_db) + 1e-3)
    for key, _, n in tqdm(items, desc="statistics (train)", unit="track",
                          disable=not progress):
        acc.update(read(key, n=n)[0])
    return acc.finish(params.process.normalization)


def _write_arrays(layout: BuildLayout, chosen: dict, read, shape: tuple[int, int],
                  report: ProcessReport, classes: list[str], track_ids: dict, seed: int,
                  progress: bool) -> list[str]:
    """Pass 2: every split's arrays under ``.tmp``, the training snippets shuffled, then
    moved into ``arrays/`` together (the old manifest removed first); their names."""
    arrays, stats = layout.arrays, report.stats
    tmp_files: dict[Path, Path] = {}
    try:
        for part in SPLITS:
            items = chosen[part]
            n_total = sum(n for _, _, n in items)
            report.snippets[part] = n_total
            report.per_class[part] = Counter()
            if n_total == 0:
                continue
            order = (np.random.default_rng(seed).permutation(n_total) if part == "train"
                     else np.arange(n_total))
            first = read(items[0][0], n=items[0][2])
            kinds = ARRAY_KINDS + (("E",) if len(first) == 3 else ())
            tmp = {kind: layout.tmp_dir / f"{part}_{kind}.npy{TMP_SUFFIX}" for kind in kinds}
            tmp_files.update({tmp[k]: arrays.array(part, k) for k in kinds})
            columns = {"y": np.empty(n_total, np.int64), "track": np.empty(n_total, np.int32),
                       "start": np.empty(n_total, np.float32)}
            writer = _RowWriter(tmp["X"], n_total, shape)
            emb_writer = (_RowWriter(tmp["E"], n_total, first[2].shape[1:])
                          if "E" in kinds else None)
            offset = 0
            for key, name, n in tqdm(items, desc=f"write {part}", unit="track",
                                     disable=not progress):
                mel, starts, *emb = read(key, n=n)
                pos = order[offset:offset + n]
                writer.write(apply(mel, stats), pos)
                if emb_writer is not None:
                    emb_writer.write(emb[0], pos)
                columns["y"][pos] = classes.index(name)
                columns["track"][pos] = track_ids[key]
                columns["start"][pos] = starts
                report.per_class[part][name] += n
                offset += n
            writer.close()
            if emb_writer is not None:
                emb_writer.close()
            for kind, values in columns.items():
                _save_npy(tmp[kind], values)
        if arrays.manifest_file.exists():
            arrays.manifest_file.unlink()
        arrays.root.mkdir(parents=True, exist_ok=True)
        for old_file in arrays.root.glob("*.npy"):
            if old_file not in tmp_files.values():
                old_file.unlink()  # e.g. a split that is empty now
        for src, dst in tmp_files.items():
            os.replace(src, dst)
    finally:
        for src in tmp_files:
            if src.exists():
                src.unlink()
    return sorted(p.name for p in tmp_files.values())
