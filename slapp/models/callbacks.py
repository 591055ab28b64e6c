"""The Keras callbacks of stage 3: one judge of the best epoch, what reads it, and the
backup that makes a training resumable.

:class:`BestEpoch` is the only place that decides whether an epoch improved: the
monitored loss must fall below the best so far by more than :data:`MIN_DELTA`. It keeps
the best epoch's weights (atomically) and counts the epochs since (``wait``); early
stopping (:class:`StopWhenStale`), the learning-rate schedule (:class:`LowerRateWhenStale`),
the epoch lines and stage 3's summary all read it, so they never disagree about which epoch
was best. :class:`TrainingBackup` saves weights, optimizer (learning rate included) and the
judge's state at each epoch end, and restores them when a stopped run starts again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from slapp import signals
from slapp.errors import StageError
from slapp.models.keras_env import import_keras
from slapp.store.atomic import atomic_path, read_json, write_json
from slapp.store.layout import TrainingLayout

logger = logging.getLogger("slapp.stages.train.training")

keras = import_keras()

MIN_DELTA = 1e-3  # an improvement of the monitored loss smaller than this does not count


def save_weights(model, path: Path) -> None:
    """``model.save_weights`` (the optimizer's state included) written atomically."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(str(tmp), overwrite=True)


def read_state(layout: TrainingLayout) -> dict | None:
    """The interrupted training's ``state.json``, or None (none, or unreadable)."""
    try:
        return read_json(layout.state_file)
    except StageError:
        return None


def write_state(layout: TrainingLayout, state: dict) -> None:
    write_json(layout.state_file, state)


class BestEpoch(keras.callbacks.Callback):
    """The one judge of the best epoch: an epoch improves when ``monitor`` falls below the
    best so far by more than ``min_delta``. Keeps that epoch's weights in ``path``, its
    value in ``best``, its number (1-based) in ``best_epoch`` and the epochs since in
    ``wait``."""

    def __init__(self, path: Path, monitor: str, min_delta: float = MIN_DELTA):
        super().__init__()
        self.path, self.monitor, self.min_delta = Path(path), monitor, min_delta
        self.best = np.inf
        self.best_epoch: int | None = None
        self.wait = 0

    def improved(self, value: float) -> bool:
        return value < self.best - self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is not None and self.improved(float(current)):
            self.best, self.best_epoch, self.wait = float(current), epoch + 1, 0
            save_weights(self.model, self.path)
        else:
            self.wait += 1


class StopWhenStale(keras.callbacks.Callback):
    """Early stopping: stop once the judge has seen ``patience`` epochs without
    improvement."""

    def __init__(self, judge: BestEpoch, patience: int):
        super().__init__()
        self.judge, self.patience = judge, patience

    def on_epoch_end(self, epoch, logs=None):
        if self.judge.wait >= self.patience:
            self.model.stop_training = True


class LowerRateWhenStale(keras.callbacks.Callback):
    """The learning-rate schedule: multiply the rate by ``factor`` after every
    ``patience`` epochs without improvement (the judge's ``wait``)."""

    def __init__(self, judge: BestEpoch, patience: int, factor: float):
        super().__init__()
        self.judge, self.patience, self.factor = judge, patience, factor

    def on_epoch_end(self, epoch, logs=None):
        rate = self.model.optimizer.learning_rate
        if logs is not None:
            logs["learning_rate"] = float(rate.numpy())  # the rate this epoch ran with
        wait = self.judge.wait
        if wait and wait % self.patience == 0:
            rate.assign(float(rate.numpy()) * self.factor)


class StopRequests(keras.callbacks.Callback):
    """Raise a Ctrl-C or SIGTERM that Python lost in a finaliser (:mod:`slapp.signals`)
    at the next batch: training stops within one batch of the request."""

    def on_train_batch_end(self, batch, logs=None):
        signals.check()

    def on_test_batch_end(self, batch, logs=None):
        signals.check()

    def on_epoch_end(self, epoch, logs=None):
        signals.check()


class TrainingBackup(keras.callbacks.Callback):
    """Makes training resumable.

    At each epoch end: weights (with the optimizer, learning rate included) go to
    ``epoch-NNNN.weights.h5``, then ``state.json`` (epoch, the judge's state, the history
    rows) replaces the old one; only then is the previous weights file removed. At the
    start of a resumed ``fit`` (``initial_epoch`` = the state's epoch) it restores them.
    Put it last in the callback list, so it saves what the others updated.
    """

    _FIELDS = ("best", "best_epoch", "wait")

    def __init__(self, layout: TrainingLayout, signature: dict, judge: BestEpoch):
        super().__init__()
        self.layout, self.signature, self.judge = layout, signature, judge
        self.history: list[dict] = []
        self.epoch = 0

    def on_train_begin(self, logs=None):
        state = read_state(self.layout)
        if not state:
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(self.layout.root / state["weights"]))
        saved = state["callbacks"].get("checkpoint", {})  # the judge (named as before)
        for key in self._FIELDS:
            if key in saved:
                setattr(self.judge, key, saved[key])
        self.history = state["history"]
        self.epoch = state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.history.append(row)
        self.save(finished=bool(self.model.stop_training))

    def save(self, finished: bool = False):
        self.layout.root.mkdir(parents=True, exist_ok=True)
        weights = self.layout.epoch_weights(self.epoch)
        save_weights(self.model, weights)
        judge = {k: _plain(getattr(self.judge, k)) for k in self._FIELDS}
        write_state(self.layout, {"signature": self.signature, "epoch": self.epoch,
                                  "weights": weights.name, "finished": finished,
                                  "callbacks": {"checkpoint": judge},
                                  "history": self.history})
        for old in self.layout.root.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink()


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


class EpochSummary(keras.callbacks.Callback):
    """One log line per epoch: losses, accuracies, learning rate, time, and whether it is
    the best so far (the judge's word: put this after it)."""

    def __init__(self, epochs: int, judge: BestEpoch):
        super().__init__()
        self.epochs, self.judge = epochs, judge
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.epochs}",
                 f"loss {logs.get('loss', np.nan):.3f} acc {logs.get('accuracy', np.nan):.3f}"]
        if "val_loss" in logs:
            parts.append(f"val_loss {logs['val_loss']:.3f} val_acc "
                         f"{logs.get('val_accuracy', np.nan):.3f}")
        parts.append(f"lr {float(self.model.optimizer.learning_rate.numpy()):.1e}")
        parts.append(f"{time.monotonic() - self.started:.1f} s")
        if self.judge.best_epoch == epoch + 1:
            parts.append("(best so far)")
        logger.info("  ".join(parts))
