"""What prediction leaves behind: per-track results, the run's report, the CSV/JSON
output, the timeline plots, and the partial file that lets an interrupted run continue."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slapp.stages.label.evaluate import artist_line, confusion_lines
from slapp.spec import NONE
from slapp.store.atomic import atomic_write
from slapp.store.discovery import shown

OUTPUT_FORMATS = (".csv", ".json")


@dataclass
class TrackResult:
    """The outcome for one input: ``label`` and ``scores`` or an ``error``."""

    path: str
    label: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    seconds: float | None = None
    snippets: int = 0
    notes: list[str] = field(default_factory=list)
    timeline: list[dict] | None = None
    error: str | None = None
    outside_training: bool = False
    embedding: list[float] | None = None  # mean snippet embedding (--suggest)
    known: float | None = None  # 0-1: how much it looks like the trained classes
    guess: str | None = None    # the best class of a track labelled "none"
    rescored: bool = False      # a bf16 near-tie, scored again at full precision

    @property
    def labelled(self) -> bool:
        """Labelled with a class (not failed, not ``none``)."""
        return not self.error and self.label is not None and self.label != NONE

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k] if self.scores else []

    @classmethod
    def from_row(cls, row: dict) -> TrackResult:
        """A result saved by :meth:`to_dict` (the partial file of an interrupted run)."""
        return cls(**{k: row.get(k) for k in ("path", "label", "confidence", "scores",
                                              "seconds", "snippets", "timeline", "error")},
                   outside_training=bool(row.get("outside_training")),
                   notes=row.get("notes", []), embedding=row.get("embedding"),
                   known=row.get("known"), guess=row.get("guess"),
                   rescored=bool(row.get("rescored")))

    def to_dict(self, timeline: bool) -> dict:
        out = {"path": self.path, "label": self.label, "confidence": self.confidence,
               "scores": self.scores, "seconds": self.seconds, "snippets": self.snippets,
               "notes": self.notes, "outside_training": self.outside_training,
               "error": self.error, "known": self.known, "guess": self.guess}
        if self.rescored:
            out["rescored"] = True
        if timeline:
            out["timeline"] = self.timeline
        if self.embedding is not None:
            out["embedding"] = self.embedding
        return out


@dataclass
class PredictReport:
    results: list[TrackResult]
    classes: list[str]
    bundle: Path
    seconds: float = 0.0
    engine: str = "onnxruntime fp32"  # how the network ran (Bundle.engine)
    resumed: int = 0
    truth: dict | None = None     # --evaluate: evaluate.folder_truth
    look_at: list[str] = field(default_factory=list)  # files written for the user
    library: list[str] = field(default_factory=list)  # tags, playlists, the page
    next_steps: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TrackResult]:
        return [r for r in self.results if r.error]

    def table(self) -> str:
        """One line per track: path, label, confidence, top 3 (or the failure)."""
        width = min(60, max([len(shown(r.path)) for r in self.results] + [5]))
        lines = [f"{'track':<{width}}  {'label':<12} {'conf':>5} {'known':>5}  top 3"]
        for r in self.results:
            path = shown(r.path)
            name = path if len(path) <= width else "…" + path[-(width - 1):]
            if r.error:
                lines.append(f"{name:<{width}}  FAILED: {shown(r.error)}")
            else:
                top = ", ".join(f"{c} {s:.2f}" for c, s in r.top(3))
                shown_known = "" if r.known is None else f"{r.known:.2f}"
                lines.append(f"{name:<{width}}  {r.label:<12} {r.confidence:5.2f} "
                             f"{shown_known:>5}  {top}")
                lines += [f"{'':<{width}}  note: {shown(note)}" for note in r.notes]
        return "\n".join(lines)

    def summary(self) -> list[str]:
        done = len(self.results) - len(self.failed)
        resumed = f" ({self.resumed} from the interrupted run)" if self.resumed else ""
        lines = [f"labelled {done} track(s){resumed}, failed {len(self.failed)}, in "
                 f"{self.seconds:.1f} s with bundle {self.bundle} ("
                 + ("TensorFlow" if self.engine == "keras" else self.engine) + ")"]
        rescored = sum(r.rescored for r in self.results)
        if rescored:
            lines.append(f"  {rescored} near-tie track(s) scored again at full precision "
                         "(bf16 could have flipped their label)")
        nones = [r for r in self.results if not r.error and r.label == NONE]
        if nones:
            lines.append(f"  {len(nones)} track(s) labelled none: unlike every class of the "
                         "model (known below the bundle's threshold; predict_track.py "
                         "--none-below 0 labels them anyway)")
        outside = [r for r in self.results if r.outside_training]
        if outside:
            lines.append(f"  {len(outside)} track(s) unlike the training audio (see their "
                         "notes): their labels are less reliable")
        for r in self.failed:
            lines.append(f"  failed: {shown(r.path)}: {shown(r.error)}")
        if self.truth is not None:
            t = self.truth
            if t["count"]:
                mistakes = confusion_lines(t["confusion"], self.classes)
                lines.append(f"evaluated against folder names: {t['right']} of {t['count']} "
                             f"right ({t['right'] / t['count']:.2f})"
                             + (f"; mistakes: {', '.join(mistakes)}" if mistakes else ""))
                lines.append("  " + artists_note(t.get("artists")))
            none = t.get("none") or {}
            if any(none.values()):
                lines.append(f"  labelled none (not counted above): {none['class']} of the "
                             f"class folders, {none['other']} of folders that are no class")
            if t["skipped"]:
                lines.append(f"  not evaluated ({len(t['skipped'])}): failed, or the folder "
                             f"is not a class of the model ({', '.join(self.classes)})")
        lines += self.library
        lines += [f"look at: {item}" for item in self.look_at]
        lines += [f"next: {item}" for item in self.next_steps]
        return lines


def partial_path(output: Path) -> Path:
    """Where the finished tracks of a run writing ``output`` are kept as they finish."""
    return output.with_name(output.name + ".partial.jsonl")


def run_signature(bundle_info: dict, options: dict) -> str:
    """What must match for an interrupted run's results to be reused: the bundle and the
    prediction options."""
    text = json.dumps({"bundle": bundle_info.get("trained"),
                       "signature": bundle_info.get("signature"), **options}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _load_partial(path: Path, signature: str) -> dict[str, dict]:
    """Finished tracks of an interrupted run with the same signature (a torn last line
    from a kill is ignored)."""
    done: dict[str, dict] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return done
    try:
        if not lines or json.loads(lines[0]).get("signature") != signature:
            return done
    except (ValueError, AttributeError):
        return done
    for line in lines[1:]:
        try:
            row = json.loads(line)
            done[row["path"]] = row
        except (ValueError, KeyError, TypeError):
            continue
    return done


class PartialFile:
    """``<output>.partial.jsonl``: a signature line, then one JSON row per finished track.

    Opening it keeps the rows of an interrupted run with the same signature (:attr:`done`)
    and rewrites the file atomically with just those; :meth:`append` adds a row and flushes.
    """

    def __init__(self, output: Path, signature: str):
        self.path = partial_path(output)
        self.done = _load_partial(self.path, signature)
        lines = [json.dumps({"signature": signature})] + [
            json.dumps(row, ensure_ascii=False) for row in self.done.values()]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        atomic_write(self.path, lambda f: f.write(data))
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, result: TrackResult) -> None:
        self._file.write(json.dumps(result.to_dict(True), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()


def write_output(path: Path, results: list[TrackResult], classes: list[str],
                 timeline: bool) -> None:
    """CSV (one row per track, or per snippet with ``timeline``) or JSON, atomically."""
    if path.suffix.lower() == ".json":
        data = json.dumps({"classes": classes,
                           "tracks": [r.to_dict(timeline) for r in results]},
                          indent=2, ensure_ascii=False).encode("utf-8")
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        head = ["path", "label", "confidence", "known", "guess", "seconds", "snippets",
                "error", "notes"]
        if timeline:
            writer.writerow(head[:2] + ["start", "snippet_label"] + classes)
            for r in results:
                for row in r.timeline or []:
                    writer.writerow([r.path, r.label, row["start"], row["label"],
                                     *(row["scores"][c] for c in classes)])
        else:
            writer.writerow(head + classes)
            for r in results:
                writer.writerow([r.path, r.label or "", "" if r.confidence is None
                                 else f"{r.confidence:.6f}", "" if r.known is None
                                 else f"{r.known:.4f}", r.guess or "", r.seconds or "", r.snippets,
                                 r.error or "", "; ".join(r.notes),
                                 *((r.scores or {}).get(c, "") for c in classes)])
        data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def plot_timeline(path: Path, result: TrackResult, classes: list[str]) -> None:
    """Per-snippet class probabilities over time (stacked areas) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = np.array([row["start"] for row in result.timeline])
    probs = np.array([[row["scores"][c] for c in classes] for row in result.timeline])
    fig, ax = plt.subplots(figsize=(10, 4))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    colors = [cmap(i % cmap.N) for i in range(len(classes))]
    if len(starts) == 1:
        starts, probs = np.array([starts[0], starts[0] + 1]), np.repeat(probs, 2, axis=0)
    ax.stackplot(starts, probs.T, labels=classes, colors=colors, alpha=0.85)
    ax.set_xlim(starts[0], starts[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("snippet start (s)")
    ax.set_ylabel("probability")
    ax.set_title(f"{Path(result.path).name}: {result.label} ({result.confidence:.2f})")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))


def plot_name(name: str, used: set[str]) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)
    candidate, i = stem + ".png", 1
    while candidate in used:
        i += 1
        candidate = f"{stem}-{i}.png"
    used.add(candidate)
    return candidate


def artists_note(artists: dict | list | None) -> str:
    """Which artists an ``--evaluate`` figure is on. ``artists``: the heard/unheard counts
    of :func:`~slapp.stages.label.evaluate.split_by_artist`; ``[]`` when no training track had
    an artist; None for a bundle older than its record of training artists."""
    if artists is None:
        return ("the bundle does not record its training artists (trained by an older "
                "slapp): if these tracks' artists were in training, this figure flatters")
    if not artists:
        return ("the training tracks had no artist tags: if a class was mostly one artist, "
                "this figure flatters; expect less on new music")
    return artist_line(artists)
