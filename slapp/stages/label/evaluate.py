"""Figures of a labelling: metrics, confusion matrices, curves, artist lines.

Track-level labels come from summing each track's snippet scores (the divide & conquer
step, :func:`slapp.dsp.aggregate.aggregate`). Metrics are scikit-learn's; figures matplotlib's
(Agg backend, no display needed). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from slapp.store.atomic import atomic_write


def label_metrics(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, count, the per-class report and the confusion matrix (rows
    true, columns predicted) of int labels ``predicted`` against ``truth`` (JSON-ready)."""
    from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix,
                                 f1_score)

    index = list(range(len(classes)))
    if not len(truth):
        return {"count": 0, "accuracy": 0.0, "macro_f1": 0.0, "report": {},
                "confusion": [[0] * len(classes) for _ in classes]}
    return {"count": int(len(truth)),
            "accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, labels=index, average="macro",
                                       zero_division=0)),
            "report": classification_report(truth, predicted, labels=index,
                                            target_names=classes, output_dict=True,
                                            zero_division=0),
            "confusion": confusion_matrix(truth, predicted, labels=index).tolist()}


def report_text(metrics: dict, classes: list[str]) -> str:
    """A per-class precision/recall/F1 table at track level (plain text)."""
    rep = metrics["track"]["report"]
    if not rep:
        return "(no track could be labelled)"
    width = max(12, *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  precision  recall  f1-score  tracks"]
    for name in classes + ["macro avg"]:
        r = rep[name]
        lines.append(f"{name:<{width}}  {r['precision']:9.2f}  {r['recall']:6.2f}  "
                     f"{r['f1-score']:8.2f}  {int(r['support']):6d}")
    return "\n".join(lines)


def write_confusion_csv(path: Path, confusion: list[list[int]], classes: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, confusion):
        writer.writerow([name, *row])
    data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as a PNG, atomically."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))


def plot_confusion(path: Path, confusion: list[list[int]], classes: list[str],
                   title: str) -> None:
    """Confusion matrix PNG (counts; rows true class, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 3 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ConfusionMatrixDisplay(np.asarray(confusion), display_labels=classes).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
    ax.set_title(title)
    save_figure(fig, path)


def plot_curves(path: Path, history: list[dict]) -> None:
    """Loss and accuracy per epoch (training and validation) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(row["epoch"]) + 1 for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            values = [float(row[key]) for row in history if row.get(key) not in (None, "")]
            if len(values) == len(epochs):
                ax.plot(epochs, values, style, marker="o", markersize=3,
                        label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("loss (categorical cross-entropy)")
    axes[1].set_title("snippet accuracy")
    save_figure(fig, path)


def artist_line(split: dict | None) -> str:
    """Whether a split's track accuracy was measured on artists heard in training."""
    if not split:
        return ("artists unknown (no artist tags): if a class is mostly one artist, this "
                "figure flatters; expect less on new music")
    heard, unheard = split["heard"], split["unheard"]
    if not heard["count"]:
        return (f"all {unheard['count']} tracks are by artists not in training (or "
                "untagged): the figure to expect on new music")
    parts = [f"on {unheard['count']} tracks by artists not in training (or untagged): "
             f"{unheard['right']} right" if unheard["count"] else "no track by an artist "
             "outside training",
             f"on {heard['count']} by artists also in training: {heard['right']} right "
             "(these say how well it knows those artists, not the genre)"]
    return "; ".join(parts)


def folder_truth(results, classes: list[str]) -> dict:
    """Compare labels with the class each track's folder names (``--evaluate``).

    ``results``: :class:`~slapp.stages.label.predict.TrackResult` list. Returns ``{"right", "count",
    "confusion" (rows true, columns predicted), "skipped": [path, ...] (failed, or a folder
    that is no class), "none": {"class": tracks of a class folder labelled none, "other":
    tracks of other folders labelled none}}``; tracks labelled none are in no other count.
    """
    index = {name: i for i, name in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    skipped, none = [], {"class": 0, "other": 0}
    for r in results:
        truth = Path(r.path).parent.name
        if not r.error and r.label not in index:  # "none": reported apart
            none["class" if truth in index else "other"] += 1
            continue
        if r.error or truth not in index:
            skipped.append(r.path)
            continue
        confusion[index[truth], index[r.label]] += 1
    return {"right": int(np.trace(confusion)), "count": int(confusion.sum()),
            "confusion": confusion.tolist(), "skipped": skipped, "none": none}


def split_by_artist(results, classes: list[str], training_artists: list[str]) -> dict:
    """The tracks :func:`folder_truth` counts, split by whether the artist tag of each is
    one of ``training_artists`` (case-blind; an untagged track counts as not heard):
    ``{"heard"|"unheard": {"count", "right"}}``, as stage 3's ``track.artists``."""
    from slapp.store.artists import read_artist

    known = {a.casefold() for a in training_artists}
    out = {"heard": {"count": 0, "right": 0}, "unheard": {"count": 0, "right": 0}}
    for r in results:
        truth = Path(r.path).parent.name
        if r.error or truth not in classes:
            continue
        artist = read_artist(r.path)
        side = out["heard" if artist and artist.casefold() in known else "unheard"]
        side["count"] += 1
        side["right"] += int(r.label == truth)
    return out


def confusion_lines(confusion: list[list[int]], classes: list[str], top: int = 3
                    ) -> list[str]:
    """``["techno labelled funk: 2", ...]``: the most frequent mistakes."""
    pairs = [(n, classes[i], classes[j]) for i, row in enumerate(confusion)
             for j, n in enumerate(row) if i != j and n]
    return [f"{t} labelled {p}: {n}" for n, t, p in sorted(pairs, key=lambda x: -x[0])[:top]]
