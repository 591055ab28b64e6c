"""Finding the labelled tracks: one sub-folder per class, audio files anywhere below it."""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slapp.dsp.audio import AUDIO_EXTENSIONS
from slapp.errors import DatasetError

# what operating systems, archivers and NAS boxes leave in music folders: never a class,
# never a track; listed as ignored
SYSTEM_FOLDERS = frozenset({"__MACOSX", "@eaDir", ".AppleDouble", "$RECYCLE.BIN",
                            "RECYCLER", "System Volume Information", ".Trashes",
                            ".Spotlight-V100", ".fseventsd", "lost+found", "#recycle"})
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store", "ehthumbs.db"})


def is_system_entry(name: str) -> bool:
    """Whether a file or folder name is operating-system clutter (``__MACOSX``,
    ``Thumbs.db``, ``._song.mp3`` AppleDouble files...)."""
    return (name in SYSTEM_FOLDERS or name.lower() in SYSTEM_FILES
            or name.startswith("._"))


def readable_name(name: str) -> str:
    """``name`` as valid Unicode: bytes that are not UTF-8 (kept by Linux as surrogate
    escapes, e.g. a Latin-1 ``café`` from an old archive) become ``\\xe9``. Such a name
    then works in every JSON, CSV and log slapp writes; the file itself is still opened
    by its real name."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028",
                 0x2029: "\\u2029"})


def shown(text: str) -> str:
    """``text`` for a terminal or a log line: control characters (a newline in a file
    name, an escape sequence in a tag) become visible escapes (``\\n``, ``\\x1b``), so a
    name can neither break a line nor drive the terminal."""
    return str(text).translate(_CONTROL)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character :func:`shown` would escape."""
    return shown(text) != text


@dataclass(frozen=True)
class Dataset:
    """The tracks of an input folder.

    ``classes`` are the class folder names, sorted. ``tracks`` maps each class to its
    track keys, sorted: paths relative to ``root``, with ``/`` separators and Unicode NFC
    (so a split file made on macOS matches on Linux). ``files`` maps each key to the file.
    ``ignored`` lists files that are not audio, by key; ``system`` the operating-system
    folders and files skipped (:func:`is_system_entry`); ``outputs`` slapp's own output
    folders found inside ``root`` and skipped.
    """

    root: Path
    classes: tuple[str, ...]
    tracks: dict[str, tuple[str, ...]]
    files: dict[str, Path] = field(repr=False)
    ignored: tuple[str, ...] = ()
    system: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # slapp's own folders inside the input folder, skipped

    @property
    def n_tracks(self) -> int:
        return len(self.files)

    def ignored_summary(self) -> str:
        """E.g. ``3 files that are not audio (.jpg x2, .txt x1); 2 system folders/files
        (__MACOSX, rock/Thumbs.db)``; empty when none."""
        parts = []
        if self.ignored:
            exts = Counter(os.path.splitext(k)[1].lower() or "(no extension)"
                           for k in self.ignored)
            kinds = ", ".join(f"{e} x{n}" for e, n in exts.most_common())
            parts.append(f"{len(self.ignored)} files that are not audio ({kinds})")
        if self.system:
            shown = ", ".join(self.system[:5]) + (f" and {len(self.system) - 5} more"
                                                  if len(self.system) > 5 else "")
            parts.append(f"{len(self.system)} system folders/files ({shown})")
        return "; ".join(parts)


def _key(path: Path, root: Path) -> str:
    return unicodedata.normalize("NFC", readable_name(path.relative_to(root).as_posix()))


def walk_audio(folder: Path, skip: frozenset[Path] = frozenset()
               ) -> Iterator[tuple[Path, str]]:
    """Every file below ``folder`` as ``(path, kind)``, sorted per folder, kind ``"audio"``
    (a known extension), ``"ignored"`` (another file) or ``"system"`` (operating-system
    clutter, files or folders: :func:`is_system_entry`). Hidden files and folders
    (``.cache/``) are skipped, and so are the folders in ``skip`` (resolved paths: slapp's
    own output). The one discovery walk of the build and prediction."""
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = [d for d in sorted(dirnames) if (here / d).resolve() not in skip]
        for d in dirnames:
            if is_system_entry(d):
                yield here / d, "system"
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not is_system_entry(d)]
        for name in sorted(filenames):
            if is_system_entry(name):
                yield here / name, "system"
            elif not name.startswith("."):
                yield here / name, ("audio" if Path(name).suffix.lower() in AUDIO_EXTENSIONS
                                    else "ignored")


