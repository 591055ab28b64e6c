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
No process here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
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
from slapp.store.cache import source_stat
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


_SESSIONS: dict[Path, object] = {}  # this process's backbone session


def _session(path: Path):
    if path not in _SESSIONS:
        from slapp.models.portable import open_session

        _SESSIONS.clear()
        # one thread: the executor runs one worker per core
        _SESSIONS[path] = open_session(path, threads=1)
    return _SESSIONS[path]


def backbone_id(path: Path) -> str:
    """A short digest of the ONNX backbone file: what each embedding records, so that a
    re-exported or replaced backbone re-embeds every track instead of mixing two."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_backbone(path: Path) -> None:
    """Open ``path`` once here: a backbone file that will not open is one error naming it
    (not one failure per track blaming its cache file)."""
    from slapp.models.portable import open_session

    try:
        open_session(path, threads=1)
    except Exception as exc:  # onnxruntime's errors: InvalidProtobuf, Fail, ...
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise StageError(f"The ONNX backbone '{path}' cannot be opened ({first}). Delete it "
                         "and run process_dataset.py again: it is made anew.") from None


def embed_rows(session, x: np.ndarray, batch: int = BATCH) -> dict[str, np.ndarray]:
    """``{output: (n, width) float32}`` of the backbone on input patches ``x``
    ``(n, 187, 96)``, ``batch`` rows per call."""
    name = session.get_inputs()[0].name
    parts: dict[str, list] = {o: [] for o in OUTPUTS}
    for i in range(0, len(x), batch):
        rows = np.ascontiguousarray(x[i:i + batch], dtype=np.float32)
        for out, value in zip(OUTPUTS, session.run(None, {name: rows})):
            parts[out].append(value)
    return {o: np.concatenate(v).astype(np.float32, copy=False) for o, v in parts.items()}


def embed_track(task: EmbedTask) -> dict:
    """Embed one cached track and store it; never raises for a bad cache file."""
    try:
        source = source_stat(task.cache_file)
        with np.load(task.cache_file, allow_pickle=False) as data:
            mel = data["mel"]
        arrays = embed_rows(_session(task.backbone_file), mel)
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
    backbone = params.backbone
    folder = layout.embedding_dir(backbone.name)
    onnx = ensure_backbone(backbone.checkpoint,
                           backbone_file or layout.backbone_file(backbone.name))
    made_by = backbone_id(onnx)
    tasks = [EmbedTask(k, layout.track_file(k), layout.embedding_file(backbone.name, k),
                       onnx, layout.tmp_dir, made_by) for k in keys
             if not is_current(layout.embedding_file(backbone.name, k), layout.track_file(k),
                               made_by)]
    if not tasks:
        return folder
    check_backbone(onnx)
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
    logger.info("embedded %d %stracks (%d snippets) with %s on onnxruntime in %.1f s "
                "(%.0f snippets/s); %d already embedded", len(tasks) - len(failed), what,
                n_snippets, backbone.name, seconds, n_snippets / max(seconds, 1e-9),
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
