"""The process's stop requests (Ctrl-C, SIGTERM), kept where a lost exception cannot lose
them.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the
signal arrives. If that is inside a finaliser (``__del__``: TensorFlow and Keras run many,
e.g. when an epoch's data iterator is dropped) or a weakref or GC callback, Python prints
"Exception ignored" and carries on: the Ctrl-C is lost (a training then ran all its
epochs; ``bench/kill_resume.py`` interrupts every stage at random moments). So the handlers also set a flag, and
long loops ask :func:`check` at safe points (every training batch), which raises the
exception again if it was lost; and an error a library raised while a stop was pending
(TensorFlow can turn the KeyboardInterrupt into an error of its own) is taken for the
stop.
"""

from __future__ import annotations

import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, systemd, a cluster scheduler), raised where Ctrl-C's
    KeyboardInterrupt would be: every stage stops the same way."""


_interrupted = threading.Event()
_terminated = threading.Event()


def request_stop(*, terminate: bool) -> KeyboardInterrupt:
    """Record a stop request; returns the exception to raise for it."""
    (_terminated if terminate else _interrupted).set()
    return Terminated() if terminate else KeyboardInterrupt()


def terminated() -> bool:
    """Whether SIGTERM asked this process to stop."""
    return _terminated.is_set()


def requested() -> bool:
    """Whether Ctrl-C or SIGTERM asked this process to stop."""
    return _interrupted.is_set() or _terminated.is_set()


def check() -> None:
    """Raise the stop request's exception again if one was made (it may have been lost)."""
    if _terminated.is_set():
        raise Terminated()
    if _interrupted.is_set():
        raise KeyboardInterrupt()


def clear() -> None:
    """Forget earlier requests (a new run in the same process: the tests)."""
    _interrupted.clear()
    _terminated.clear()