def _walk_class(class_dir: Path, root: Path, files: dict[str, Path], ignored: list[str],
                system: list[str], skip: frozenset[Path]) -> list[str]:
    """The audio keys below ``class_dir``; fills ``files`` (key → path), ``ignored`` (not
    audio) and ``system`` (operating-system clutter) on the way."""
    found: list[str] = []
    lists = {"ignored": ignored, "system": system, "audio": found}
    for path, kind in walk_audio(class_dir, skip):
        key = _key(path, root)
        lists[kind].append(key)
        if kind == "audio":
            files[key] = path
    return found


def find_inputs(paths: list[str]) -> list[tuple[str, Path | None, str | None]]:
    """Prediction's inputs: ``(shown name, path or None, error or None)`` per track; files
    as given, folders searched with :func:`walk_audio` (sorted); a missing path or a folder
    without audio is an error entry."""
    out: list[tuple[str, Path | None, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p, kind in walk_audio(path) if kind == "audio")
            if not found:
                out.append((readable_name(raw), None, "folder holds no audio files "
                            f"(expected {', '.join(sorted(AUDIO_EXTENSIONS))})"))
            out += [(readable_name(str(p)), p, None) for p in found]
        elif path.exists():
            out.append((readable_name(raw), path, None))
        else:
            out.append((readable_name(raw), None, "not found"))
    return out


def find_tracks(root: str | os.PathLike, *, skip: tuple[Path, ...] = ()) -> Dataset:
    """Scan ``root``: each non-hidden sub-folder is a class; hidden entries are skipped,
    and so are the folders ``skip`` names (slapp's output and model folders, which a user
    may well put inside the input folder); those found are listed in ``Dataset.outputs``.

    Raises :class:`DatasetError` when the folder is missing, has fewer than two classes,
    or a class folder holds no audio file.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"Input folder '{root}' does not exist. Expected a folder with "
                           "one sub-folder of audio files per class (paths.input_dir).")
    if not root.is_dir():
        raise DatasetError(f"Input folder '{root}' is a file. Expected a folder with one "
                           "sub-folder of audio files per class (paths.input_dir).")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"Cannot read input folder '{root}': {exc.strerror}.") from None
    system = [readable_name(e.name) for e in entries if is_system_entry(e.name)]
    entries = [e for e in entries if not is_system_entry(e.name)]
    skipped = frozenset(Path(p).resolve() for p in skip)
    outputs = tuple(sorted(str(p) for p in skipped if root.resolve() in p.parents))
    entries = [e for e in entries if Path(e.path).resolve() not in skipped]
    class_dirs = [Path(e.path) for e in entries
                  if e.is_dir() and not e.name.startswith(".")]
    stray = [readable_name(e.name) for e in entries
             if e.is_file() and not e.name.startswith(".")]
    if len(class_dirs) < 2:
        found = ", ".join(repr(d.name) for d in class_dirs) or "none"
        raise DatasetError(f"Input folder '{root}' has {len(class_dirs)} class folder(s) "
                           f"({found}). Expected at least 2 sub-folders, one per class.")
    tracks: dict[str, tuple[str, ...]] = {}
    files: dict[str, Path] = {}
    ignored: list[str] = [unicodedata.normalize("NFC", s) for s in stray]
    for class_dir in class_dirs:
        found = _walk_class(class_dir, root, files, ignored, system, skipped)
        if not found:
            raise DatasetError(
                f"Class folder '{readable_name(str(class_dir))}' contains no audio files. "
                f"Expected files ending in {', '.join(sorted(AUDIO_EXTENSIONS))}; add tracks or remove "
                "the folder.")
        tracks[unicodedata.normalize("NFC", readable_name(class_dir.name))] = tuple(
            sorted(found))
    classes = tuple(sorted(tracks))
    return Dataset(root=root, classes=classes, tracks={c: tracks[c] for c in classes},
                   files=files, ignored=tuple(sorted(ignored)), system=tuple(sorted(system)),
                   outputs=outputs)
