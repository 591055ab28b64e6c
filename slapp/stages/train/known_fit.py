"""Stage 3's ``known`` reference (:mod:`slapp.models.known`): what the bundle keeps to tell
music of its classes from music of none of them, written as ``known.npz`` with its entry
in ``bundle.json``.

With an embedding (the musicnn backbones): every training track's mean embedding from
stage 2's cache, calibrated on music by artists the reference does not hold: each
training track against the training tracks by other artists; a track without an artist tag is taken to
share its artist with its whole class (the worst case: a class of one artist, as
gtzan-mini's blues), which errs towards labelling, not towards ``none``. Without an
embedding (the CRNN): the validation tracks' confidences, as stage 3 labelled them; such a
bundle shows ``known`` but labels ``none`` only when ``--none-below`` asks (the largest
probability separates other genres poorly: BENCHMARKS.md, issue 41)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from slapp.errors import StageError
from slapp.models.known import K, KnownModel, calibrate, track_vectors
from slapp.params import PipelineParams
from slapp.stages.process.embed import read_embedding
from slapp.store.atomic import write_npz
from slapp.store.layout import BundleLayout, output_layout
from slapp.store.unlabelled import library_layout

logger = logging.getLogger(__name__)


def _embeddings(params: PipelineParams, tracks: list[dict], splits: tuple[str, ...]
                ) -> tuple[list, list[str]]:
    """The cached embeddings of the tracks of ``splits`` (labelled, or answered in the
    library) and their keys."""
    layer = params.backbone.embedding_layer(params)
    name = params.backbone.name
    found, keys = [], []
    for t in tracks:
        if t["split"] not in splits:
            continue
        for layout in (output_layout(params), library_layout(params)):
            if layout.embedding_file(name, t["key"]).exists():
                found.append(read_embedding(layout, name, t["key"], layer))
                keys.append(t["key"])
                break
    return found, keys


def fit_known(params: PipelineParams, tracks: list[dict], artists: dict | None,
              metrics: dict) -> KnownModel | None:
    """The bundle's :class:`KnownModel`, or None when there is nothing to measure against
    (no cached embedding and no validation track)."""
    threshold = params.training.none_below
    if params.backbone.embedding_layer(params):
        found, keys = _embeddings(params, tracks, ("train",))
        if len(found) >= 2:
            ref = track_vectors(found)
            classes = {t["key"]: t["class"] for t in tracks}
            # no artist: the worst case, the whole class one artist (gtzan's blues is)
            names = [(artists or {}).get(k) or f"\0class {classes.get(k)}" for k in keys]
            return KnownModel(calibrate(ref, names, K), threshold, ref, K)
    val = metrics.get("val", {}).get("track", {}).get("tracks", {})
    confidences = [v["confidence"] for v in val.values() if v.get("confidence") is not None]
    if confidences:  # a confidence tells a new genre poorly (AUROC 0.45-0.90, BENCHMARKS):
        return KnownModel(np.array(confidences), 0.0)  # known shown, never none by itself
    logger.warning("no validation track to measure 'known' against: this bundle labels "
                   "every track with one of its classes (never none)")
    return None


def write_known(folder: Path, model: KnownModel | None) -> dict | None:
    """``known.npz`` and the ``bundle.json`` entry that describes it (None: none)."""
    path = BundleLayout(folder).known_file
    if model is None:
        path.unlink(missing_ok=True)
        return None
    try:
        write_npz(path, model.arrays())
    except OSError as exc:
        raise StageError(f"Cannot write '{path}': {exc}") from None
    return {"method": model.method, "threshold": model.threshold, "k": model.k,
            "calibration_tracks": len(model.calibration)}
