"""What the four scripts share: the ``--params`` option, logging, and error handling."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from tqdm import tqdm

from slapp.errors import SlappError
from slapp.params import DEFAULT_PARAMS_FILE


def make_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` (every script takes it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=DEFAULT_PARAMS_FILE, metavar="PATH",
                        help="pipeline parameters JSON file (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar; only warnings, errors and the summary")
    return parser


class _TqdmHandler(logging.Handler):
    """Log lines that do not break a running progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def setup_logging(quiet: bool = False) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("slapp")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def run_script(job: Callable[[], int | None]) -> int:
    """Run ``job``; a :class:`SlappError` becomes ``error: ...`` and exit status 1,
    Ctrl-C a one-line message and status 130."""
    try:
        return job() or 0
    except SlappError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk or the file system, not the input: say which file
        where = f"'{exc.filename}': " if exc.filename else ""
        print(f"error: cannot write or read {where}{exc.strerror or exc}. Free space or fix "
              "permissions, then run the same command again: finished work is kept.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is saved; run the same command again to "
              "continue where it stopped", file=sys.stderr)
        return 130
