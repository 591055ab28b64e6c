"""Embeddings of the processed snippets through a frozen pretrained backbone, computed once.

For ``model.backbone = "musicnn-msd"`` the classifier is a small head on musicnn's
200-dimensional "penultimate" features (with ``model.musicnn.fine_tune``: on its 1506 pooled
features, the head starting with musicnn's own top layers). Stage 3 runs the frozen network once over each
split's ``<part>_X.npy`` (musicnn's input patches) and trains the head on the results, so
an epoch takes a fraction of a second. The embeddings live in
``<output_dir>/arrays/embeddings-<backbone>/<part>.npy`` (``<part>.pooled.npy``) beside a
``.json`` that
records which array they came from (its size and modification time); each file is written
atomically and a re-run reuses what matches, so an interrupted run loses at most one split.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from slapp.models.inference import batched
from slapp.store.atomic import atomic_write, read_json, write_json
from slapp.store.layout import ArraysLayout

logger = logging.getLogger(__name__)

BATCH = 64
LAYERS = {"penultimate": 1, "pooled": 2}  # outputs of slapp.models.musicnn.build_backbone


def source_key(x_file: Path) -> dict:
    st = x_file.stat()
    return {"source": x_file.name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def embed_rows(backbone, x: np.ndarray, *, layer: str = "penultimate", progress: bool = False,
               desc: str = "") -> np.ndarray:
    """Features ``(n, 200)`` (penultimate) or ``(n, 1506)`` (pooled) float32 of musicnn
    input rows ``(n, 187, 96)`` (a memory map is read :data:`BATCH` rows at a time)."""
    index = LAYERS[layer]
    return batched(lambda rows: backbone(rows, training=False)[index], x, BATCH,
                   width=int(backbone.outputs[index].shape[-1]), progress=progress, desc=desc)


def embed_arrays(arrays: ArraysLayout, backbone_name: str, parts: tuple[str, ...], *,
                 checkpoint: str, layer: str = "penultimate", progress: bool = False
                 ) -> dict[str, Path]:
    """``{part: embeddings file}`` for each part whose ``<part>_X.npy`` exists, computing
    those not yet embedded from the current arrays."""
    folder = arrays.embeddings(backbone_name)
    folder.mkdir(parents=True, exist_ok=True)
    files, backbone = {}, None
    for part in parts:
        x_file = arrays.array(part, "X")
        if not x_file.exists():
            continue
        stem = part if layer == "penultimate" else f"{part}.{layer}"
        out, meta = folder / f"{stem}.npy", folder / f"{stem}.json"
        key = source_key(x_file)
        if out.exists() and meta.exists() and read_json(meta) == key:
            files[part] = out
            continue
        if backbone is None:
            from slapp.models.musicnn import load_backbone

            backbone = load_backbone(checkpoint=checkpoint)
        x = np.load(x_file, mmap_mode="r")
        started = time.monotonic()
        emb = embed_rows(backbone, x, layer=layer, progress=progress,
                         desc=f"embedding {part}")
        seconds = time.monotonic() - started
        logger.info("embedded %d %s snippets with %s in %.1f s (%.0f snippets/s)", len(x),
                    part, backbone_name, seconds, len(x) / max(seconds, 1e-9))
        if meta.exists():
            meta.unlink()
        atomic_write(out, lambda f: np.save(f, emb))
        write_json(meta, key)  # last: it vouches for the .npy
        files[part] = out
    return files
