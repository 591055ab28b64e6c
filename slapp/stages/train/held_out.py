"""Stage 3's figures on the held-out tracks (validation and test), and their files.

- **snippet** figures: the trained network on stage 2's arrays of those tracks (the
  snippets it was trained on the like of);
- **track** figures: each validation and test track labelled exactly as
  ``predict_track.py`` labels a file (:func:`slapp.stages.label.predict.predict_tracks`: decoded
  again, the bundle's ``"label"`` snippet plan, every snippet, the bundle's network, the sum
  of snippet scores), so the track accuracy that stage 3 reports is the one prediction gets
  on those files. A track that cannot be labelled now (moved since the build) is left out
  and said.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from slapp.models.inference import predict_probs
from slapp.stages.train.bundle import Bundle
from slapp.stages.label.evaluate import (label_metrics, plot_confusion, report_text,
                                   write_confusion_csv)
from slapp.store.atomic import atomic_write, read_json, write_json
from slapp.store.discovery import find_tracks
from slapp.store.layout import ArraysLayout, BundleLayout

logger = logging.getLogger("slapp.stages.train.training")

EVAL_SPLITS = ("val", "test")


def snippet_figures(score, arrays: ArraysLayout, x_files: dict[str, Path], classes: list[str]
                    ) -> dict[str, dict]:
    """``{part: snippet metrics}`` of ``score`` (rows → probabilities) on each non-empty
    held-out split (``x_files[part]``, else the arrays' ``<part>_X.npy``)."""
    out = {}
    for part in EVAL_SPLITS:
        x_file = x_files.get(part, arrays.array(part, "X"))
        if not x_file.exists():
            continue
        probs = score(np.load(x_file, mmap_mode="r"))
        out[part] = label_metrics(np.load(arrays.array(part, "y")), probs.argmax(axis=1),
                                  classes)
    return out


def track_figures(bundle: Bundle, arrays: ArraysLayout, input_dir: Path, parts,
                  heard: set[str] | None) -> dict[str, dict]:
    """``{part: track metrics}``: the held-out tracks of ``parts`` labelled by prediction
    with ``bundle``; ``heard`` (keys by artists also in training) adds the split by artist."""
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    tracks = read_json(arrays.tracks_file)["tracks"]
    try:
        files = find_tracks(input_dir).files
    except Exception:  # the collection moved: each track is looked for where it was
        files = {}
    classes, out = bundle.classes, {}
    for part in parts:
        entries = [t for t in tracks if t["split"] == part]
        paths = [str(files.get(t["key"], Path(input_dir) / t["key"])) for t in entries]
        # every track gets a class: these figures measure the classifier (none apart)
        results = predict_tracks(paths, bundle, PredictOptions(none_below=0.0),
                                 progress=False).results
        done = [(t, r) for t, r in zip(entries, results) if not r.error]
        if len(done) < len(entries):
            first = next(r for r in results if r.error)
            logger.warning("%s: %d of %d tracks could not be labelled now (%s: %s); the "
                           "track figures leave them out", part, len(entries) - len(done),
                           len(entries), first.path, first.error)
        truth = np.array([classes.index(t["class"]) for t, _ in done], dtype=np.int64)
        pred = np.array([classes.index(r.label) for _, r in done], dtype=np.int64)
        out[part] = label_metrics(truth, pred, classes)
        out[part]["labelled_as"] = "predict_track.py: every snippet, sum of snippet scores"
        out[part]["tracks"] = {t["key"]: {"label": r.label, "confidence": r.confidence}
                               for t, r in done}
        if heard is not None:
            known = np.array([t["key"] in heard for t, _ in done], dtype=bool)
            right = truth == pred
            out[part]["artists"] = {
                name: {"count": int(mask.sum()), "right": int(right[mask].sum())}
                for name, mask in (("heard", known), ("unheard", ~known))}
    return out


def evaluate_held_out(bundle: Bundle, score, arrays: ArraysLayout, x_files: dict[str, Path],
                      input_dir: Path, heard: set[str] | None) -> dict:
    """``{part: {"snippet": ..., "track": ...}}`` for each non-empty held-out split."""
    snippets = snippet_figures(score, arrays, x_files, bundle.classes)
    tracks = track_figures(bundle, arrays, input_dir, list(snippets), heard)
    return {part: {"snippet": snippets[part], "track": tracks[part]} for part in snippets}


def keras_scorer(model):
    """Rows → probabilities of a Keras model, eagerly in batches of 64."""
    return lambda x: predict_probs(model, x, batch_size=64)


def write_evaluation(folder: Path, metrics: dict, classes: list[str]) -> None:
    """``evaluation.json``, the confusion matrices (CSV, PNG) and ``report.txt``."""
    layout = BundleLayout(folder)
    for old in folder.glob("confusion_*"):
        old.unlink()
    write_json(layout.evaluation_file, metrics)
    texts = []
    for part, m in metrics.items():
        name = {"val": "validation", "test": "test"}[part]
        write_confusion_csv(layout.confusion_file(part, "csv"), m["track"]["confusion"],
                            classes)
        plot_confusion(layout.confusion_file(part, "png"), m["track"]["confusion"], classes,
                       f"{name} tracks (labelled as predict_track.py does): accuracy "
                       f"{m['track']['accuracy']:.2f}")
        texts.append(f"{name}: snippet accuracy {m['snippet']['accuracy']:.3f}, track "
                     f"accuracy {m['track']['accuracy']:.3f}, track macro-F1 "
                     f"{m['track']['macro_f1']:.3f}\n{report_text(m, classes)}\n")
    data = "\n".join(texts).encode("utf-8")
    atomic_write(layout.report_file, lambda f: f.write(data))
