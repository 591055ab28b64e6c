"""Atomic file writes: write a temp file, fsync it, ``os.replace`` it over the target.

A reader (or a re-run after kill -9 or power loss) sees either the old file or the whole
new one, never a half-written file. Temp files carry the ``.slapp-tmp`` suffix, so a
stage can delete the leftovers of a killed run before it starts.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

TMP_SUFFIX = ".slapp-tmp"


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()  # mkstemp makes 0600 files; give outputs the usual permissions


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *,
                 tmp_dir: str | os.PathLike | None = None) -> None:
    """Call ``write(fileobj)`` on a temp file, then move it to ``path`` atomically.

    ``tmp_dir`` (default: the target's folder) must be on the same file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=".", suffix=TMP_SUFFIX)
    try:
        os.chmod(tmp, _MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
        if entry.name.endswith(TMP_SUFFIX) and entry.is_file():
            os.unlink(entry.path)
            removed += 1
    return removed
