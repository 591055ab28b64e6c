"""What the four scripts share: the ``--params`` option, logging, and error handling."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable

from tqdm import tqdm

from slapp import signals
from slapp.errors import SlappError
from slapp.params import DEFAULT_PARAMS_FILE
from slapp.store.discovery import shown


def make_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` (every script takes it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, metavar="PATH",
                        help="pipeline parameters JSON file (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar; only warnings, errors and the summary")
    return parser


class _ShownFormatter(logging.Formatter):
    """One log record, one line: control characters in what it names (a file name with a
    line break, an escape sequence in a tag) are shown as escapes."""

    def format(self, record: logging.LogRecord) -> str:
        return shown(super().format(record))


class _TqdmHandler(logging.Handler):
    """Log lines that do not break a running progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def setup_logging(quiet: bool = False) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(_ShownFormatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("slapp")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def interrupted_status() -> int:
    """The exit status of a run that stopped early: 143 after SIGTERM, 130 after Ctrl-C."""
    return 143 if signals.terminated() else 130


TRIM_THRESHOLD = 128 * 1024  # bytes of free heap top glibc keeps before giving it back


def return_freed_memory() -> bool:
    """Ask glibc's allocator to give freed heap memory back to the system as soon as
    :data:`TRIM_THRESHOLD` bytes are free at its top (``mallopt(M_TRIM_THRESHOLD)``, the
    ``MALLOC_TRIM_THRESHOLD_`` variable's setting; by default the threshold grows with the
    largest block freed, so TensorFlow's temporaries stay resident: about 70 MB of
    predict_track.py's peak, BENCHMARKS.md). False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-1, TRIM_THRESHOLD))  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def run_script(job: Callable[[], int | None]) -> int:
    """Run ``job``; a :class:`SlappError` becomes ``error: ...`` and exit status 1;
    Ctrl-C and SIGTERM a one-line message and status 130 / 143."""
    return_freed_memory()
    signals.clear()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_sigint)
    try:
        return _run(job)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; finish cleanly
    raise signals.request_stop(terminate=True)


def _on_sigint(signum, frame):
    """Ctrl-C: Python's KeyboardInterrupt, and a record of it (:mod:`slapp.signals`)."""
    raise signals.request_stop(terminate=False)


def _run(job: Callable[[], int | None]) -> int:
    try:
        status = job() or 0
        signals.check()  # a Ctrl-C that Python lost in a finaliser still counts
        return status
    except SlappError as exc:
        print(f"error: {shown(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk or the file system, not the input: say which file
        where = f"'{exc.filename}': " if exc.filename else ""
        print(f"error: cannot write or read {where}{exc.strerror or exc}. Free space or fix "
              "permissions, then run the same command again: finished work is kept.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _stopped()
    except Exception:
        if signals.requested():  # a library turned the Ctrl-C into an error of its own
            return _stopped()
        raise


def _stopped() -> int:
    what = "stopped (SIGTERM)" if signals.terminated() else "interrupted"
    print(f"\n{what}: finished work is saved; run the same command again to "
          "continue where it stopped", file=sys.stderr)
    return interrupted_status()
