"""Stage 2's embedding inputs beside the arrays: which backbone file the embeddings come
from (its digest is part of the arrays' signature) and the unlabelled library's tracks,
embedded for training and written as ``library_E.npy`` / ``library_track.npy``."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from slapp.errors import StageError
from slapp.params import PipelineParams
from slapp.stages.build.library import library_keys
from slapp.stages.process.embed import backbone_for, backbone_id, read_embedding
from slapp.store.atomic import atomic_write, read_json, write_json
from slapp.store.layout import BuildLayout
from slapp.store.unlabelled import library_layout

logger = logging.getLogger(__name__)


def embedding_signature(params: PipelineParams, layout: BuildLayout, layer: str | None
                         ) -> str | None:
    """Which embedding the arrays hold: backbone, layer and the ONNX file's digest (made
    first if missing), so that a replaced backbone remakes the arrays."""
    if not layer:
        return None
    name = params.backbone.name
    return f"{name}:{layer}:{backbone_id(backbone_for(params, layout))}"


def library_keys_to_embed(params: PipelineParams, layer: str | None
                          ) -> tuple[BuildLayout, list[str]]:
    """The library's build layout and its cached tracks (none without
    ``paths.unlabelled_dir``, or with a backbone that trains on no embedding)."""
    lib_layout = library_layout(params)
    if params.paths.unlabelled_dir is None:
        return lib_layout, []
    if not layer:
        logger.warning("paths.unlabelled_dir is set, but the %s backbone does not learn "
                       "from an unlabelled library (the musicnn backbones do): ignored",
                       params.model.backbone)
        return lib_layout, []
    manifest = (read_json(lib_layout.manifest_file) if lib_layout.manifest_file.exists()
                else {})
    if not manifest.get("complete"):
        raise StageError(f"The library's build in '{lib_layout.root}' is missing or "
                         "incomplete (paths.unlabelled_dir). Run build_dataset.py to finish "
                         "it.")
    return lib_layout, library_keys(lib_layout)


def library_signature(lib_layout: BuildLayout, keys: list[str]) -> str | None:
    if not keys:
        return None
    entries = read_json(lib_layout.manifest_file)["tracks"]
    listing = json.dumps([[k, entries[k].get("file")] for k in keys]).encode("utf-8")
    return hashlib.sha256(listing).hexdigest()


def write_library_arrays(layout: BuildLayout, lib_layout: BuildLayout, keys: list[str],
                         backbone: str, layer: str) -> list[str]:
    """``library_E.npy`` (snippets, width), ``library_track.npy`` (snippets,) index into
    ``library.json``'s keys; each file written atomically. Their names (none without a
    library)."""
    if not keys:
        return []
    arrays = layout.arrays
    parts = [read_embedding(lib_layout, backbone, k, layer) for k in keys]
    emb = np.concatenate(parts).astype(np.float32)
    track = np.concatenate([np.full(len(p), i, np.int32) for i, p in enumerate(parts)])
    for kind, array in (("E", emb), ("track", track)):
        path = arrays.array("library", kind)
        atomic_write(path, lambda f, a=array: np.save(f, a), tmp_dir=path.parent)
    write_json(arrays.library_file, {"keys": keys, "snippets": [len(p) for p in parts]},
               tmp_dir=layout.tmp_dir)
    return [arrays.array("library", "E").name, arrays.array("library", "track").name,
            arrays.library_file.name]
