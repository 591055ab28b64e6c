"""The user's library as training data: the unlabelled tracks of ``paths.unlabelled_dir``,
and the labels the user gave some of them in ``paths.labels_file``.

``<output_dir>/library/`` is a build of its own (:class:`~slapp.store.layout.BuildLayout`:
``cache/``, ``build_manifest.json``, ``embeddings/``), keyed by path relative to the
library folder. A track labelled in the labels file leaves the library and joins the
labelled collection as ``<class>/+labels/<key>`` (always in the training split).

The labels file is a CSV with columns ``path`` and ``label`` (other columns are ignored:
``predict_track.py --suggest`` writes the model's guess beside them). An empty label is a
track not answered yet; a bad row (unknown class, missing file, a track given two labels)
is one warning naming the file, the line, what is wrong and what is expected, and is not
used.
"""

from __future__ import annotations

import csv
import hashlib
import os
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from slapp.spec import NONE
from slapp.errors import DatasetError
from slapp.store.discovery import readable_name, shown, walk_audio
from slapp.store.layout import BuildLayout

logger = logging.getLogger(__name__)

OUTSIDE = "+outside"  # under LABELLED: answered files outside the library folder
LABELLED = "+labels"  # the folder name under a class that holds the labels file's tracks


def library_layout(params) -> BuildLayout:
    """The library's build under ``<output_dir>/library``."""
    return BuildLayout(Path(params.paths.output_dir) / "library")


@dataclass
class Library:
    """``files``: library key → file (unlabelled tracks); ``labelled``: class → ``{key:
    file}`` of tracks the labels file labels; ``problems``: one line per bad row or
    skipped file."""

    root: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    labelled: dict[str, dict[str, Path]] = field(default_factory=dict)
    none: set[Path] = field(default_factory=set)  # answered "none of these": out of the loop
    problems: list[str] = field(default_factory=list)


def _key(path: Path, root: Path) -> str:
    return unicodedata.normalize("NFC", readable_name(path.relative_to(root).as_posix()))


def real_path(path: Path) -> Path:
    """``path`` resolved; as it is when it cannot be (a link loop: the build reports it)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def find_library(params, classes: tuple[str, ...], labelled: Iterable[Path],
                 skip: tuple[Path, ...] = ()) -> Library:
    """The library of ``params`` (``paths.unlabelled_dir`` and ``paths.labels_file``): its
    audio files minus those already labelled (``labelled``: the class folders' tracks,
    never counted twice) and minus the labels file's."""
    root = params.paths.unlabelled_dir
    library = Library(root=root)
    if root is None and params.paths.labels_file is None:
        return library
    labelled_files = {real_path(p) for p in labelled}
    if params.paths.labels_file is not None:
        _read_labels(params.paths.labels_file, classes, root, labelled_files, library)
    if root is None:
        return library
    if not root.is_dir():
        raise DatasetError(f"Library folder '{root}' (paths.unlabelled_dir) does not exist or "
                           "is not a folder. Expected a folder of audio files (any "
                           "sub-folders), or null.")
    answered = {p.resolve() for tracks in library.labelled.values() for p in tracks.values()}
    skipped = frozenset(Path(p).resolve() for p in skip)
    for path, kind in walk_audio(root, skipped):
        if kind != "audio":
            continue
        real = real_path(path)
        if real in labelled_files or real in answered or real in library.none:
            continue
        library.files[_key(path, root)] = path
    return library


def labelled_key(label: str, path: Path, root: Path | None) -> str:
    """The collection key of a track the labels file labels ``label``: its path in the
    library, or, for a file outside it, its name under a short digest of its folder (two
    ``track01.mp3`` of different folders stay two tracks)."""
    try:
        rel = _key(path, root) if root is not None else None
    except ValueError:
        rel = None
    if rel is None:
        folder = hashlib.sha1(os.fsencode(path.parent.resolve())).hexdigest()[:8]
        rel = f"{OUTSIDE}/{folder}/{readable_name(path.name)}"
    return f"{label}/{LABELLED}/{rel}"


def _read_labels(path: Path, classes: tuple[str, ...], root: Path | None,
                 labelled_files: set[Path], library: Library) -> None:
    if not path.exists() and path.parent.is_dir():
        logger.info("labels file '%s' (paths.labels_file) does not exist yet: train_crnn.py "
                    "writes the library tracks worth labelling there", shown(str(path)))
        return
    if not path.is_file():
        raise DatasetError(f"Labels file '{path}' (paths.labels_file) is not a file in an "
                           "existing folder. Expected a CSV with columns path,label, or a "
                           "new file's path in an existing folder, or null.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"Labels file '{path}' cannot be read ({exc}). Expected a UTF-8 "
                           "CSV with columns path,label.") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        raise DatasetError(f"Labels file '{path}' has no 'path' and 'label' columns in its "
                           f"first line (got {', '.join(header) or 'nothing'}). Expected a "
                           "CSV with columns path,label.")
    col_path, col_label = header.index("path"), header.index("label")
    given: dict[Path, tuple[str, int]] = {}
    conflicting: set[Path] = set()  # given two labels: none of its rows is used
    for line, row in enumerate(rows[1:], start=2):
        problem = _check_row(row, col_path, col_label, classes, path.parent, labelled_files)
        if problem is None:
            continue  # not answered yet
        if isinstance(problem, str):
            library.problems.append(f"{shown(str(path))}, line {line}: {problem}")
            continue
        track, label = problem
        if track in conflicting:
            library.problems.append(
                f"{shown(str(path))}, line {line}: '{shown(str(track))}' was given two "
                f"labels above; expected one label per track (not used)")
            continue
        if track in given and given[track][0] != label:
            library.problems.append(
                f"{shown(str(path))}, line {line}: '{shown(str(track))}' is labelled "
                f"'{label}' here and '{given[track][0]}' on line {given[track][1]}; "
                "expected one label per track (neither is used)")
            library.labelled.get(given[track][0], {}).pop(
                labelled_key(given[track][0], track, root), None)
            library.none.discard(track)
            conflicting.add(track)
            continue
        given[track] = (label, line)
        if label == NONE:
            library.none.add(track)
            continue
        library.labelled.setdefault(label, {})[labelled_key(label, track, root)] = track
    for problem in library.problems:
        logger.warning("%s", problem)


def _check_row(row: list[str], col_path: int, col_label: int, classes: tuple[str, ...],
               base: Path, labelled_files: set[Path]):
    """None (no answer), a problem (str), or ``(resolved file, class)``."""
    cells = [c.strip() for c in row]
    if not any(cells):
        return None
    if len(cells) <= max(col_path, col_label):
        return (f"{len(cells)} column(s); expected the path and the label columns of the "
                "header (not used)")
    label, raw = cells[col_label], cells[col_path]
    if not label:
        return None
    if label not in classes and label != NONE:
        return (f"label '{shown(label)}' is not a class; expected one of "
                f"{', '.join(classes)}, or {NONE} (not used)")
    track = Path(raw) if Path(raw).is_absolute() else base / raw
    if not track.is_file():
        return f"'{shown(raw)}' is not a file; expected the path of an audio file (not used)"
    real = real_path(track)
    if real in labelled_files:
        return None  # already in a class folder: the folder's class counts
    return real, label
