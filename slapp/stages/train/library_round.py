"""Stage 3's second round: the unlabelled library's tracks that the first model (and, with
``training.library.method`` "propagate", their neighbours) labels confidently join the
training snippets, and the head is trained again (:mod:`slapp.models.self_training`).

The round's training arrays are written once, atomically, under
``<output_dir>/training/round-1`` (``train_E.npy``, ``train_y.npy``, ``pseudo.json``),
and the round resumes like the first one. Validation and test stay labelled tracks only.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.models import self_training as st
from slapp.store.atomic import atomic_write, read_json, write_json
from slapp.store.layout import ArraysLayout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pseudo:
    """The second round's training inputs and what the summary says of them."""

    x_file: Path
    labels: np.ndarray
    joined: dict          # class → library tracks that joined training
    scored: int           # library tracks scored

    def line(self, settings) -> str:
        how = ("scores spread over each track's nearest neighbours, then "
               if settings.method == "propagate" else "")
        counts = ", ".join(f"{c} {n}" for c, n in sorted(self.joined.items()) if n)
        return (f"  library: {sum(self.joined.values())} of {self.scored} unlabelled tracks "
                f"joined training ({how}score >= {settings.min_confidence:g})"
                + (f": {counts}" if counts else "") + "; validation and test figures are "
                "on labelled tracks only")


def has_library(params, arrays: ArraysLayout) -> bool:
    """Whether stage 2 embedded a library for this run."""
    return (params.paths.unlabelled_dir is not None
            and arrays.library_file.exists() and arrays.array("library", "E").exists())


def uses_library(params, arrays: ArraysLayout) -> bool:
    """Whether stage 3 trains a second round on the library."""
    return params.training.library.method != "off" and has_library(params, arrays)


