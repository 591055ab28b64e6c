"""One slapp run per output folder at a time.

The lock is an OS file lock (``filelock``): the kernel drops it when its process dies,
even by kill -9 or power loss, so a lock left by a killed run is stale by construction and
the next run takes it over. A small owner file says who holds it, for the error message.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

from slapp.store.atomic import read_json, write_json
from slapp.errors import StageError

LOCK_NAME = ".slapp.lock"


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, stage: str):
    """Hold the lock of ``folder`` for the ``with`` block, or raise :class:`StageError`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / LOCK_NAME), timeout=0)
        lock.acquire()
    except Timeout:
        owner = _owner(folder, wait=OWNER_WAIT_S)
        raise StageError(f"Output folder '{folder}' is in use by another slapp run{owner}. "
                         "Wait for it to finish (two runs at once would corrupt it).") from None
    except OSError as exc:
        raise StageError(f"Cannot write to output folder '{folder}': "
                         f"{exc.strerror or exc}. Expected a writable folder "
                         "(paths.output_dir).") from None
    owner_file = folder / (LOCK_NAME + ".owner")
    try:
        write_json(owner_file, {"stage": stage, "pid": os.getpid(),
                                "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        yield
    finally:
        with contextlib.suppress(OSError):  # gone before the lock: never a stale name
            owner_file.unlink()
        lock.release()


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str):
    """Hold ``<path>.lock`` for the ``with`` block (one writer of ``path`` at a time), or
    raise :class:`StageError` naming ``what`` holds it."""
    lock = FileLock(str(path) + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StageError(f"'{path}' is being written by another {what} run. Wait for it to "
                         "finish or choose another output file.") from None
    try:
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            os.unlink(str(path) + ".lock")


OWNER_WAIT_S = 5.0  # the holder writes its name right after taking the lock


def _owner(folder: Path, wait: float = 0.0) -> str:
    """`` (build_dataset.py, pid 123, since ...)`` of the live process holding the lock,
    waiting up to ``wait`` seconds for it to write its name (two runs started at the
    same instant: the refused one may look before the holder has written it)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = read_json(folder / (LOCK_NAME + ".owner"))
            if _alive(int(info["pid"])):
                return f" ({info['stage']}, pid {info['pid']}, since {info['since']})"
        except (StageError, OSError, KeyError, TypeError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return " (it has not written its name: it may be on another machine)"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
