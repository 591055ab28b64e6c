"""Labels into the music library: each track's genre tag, written safely and undoably.

:func:`plan_tags` decides what would change (a dry run prints it); :func:`apply_tags`
changes it. Safe by construction:

- only the tags change: ``mutagen`` rewrites the tag blocks of a *copy* of the file
  (ID3 TCON for MP3, the Vorbis comment for FLAC/Ogg/Opus, ©gen for MP4/M4A), the copy is
  re-read and checked, then renamed over the original (atomic: a kill leaves the old file
  or the new one, never half of one); the audio frames are copied byte for byte;
- a journal of every old value is written (atomically) *before* any file changes, and
  marks each file done as it goes (with its size and time after the write);
  :func:`undo_tags` puts back exactly what was there (no genre tag at all, for a file
  that had none) — but only where the file still holds what slapp wrote: a tag the user
  (or another program) changed since, or a file changed since, is left as it is, named,
  unless ``force``;
- journals go to a per-user state folder (:func:`journal_folder`, platformdirs) unless a
  path is given, so they are found again (:func:`recent_journals`);
- the file keeps its modification time and permissions; files that are read-only, have
  other hard links (the rename would separate them) or cannot be re-read are refused.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from slapp.errors import StageError
from slapp.store.atomic import atomic_path, read_json, write_json

GENRE = "genre"
CONFIDENCE = "slapp_confidence"  # TXXX:SLAPP_CONFIDENCE, ----:com.apple.iTunes:..., a comment
JOURNAL_VERSION = 1
# mutagen's classes (easy interface) of the formats whose genre tag is written
TAGGED_FORMATS = frozenset({"EasyMP3", "FLAC", "OggVorbis", "OggOpus", "EasyMP4"})


@dataclass(frozen=True)
class TagChange:
    """What writing one track's label does: ``old`` and ``new`` map tag → list of values
    (an absent tag: no key); ``refused`` says why the file is left alone."""

    path: str
    label: str
    confidence: float
    old: dict = field(default_factory=dict)
    new: dict = field(default_factory=dict)
    refused: str = ""

    @property
    def changes(self) -> bool:
        return not self.refused and self.old != self.new


def _open(path: Path):
    """The file's tags through mutagen's easy interface (None: not a tagged format)."""
    import mutagen
    from mutagen.easyid3 import EasyID3
    from mutagen.easymp4 import EasyMP4Tags

    if CONFIDENCE not in EasyID3.valid_keys:
        EasyID3.RegisterTXXXKey(CONFIDENCE, "SLAPP_CONFIDENCE")
        EasyMP4Tags.RegisterFreeformKey(CONFIDENCE, "SLAPP_CONFIDENCE")
    f = mutagen.File(path, easy=True)
    if f is not None and f.tags is None:
        f.add_tags()
    return f


def _current(f, keys: tuple[str, ...]) -> dict:
    return {k: list(f.tags[k]) for k in keys if k in f.tags}


def _refusal(path: Path) -> str:
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return "read-only (the file or its folder)"
    if st.st_nlink > 1:
        return (f"it has {st.st_nlink} hard links: rewriting it would separate them "
                "(the other names would keep the old tags)")
    return ""


def plan_tags(results, *, min_confidence: float, with_confidence: bool = False
              ) -> list[TagChange]:
    """One :class:`TagChange` per labelled track of ``results`` (``TrackResult``) whose
    confidence is at least ``min_confidence`` (a track labelled ``none`` keeps its tags)."""
    keys = (GENRE, CONFIDENCE) if with_confidence else (GENRE,)
    plan = []
    for r in results:
        if not r.labelled or r.confidence is None or r.confidence < min_confidence:
            continue
        path = Path(r.path)
        change = TagChange(path=r.path, label=r.label, confidence=r.confidence)
        refused = _refusal(path)
        if not refused:
            try:
                f = _open(path)
            except Exception as exc:  # mutagen's errors: one per format
                f, refused = None, f"its tags cannot be read ({type(exc).__name__}: {exc})"
            if not refused and type(f).__name__ not in TAGGED_FORMATS:
                refused = ("slapp writes genre tags in MP3, FLAC, Ogg Vorbis, Opus and "
                           "MP4/M4A files only")
        if refused:
            plan.append(TagChange(path=r.path, label=r.label, confidence=r.confidence,
                                  refused=refused))
            continue
        old = _current(f, keys)
        new = {k: v for k, v in old.items() if k not in keys}
        new[GENRE] = [r.label]
        if with_confidence:
            new[CONFIDENCE] = [f"{r.confidence:.3f}"]
        plan.append(TagChange(path=change.path, label=r.label, confidence=r.confidence,
                              old=old, new=new))
    return plan


def _same_id3_version(path: Path) -> dict:
    """``save`` arguments that keep an ID3v2.3 tag v2.3 (mutagen writes v2.4 otherwise,
    which some players read badly); empty for other formats."""
    from mutagen.id3 import ID3, ID3NoHeaderError

    try:
        return {"v2_version": 3} if ID3(path).version[:2] == (2, 3) else {}
    except (ID3NoHeaderError, Exception):
        return {}


def _rewrite(path: Path, values: dict, keys: tuple[str, ...]) -> None:
    """Set ``keys`` of ``path``'s tags to ``values`` (absent: removed) on a checked copy
    that then replaces the file atomically; modification time and permissions kept."""
    st = path.stat()
    with atomic_path(path, suffix=path.suffix) as tmp:
        shutil.copyfile(path, tmp)
        f = _open(tmp)
        for key in keys:
            if key in values:
                f.tags[key] = values[key]
            elif key in f.tags:
                del f.tags[key]
        f.save(**_same_id3_version(tmp))
        if _current(_open(tmp), keys) != {k: values[k] for k in keys if k in values}:
            raise StageError("the tags read back differ from those written; the file "
                             "was left unchanged")
        os.chmod(tmp, st.st_mode & 0o7777)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))


def apply_tags(plan: list[TagChange], journal: Path, *, with_confidence: bool = False
               ) -> tuple[int, list[tuple[str, str]]]:
    """Write the changes of ``plan``; ``journal`` gets every old value first. Returns
    ``(files changed, [(path, why it failed)])``; one failing file does not stop the rest."""
    keys = (GENRE, CONFIDENCE) if with_confidence else (GENRE,)
    todo = [c for c in plan if c.changes]
    entries = [{"path": str(Path(c.path).resolve()), "old": c.old, "new": c.new,
                "done": False} for c in todo]
    record = {"slapp_tag_journal": JOURNAL_VERSION, "keys": list(keys),
              "written": time.strftime("%Y-%m-%d %H:%M:%S"), "files": entries}
    write_json(journal, record)  # before any file changes
    failed = []
    for entry in entries:
        try:
            _rewrite(Path(entry["path"]), entry["new"], keys)
        except (OSError, StageError) as exc:
            failed.append((entry["path"], str(exc)))
            continue
        except Exception as exc:  # mutagen's own errors
            failed.append((entry["path"], f"{type(exc).__name__}: {exc}"))
            continue
        entry["done"] = True
        entry["after"] = _stamp(Path(entry["path"]))
        write_json(journal, record)
    return sum(e["done"] for e in entries), failed


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def journal_folder() -> Path:
    """Where ``--apply`` keeps its journals by default: the user's state folder
    (``~/.local/state/slapp/tag-journals`` on Linux; ``$XDG_STATE_HOME`` honoured)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("slapp")) / "tag-journals"