def suggest_from_library(params, arrays: ArraysLayout, model, classes: list[str]
                         ) -> list[str]:
    """Keep ``training.library.suggest`` library tracks waiting for a label in the labels
    file (``paths.labels_file``, else ``<output_dir>/to-label.csv``): the trained
    ``model``'s scores and the cached embeddings of each track pick the new ones
    (:mod:`slapp.stages.train.suggestions`). Returns the summary's lines."""
    from slapp.stages.label.outputs import TrackResult
    from slapp.stages.train.suggestions import unanswered, write_suggestions
    from slapp.store.unlabelled import library_layout

    want = params.training.library.suggest
    target = params.paths.labels_file or Path(params.paths.output_dir) / "to-label.csv"
    waiting = unanswered(target)
    if not want or not has_library(params, arrays):
        return []
    if waiting >= want:
        return [f"  {waiting} library track(s) in {target} still wait for a label"]
    lib_e = np.load(arrays.array("library", "E"))
    lib_t = np.load(arrays.array("library", "track"))
    keys = read_json(arrays.library_file)["keys"]
    scores = track_scores(model, lib_e, lib_t, len(keys))
    emb = st.track_means(lib_e, lib_t, len(keys))
    manifest = library_layout(params).manifest_file
    entries = read_json(manifest)["tracks"] if manifest.exists() else {}
    root = Path(params.paths.unlabelled_dir)
    results = [TrackResult(path=str(root / key), label=classes[int(np.argmax(row))],
                           confidence=float(np.max(row)),
                           scores={c: float(v) for c, v in zip(classes, row)},
                           seconds=entries.get(key, {}).get("seconds"),
                           embedding=e.tolist())
               for key, row, e in zip(keys, scores, emb)]
    try:
        done = write_suggestions(results, want - waiting, target,
                                 in_labels_file=params.paths.labels_file is not None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [f"  library: could not update {target} with tracks to label ({exc}); the "
                "bundle is written"]
    then = ("train again" if params.paths.labels_file else
            "set paths.labels_file to it and train again")
    return [f"  library: {len(done.new)} track(s) worth labelling next added to {target} "
            f"(listen: {done.playlist}); answer them with predict_track.py --answer "
            f"(a page) or in the label column, {then}"]


def track_scores(model, rows: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
    """Mean snippet probability per track ``(n_tracks, n_classes)`` of Keras ``model`` on
    embeddings ``rows`` ``(n, width)``."""
    from slapp.models.inference import predict_probs

    return st.track_means(predict_probs(model, rows, batch_size=256), track, n_tracks)


def library_scores(params, arrays: ArraysLayout, model, n_classes: int) -> np.ndarray:
    """Per library track ``(n_library, n_classes)``: the model's scores, propagated over
    the k-NN graph of the labelled training tracks (clamped to their class) and the
    library's tracks when the method is ``"propagate"``."""
    settings = params.training.library
    lib_e = np.load(arrays.array("library", "E"), mmap_mode="r")
    lib_t = np.load(arrays.array("library", "track"))
    n_lib = len(read_json(arrays.library_file)["keys"])
    scores = track_scores(model, np.asarray(lib_e, np.float32), lib_t, n_lib)
    if settings.method != "propagate":
        return scores
    tr_e = np.load(arrays.array("train", "E"), mmap_mode="r")
    tr_ids, tr_t = np.unique(np.load(arrays.array("train", "track")), return_inverse=True)
    tr_y = np.load(arrays.array("train", "y"))
    first = np.zeros(len(tr_ids), np.int64)
    first[tr_t[::-1]] = np.arange(len(tr_t))[::-1]  # a row of each track: its class
    emb = np.vstack([st.track_means(np.asarray(tr_e), tr_t, len(tr_ids)),
                     st.track_means(np.asarray(lib_e), lib_t, n_lib)])
    unit = st.unit_rows(emb, emb.mean(axis=0), emb.std(axis=0))
    prior = np.vstack([np.eye(n_classes)[tr_y[first]], scores])
    spread = st.propagate(prior, st.knn_graph(unit, settings.neighbours),
                          alpha=settings.alpha)
    return spread[len(tr_ids):]


def pseudo_label(params, arrays: ArraysLayout, model, classes: list[str], x_train: Path,
                 folder: Path) -> Pseudo:
    """Score the library, choose its confident tracks and write the second round's
    training arrays in ``folder`` (once: a resumed run reads them back)."""
    x_file, y_file, info_file = (folder / "train_E.npy", folder / "train_y.npy",
                                 folder / "pseudo.json")
    if info_file.exists() and x_file.exists() and y_file.exists():
        info = read_json(info_file)
        return Pseudo(x_file, np.load(y_file), info["joined"], info["scored"])
    folder.mkdir(parents=True, exist_ok=True)
    scores = library_scores(params, arrays, model, len(classes))
    keep, labels = st.pseudo_labels(scores, params.training.library.min_confidence)
    lib_t = np.load(arrays.array("library", "track"))
    rows = np.flatnonzero(np.isin(lib_t, keep))
    by_track = dict(zip(keep.tolist(), labels.tolist()))
    y = np.concatenate([np.load(arrays.array("train", "y")),
                        [by_track[int(t)] for t in lib_t[rows]]]).astype(np.int64)
    x = np.concatenate([np.load(x_train, mmap_mode="r"),
                        np.load(arrays.array("library", "E"), mmap_mode="r")[rows]])
    atomic_write(x_file, lambda f: np.save(f, x.astype(np.float32)), tmp_dir=folder)
    atomic_write(y_file, lambda f: np.save(f, y), tmp_dir=folder)
    keys = read_json(arrays.library_file)["keys"]
    joined = {c: int(np.sum(labels == i)) for i, c in enumerate(classes)}
    write_json(info_file, {"joined": joined, "scored": len(scores),
                           "tracks": {keys[t]: [classes[c], round(float(scores[t, c]), 4)]
                                      for t, c in zip(keep.tolist(), labels.tolist())}},
               tmp_dir=folder)
    return Pseudo(x_file, y, joined, len(scores))
