"""Per-track embeddings of a frozen backbone, cached like the spectrograms.

For a pretrained backbone (``musicnn-msd``, ``musicnn-mtt``) the network that stage 3 trains
is a small head on the backbone's embedding, so the backbone's work is done once per
track, like the spectrogram, as per-track work on the executor (the local process pool
or Dask): each worker loads the ONNX backbone (:mod:`slapp.models.backbone_onnx`) once,
reads a track's cached snippets, runs them in batches of :data:`BATCH` and writes
``<output_dir>/embeddings/<backbone>/<key>.npz`` (``penultimate`` ``(n, 200)``,
``pooled`` ``(n, 1506)``, float32, rows in the cache file's snippet order) atomically,
recording the cache file's size and modification time. A re-run, after Ctrl-C or kill -9,
embeds only the tracks without a matching file: the same arrays as one uninterrupted run.
No process here imports TensorFlow; the network runs on the one runtime
(:mod:`slapp.models.runtime`, ``engine.runtime`` at full precision: the embeddings are
training data, the same on every machine), checked against onnxruntime first.
"""

from __future__ import annotations

import logging
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slapp import signals
from slapp.errors import StageError
from slapp.executor import open_executor
from slapp.models.backbone_onnx import OUTPUTS, ensure_backbone
from slapp.store.atomic import write_npz
from slapp.store.cache import file_digest, source_stat
from slapp.store.layout import BuildLayout

logger = logging.getLogger(__name__)

BATCH = 4  # snippets per network call: musicnn's activations are ~30 MB a snippet


@dataclass(frozen=True)
class EmbedTask:
    """One track to embed: everything a worker needs, explicitly."""

    key: str
    cache_file: Path
    out_file: Path
    backbone_file: Path
    tmp_dir: Path
    backbone: str = ""  # backbone_id of backbone_file
    engine: str = "auto"  # engine.runtime: resolved on the worker's own CPU, at f32


def _network(task: EmbedTask):
    """The worker's backbone network: one thread (the executor runs one worker per core),
    full precision (the embeddings are training data, the same on every machine)."""
    from slapp.models.runtime import network, resolve

    return network(task.backbone_file, resolve(task.engine).exact, threads=1, batch=BATCH)


def backbone_id(path: Path) -> str:
    """A short digest of the ONNX backbone file: what each embedding records, so that a
    re-exported or replaced backbone re-embeds every track instead of mixing two."""
    return file_digest(path)


def sample_track(layout: BuildLayout) -> Path | None:
    """A cached track of the build (real snippets to check the backbone's export on)."""
    return next(iter(sorted(layout.cache_dir.glob("*.npz"))), None)


def backbone_for(params, layout: BuildLayout, backbone_file: Path | None = None) -> Path:
    """The build's ONNX backbone (``backbone_file``, default ``layout``'s), made first when
    missing, checked against Keras on the build's own snippets."""
    backbone = params.backbone
    return ensure_backbone(backbone.checkpoint,
                           backbone_file or layout.backbone_file(backbone.name),
                           sample_track(layout))


def check_backbone(path: Path, engine: str, sample: Path | None) -> None:
    """Open ``path`` once here on ``engine`` and, for a backend other than the reference,
    compare its embeddings with onnxruntime's on ``sample``'s snippets (relative
    :data:`~slapp.models.backbone_onnx.TOLERANCE`): a backbone that will not open is one error
    naming it (not one failure per track blaming its cache file); a backend that differs
    is a :class:`StageError` naming both."""
    from slapp.models.backbone_onnx import TOLERANCE, check_patches
    from slapp.models.engine_check import relative_difference
    from slapp.models.runtime import REFERENCE, network, resolve

    choice = resolve(engine).exact
    try:
        reference = network(path, REFERENCE, threads=1)
        chosen = network(path, choice, threads=1)
    except StageError as exc:
        raise StageError(f"The ONNX backbone '{path}' cannot be opened ({exc}). Delete it "
                         "and run process_dataset.py again: it is made anew.") from None
    if chosen is reference:
        return
    x = check_patches(sample)
    diff = max(relative_difference(g, e) for g, e in zip(chosen.outputs(x),
                                                          reference.outputs(x)))
    if not diff <= TOLERANCE:
        raise StageError(f"{choice.name} gives embeddings {diff:.2g} (relative) away from "
                         f"{REFERENCE.name}'s on '{path}'; set engine.runtime to onnxruntime.")
    logger.info("%s checked against %s on %d snippets: embeddings within %.1g (relative)",
                choice.name, REFERENCE.name, len(x), diff)


def embed_rows(net, x: np.ndarray) -> dict[str, np.ndarray]:
    """``{output: (n, width) float32}`` of the backbone ``net`` (a runtime
    :class:`~slapp.models.runtime.Network`) on input patches ``x`` ``(n, 187, 96)``."""
    return dict(zip(OUTPUTS, net.outputs(x)))