def new_journal_path() -> Path:
    return journal_folder() / f"slapp-tags-{time.strftime('%Y%m%d-%H%M%S')}.json"


def recent_journals(most: int = 10) -> list[tuple[Path, str, int]]:
    """``(journal, when written, files it changed)``, newest first, of the default folder."""
    out = []
    for path in sorted(journal_folder().glob("slapp-tags-*.json"),
                       key=lambda p: p.stat().st_mtime, reverse=True)[:most]:
        try:
            record = read_json(path)
            out.append((path, str(record.get("written", "?")),
                        sum(bool(e.get("done")) for e in record.get("files", []))))
        except (StageError, AttributeError):
            out.append((path, "unreadable", 0))
    return out


@dataclass
class Undone:
    """What :func:`undo_tags` did: files restored; files the run had not changed; files
    left as they are because they changed since slapp wrote them (path, why); failures."""

    restored: int = 0
    unchanged: int = 0
    left: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def _described(values: dict) -> str:
    return "genre " + ("; ".join(values.get(GENRE, [])) or "(none)")


def _undo_one(entry: dict, keys: tuple[str, ...], force: bool, done: Undone) -> None:
    path = Path(entry["path"])
    old = {k: entry["old"][k] for k in keys if k in entry["old"]}
    new = {k: entry["new"][k] for k in keys if k in entry["new"]}
    current = _current(_open(path), keys)
    if current == old:
        done.unchanged += 1
        return
    if not force and current != new:
        done.left.append((str(path), f"its {_described(current)} is not what slapp wrote "
                                     f"({_described(new)}): changed since, by you or "
                                     "another program"))
        return
    if not force and entry.get("after") and _stamp(path) != entry["after"]:
        done.left.append((str(path), "the file changed since slapp wrote its tags (its "
                                     "size or modification time)"))
        return
    _rewrite(path, old, keys)
    done.restored += 1


def undo_tags(journal: Path, *, force: bool = False) -> Undone:
    """Put back the old tag values ``journal`` recorded, in every file that still holds
    what slapp wrote there; a file changed since is left as it is (``force``: put the old
    values back anyway). A file a killed run never reached is counted as unchanged."""
    try:
        record = read_json(journal)
    except StageError as exc:
        raise StageError(f"Cannot read the tag journal: {exc}") from None
    if not isinstance(record, dict) or "slapp_tag_journal" not in record:
        raise StageError(f"'{journal}' is not a slapp tag journal (expected the file "
                         "predict_track.py --write-tags --apply wrote).")
    keys = tuple(record["keys"])
    done = Undone()
    for entry in record["files"]:
        try:
            _undo_one(entry, keys, force, done)
        except FileNotFoundError:
            done.failed.append((entry["path"], "the file is gone"))
        except (OSError, StageError) as exc:
            done.failed.append((entry["path"], str(exc)))
        except Exception as exc:  # mutagen's own errors
            done.failed.append((entry["path"], f"{type(exc).__name__}: {exc}"))
    return done
