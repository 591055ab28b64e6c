"""Atomic file writes: write a temp file, fsync it, ``os.replace`` it over the target.

A reader (or a re-run after kill -9 or power loss) sees either the old file or the whole
new one, never a half-written file. Temp files carry the ``.slapp-tmp`` suffix, so a
stage can delete the leftovers of a killed run before it starts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

TMP_SUFFIX = ".slapp-tmp"


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()  # mkstemp makes 0600 files; give outputs the usual permissions


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "",
                tmp_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temp path for the caller (or a library: Keras, NumPy) to write; when the
    block ends without error, fsync it and ``os.replace`` it over ``path``; on error,
    delete it. ``suffix`` ends the temp name (Keras wants ``.keras``/``.weights.h5``);
    ``tmp_dir`` (default: the target's folder) must be on the same file system."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=".",
                               suffix=TMP_SUFFIX + suffix)
    os.close(fd)
    try:
        os.chmod(tmp, _MODE)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *,
                 tmp_dir: str | os.PathLike | None = None) -> None:
    """Call ``write(fileobj)`` on a temp file, then move it to ``path`` atomically
    (:func:`atomic_path`)."""
    with atomic_path(path, tmp_dir=tmp_dir) as tmp, open(tmp, "wb") as f:
        write(f)


def read_json(path: str | os.PathLike):
    """Parse a JSON file slapp wrote; a missing or damaged one is a
    :class:`~slapp.errors.StageError` that names it."""
    from slapp.errors import StageError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"'{path}' does not exist. Run the stage that writes it.") from None
    except (OSError, ValueError) as exc:
        raise StageError(f"'{path}' is unreadable ({exc}). Delete it and run the stage "
                         "again.") from None


def write_json(path: str | os.PathLike, obj, **kw) -> None:
    """Atomically write ``obj`` as indented UTF-8 JSON (non-ASCII kept readable)."""
    data = (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write(path, lambda f: f.write(data), **kw)


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], **kw) -> None:
    """Atomically write an uncompressed ``.npz`` of ``arrays``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data), **kw)


def remove_temp_files(folder: str | os.PathLike) -> int:
    """Delete leftover temp files directly in ``folder``; return how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if TMP_SUFFIX in entry.name and entry.is_file():
            os.unlink(entry.path)
            removed += 1
    return removed