def embed_track(task: EmbedTask) -> dict:
    """Embed one cached track and store it; never raises for a bad cache file."""
    try:
        source = source_stat(task.cache_file)
        with np.load(task.cache_file, allow_pickle=False) as data:
            mel = data["mel"]
        arrays = embed_rows(_network(task), mel)
    except Exception as exc:  # a damaged cache file: that track, not the run
        return {"key": task.key, "status": "failed",
                "reason": f"cannot embed '{task.cache_file}' ({type(exc).__name__}: {exc}); "
                          "delete it and run build_dataset.py again"}
    arrays["source"] = np.array(source, np.int64)
    arrays["backbone"] = np.array(task.backbone)
    try:
        write_npz(task.out_file, arrays, tmp_dir=task.tmp_dir)
    except OSError as exc:
        return {"key": task.key, "status": "write_error",
                "reason": f"cannot write '{task.out_file}': {exc.strerror or exc}"}
    return {"key": task.key, "status": "done", "snippets": int(len(mel))}


def _lost(task: EmbedTask, kills: int) -> dict:
    return {"key": task.key, "status": "failed",
            "reason": f"it stopped the worker process {kills} times"}


def is_current(out_file: Path, cache_file: Path, backbone: str) -> bool:
    """Whether ``out_file`` exists and was made from ``cache_file`` as it is now, by the
    backbone whose :func:`backbone_id` is ``backbone``."""
    try:
        with np.load(out_file, allow_pickle=False) as data:
            return ([int(v) for v in data["source"]] == source_stat(cache_file)
                    and "backbone" in data.files and str(data["backbone"]) == backbone)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False


def embed_cached_tracks(params, layout: BuildLayout, keys: list[str], *,
                        progress: bool = True, backbone_file: Path | None = None,
                        what: str = "") -> Path:
    """Embed every track of ``keys`` (cached by the build) that has no current embedding,
    on the executor of ``params.engine``; returns the embeddings' folder. Raises
    :class:`StageError` naming the tracks that could not be embedded. ``backbone_file``:
    the ONNX backbone to use (default: ``layout``'s, made when missing); ``what``: how
    the progress bar and log name these tracks."""
    from slapp.models.runtime import resolve

    backbone = params.backbone
    folder = layout.embedding_dir(backbone.name)
    onnx = backbone_for(params, layout, backbone_file)
    made_by, engine = backbone_id(onnx), params.engine.runtime
    tasks = [EmbedTask(k, layout.track_file(k), layout.embedding_file(backbone.name, k),
                       onnx, layout.tmp_dir, made_by, engine) for k in keys
             if not is_current(layout.embedding_file(backbone.name, k), layout.track_file(k),
                               made_by)]
    if not tasks:
        return folder
    check_backbone(onnx, engine, tasks[0].cache_file)
    started, failed = time.monotonic(), {}
    n_snippets = 0
    with open_executor(params) as executor, tqdm(
            total=len(tasks), unit="track", desc=f"embedding {what}({backbone.name})",
            disable=not progress, dynamic_ncols=True) as bar:
        executor.check_shared(layout.root)
        for result in executor.map_unordered(embed_track, tasks, on_lost=_lost):
            signals.check()  # a Ctrl-C lost in a finaliser: stop at the next track
            if result["status"] == "write_error":
                raise StageError(result["reason"] + ". Free space or fix permissions, then "
                                 "run again: embedded tracks are kept.")
            if result["status"] == "failed":
                failed[result["key"]] = result["reason"]
                logger.warning("%s: %s", result["key"], result["reason"])
            n_snippets += result.get("snippets", 0)
            bar.update(1)
    seconds = time.monotonic() - started
    logger.info("embedded %d %stracks (%d snippets) with %s on %s in %.1f s "
                "(%.0f snippets/s); %d already embedded", len(tasks) - len(failed), what,
                n_snippets, backbone.name, resolve(engine).exact.name, seconds,
                n_snippets / max(seconds, 1e-9),
                len(keys) - len(tasks))
    if failed:
        first = next(iter(failed.values()))
        raise StageError(f"{len(failed)} track(s) could not be embedded; the first: {first}")
    return folder


def read_embedding(layout: BuildLayout, backbone: str, key: str, layer: str) -> np.ndarray:
    """A track's cached embedding ``(n_snippets, width)`` float32 of ``layer``
    (``penultimate`` or ``pooled``)."""
    path = layout.embedding_file(backbone, key)
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[layer]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StageError(f"Embedding file '{path}' is unreadable ({exc}). Delete it and "
                         "run process_dataset.py again.") from None
