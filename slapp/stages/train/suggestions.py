"""``predict_track.py LIBRARY --suggest N``: the tracks worth labelling next
(:func:`slapp.models.suggest.suggest_tracks` on the labelled tracks' scores and mean
embeddings), written as a CSV to fill in and a playlist to listen to.

The CSV (``path,label,guess,confidence,artist``) is the one ``paths.labels_file`` reads:
fill the ``label`` column with one of the classes (or leave it empty), and the next
``build_dataset.py`` → ``process_dataset.py`` → ``train_crnn.py`` learns from the
answers. A CSV already there keeps its rows (and their answers); new suggestions are added
below them and never repeat a listed track. Both files are written atomically.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.models.suggest import NEAR_COPY, suggest_tracks
from slapp.stages.deliver.playlists import playlist_entry
from slapp.store.artists import read_artist
from slapp.store.atomic import atomic_write
from slapp.store.unlabelled import real_path

COLUMNS = ["path", "label", "guess", "confidence", "artist"]


@dataclass(frozen=True)
class Suggested:
    """What :func:`write_suggestions` did, for the terminal."""

    csv_file: Path
    playlist: Path
    new: list          # TrackResult of the tracks suggested now, best first
    kept: int          # rows of an earlier CSV kept
    answered: int      # of them, rows with a label
    by_class_space: bool  # the bundle gives no embedding: diversity in class scores
    in_labels_file: bool = False  # the CSV is paths.labels_file already

    def lines(self, classes: list[str]) -> list[str]:
        out = [f"suggested {len(self.new)} track(s) to label (uncertain, like many others, "
               "unlike each other" + (", spread over class scores: this bundle gives no "
                                      "embedding" if self.by_class_space else "") + "):"]
        out += [f"  {r.path}  (guess {r.label} {r.confidence:.2f})" for r in self.new]
        if self.kept:
            out.append(f"kept the {self.kept} row(s) already in {self.csv_file} "
                       f"({self.answered} answered)")
        out += [f"listen: {self.playlist}",
                f"answer them on a page: predict_track.py --answer {self.csv_file} (or fill in "
                "its 'label' column with one of: " + ", ".join(classes)
                + ", or none for none of these; empty: not sure)",
                "then run build_dataset.py, process_dataset.py and train_crnn.py again"
                + ("" if self.in_labels_file else
                   f" with paths.labels_file set to {self.csv_file}")]
        return out


def _read_rows(csv_file: Path) -> list[dict]:
    if not csv_file.exists():
        return []
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        return [row for row in csv.DictReader(f) if row.get("path")]


def unanswered(csv_file: Path) -> int:
    """Rows of ``csv_file`` (if any) without a label."""
    try:
        return sum(not (r.get("label") or "").strip() for r in _read_rows(csv_file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0


def write_suggestions(results: list, n: int, csv_file: Path, *, in_labels_file: bool = False
                      ) -> Suggested:
    """Choose ``n`` of the labelled ``results`` (TrackResult) and write ``csv_file`` and
    ``<csv_file stem>.m3u8`` beside it."""
    rows = _read_rows(csv_file)
    listed = {str(real_path(Path(r["path"]))) for r in rows}
    pool = [r for r in results if not r.error and str(real_path(Path(r.path))) not in listed]
    classes = list(pool[0].scores) if pool else []
    scores = np.array([[r.scores[c] for c in classes] for r in pool]).reshape(len(pool), -1)
    has_emb = bool(pool) and all(r.embedding is not None for r in pool)
    emb = np.array([r.embedding for r in pool]) if has_emb else scores
    artists = [read_artist(r.path) if Path(r.path).is_file() else None for r in pool]
    chosen = [pool[i] for i in suggest_tracks(scores, emb, n, groups=artists,
                                              near_copy=NEAR_COPY if has_emb else 1.0)]
    by_path = {id(r): a for r, a in zip(pool, artists)}
    new_rows = [{"path": str(real_path(Path(r.path))), "label": "", "guess": r.guess or r.label,
                 "confidence": f"{r.confidence:.3f}", "artist": by_path[id(r)] or ""}
                for r in chosen]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows + new_rows)
    csv_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(csv_file, lambda f: f.write(buffer.getvalue().encode("utf-8")))
    playlist = csv_file.with_suffix(".m3u8")
    text = "#EXTM3U\n" + "".join(playlist_entry(r, playlist.parent) for r in chosen)
    atomic_write(playlist, lambda f: f.write(text.encode("utf-8")))
    return Suggested(csv_file=csv_file, playlist=playlist, new=chosen, kept=len(rows),
                     answered=sum(bool((r.get("label") or "").strip()) for r in rows),
                     by_class_space=not has_emb, in_labels_file=in_labels_file)
