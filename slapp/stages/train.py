"""Stage 3, ``train_crnn.py``: train what the backbone trains (:mod:`slapp.models.backbones`) on
the arrays of stage 2, evaluate it, and write the model bundle.

Training uses Keras callbacks: EarlyStopping, ReduceLROnPlateau, CSVLogger,
:class:`BestWeights` (the one judge of the best epoch; its weights, atomically, are the
model's at the end) and :class:`TrainingBackup`, which saves weights, optimizer and the
other callbacks' state at each epoch end, so a run stopped anywhere (Ctrl-C, SIGTERM,
kill -9, power loss) continues from its last finished epoch when started again. Work files live in ``<output_dir>/training``; the bundle
(:mod:`slapp.stages.bundle`) is written at the end, ``bundle.json`` last.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slapp.stages import bundle as bundle_io
from slapp.store import cache
from slapp.models.inference import predict_probs
from slapp.store.artists import artist_warnings, class_artists
from slapp.store.atomic import atomic_path, atomic_write, read_json, remove_temp_files, write_json
from slapp.store.layout import ArraysLayout, BuildLayout, BundleLayout, TrainingLayout, output_layout
from slapp.dsp.coverage import training_range
from slapp.errors import StageError
from slapp.stages.evaluate import (artist_line, plot_confusion, plot_curves, report_text,
                                   split_metrics, write_confusion_csv)
from slapp.models.keras_env import import_keras
from slapp.store.lock import output_lock
from slapp.params import PipelineParams

logger = logging.getLogger(__name__)

keras = import_keras()

EVAL_SPLITS = ("val", "test")


def read_state(layout: TrainingLayout) -> dict | None:
    """The interrupted training's ``state.json``, or None (none, or unreadable)."""
    try:
        return read_json(layout.state_file)
    except StageError:
        return None


def save_weights(model, path: Path) -> None:
    """``model.save_weights`` (the optimizer's state included) written atomically."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(str(tmp), overwrite=True)


class BestWeights(keras.callbacks.Callback):
    """The one notion of the best epoch: the first with the lowest ``monitor``. Keeps its
    weights in ``path`` (atomic), its value in ``best`` and its number (1-based) in
    ``best_epoch``."""

    def __init__(self, path: Path, monitor: str):
        super().__init__()
        self.path, self.monitor = Path(path), monitor
        self.best = np.inf
        self.best_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is not None and current < self.best:
            self.best, self.best_epoch = float(current), epoch + 1
            save_weights(self.model, self.path)


class TrainingBackup(keras.callbacks.Callback):
    """Makes training resumable: also keeps the state of the other callbacks.

    At each epoch end: weights (with the optimizer, learning rate included) go to
    ``epoch-NNNN.weights.h5``, then ``state.json`` (epoch, the callbacks' counters and
    best values, the history rows) replaces the old one; only then is the previous weights
    file removed. At the start of a resumed ``fit`` (``initial_epoch`` = the state's
    epoch) it restores them. Put it last in the callback list, so it saves what the
    others updated and restores after they reset. The counters of Keras' EarlyStopping
    and ReduceLROnPlateau (``wait``, ``best``, ``cooldown_counter``...) are attributes
    that Keras does not document; ``requirements.txt`` pins Keras 3 and
    ``tests/test_train.py`` resumes an interrupted training to check they still work.
    """

    def __init__(self, layout: TrainingLayout, signature: dict, stateful: dict):
        super().__init__()
        self.layout = layout
        self.signature = signature
        self.stateful = stateful  # name -> callback
        self.history: list[dict] = []
        self.epoch = 0

    _FIELDS = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")  # see above

    def on_train_begin(self, logs=None):
        state = read_state(self.layout)
        if not state:
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(self.layout.root / state["weights"]))
        for name, values in state["callbacks"].items():
            for key, value in values.items():
                setattr(self.stateful[name], key, value)
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
        callbacks = {name: {k: _plain(getattr(cb, k)) for k in self._FIELDS
                            if hasattr(cb, k)} for name, cb in self.stateful.items()}
        write_state(self.layout, {"signature": self.signature, "epoch": self.epoch,
                                  "weights": weights.name, "finished": finished,
                                  "callbacks": callbacks, "history": self.history})
        for old in self.layout.root.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink()


def write_state(layout: TrainingLayout, state: dict) -> None:
    write_json(layout.state_file, state)


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


MIN_DELTA = 1e-3  # an improvement of the monitored loss smaller than this does not count


class EpochSummary(keras.callbacks.Callback):
    """One log line per epoch: losses, accuracies, learning rate, time, and whether it is
    the best so far (``checkpoint``'s judgement: put this after it)."""

    def __init__(self, epochs: int, checkpoint: BestWeights):
        super().__init__()
        self.epochs, self.checkpoint = epochs, checkpoint
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
        if self.checkpoint.best_epoch == epoch + 1:
            parts.append("(best so far)")
        logger.info("  ".join(parts))


@dataclass
class TrainReport:
    bundle_dir: Path
    up_to_date: bool = False
    resumed_from: int = 0
    epochs_run: int = 0
    best_epoch: int | None = None
    metrics: dict = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    evaluate_only: bool = False
    train_snippets: int = 0
    stopped: str = ""   # why training ended before training.epochs, for the summary
    best: str = ""      # the kept epoch's validation figures
    artists: list[str] = field(default_factory=list)  # artists per class, warnings

    def summary(self) -> list[str]:
        if self.up_to_date:
            lines = [f"nothing to do: the model bundle '{self.bundle_dir}' is up to date "
                     "(use --retrain to train again, --evaluate-only to re-evaluate)"]
        elif self.evaluate_only:
            lines = [f"evaluated '{self.bundle_dir}' in {self.seconds:.1f} s"]
        else:
            resumed = (f", resumed after epoch {self.resumed_from}" if self.resumed_from
                       else "")
            lines = [f"training finished in {self.seconds:.1f} s: {self.epochs_run} epochs"
                     f"{resumed}; best epoch {self.best_epoch}{self.best}"]
            if self.stopped:
                lines.append(f"  {self.stopped}")
        for part, m in self.metrics.items():
            s, t = m["snippet"], m["track"]
            lines.append(f"  {part}: snippet accuracy {s['accuracy']:.3f} ({s['count']} "
                         f"snippets), track accuracy {t['accuracy']:.3f} ({t['count']} "
                         f"tracks, sum of snippet scores), track macro-F1 "
                         f"{t['macro_f1']:.3f}")
            lines.append("    " + artist_line(t.get("artists")))
        lines += self.artists
        if not self.metrics and not self.up_to_date:
            lines.append("  no validation or test tracks: nothing to evaluate")
        lines.append(f"model bundle: {self.bundle_dir}")
        return lines


def _artists_and_tracks(params: PipelineParams, arrays: ArraysLayout
                        ) -> tuple[dict[str, str | None] | None, list[dict]]:
    """``(track key → artist of the build, or None when no track has one; the arrays'
    tracks)``."""
    info_file = output_layout(params).info_file
    artists = read_json(info_file).get("artists") if info_file.exists() else None
    if not artists or not any(artists.values()):
        return None, []
    return artists, read_json(arrays.tracks_file)["tracks"]


def training_artists(params: PipelineParams, arrays: ArraysLayout) -> list[str]:
    """The artists of the training tracks (each once, case-blind, sorted): what the
    bundle records so that prediction can say which artists an accuracy is on; ``[]``
    when no track has an artist."""
    artists, tracks = _artists_and_tracks(params, arrays)
    names: dict[str, str] = {}
    for t in tracks:
        artist = (artists or {}).get(t["key"])
        if t["split"] == "train" and artist:
            names.setdefault(artist.casefold(), artist)
    return sorted(names.values(), key=str.casefold)


def heard_tracks(params: PipelineParams, arrays: ArraysLayout
                 ) -> tuple[set[int] | None, list[str]]:
    """``(ids of evaluation tracks whose artist has a training track, or None when no
    track has an artist; lines on the training artists per class)``."""
    artists, tracks = _artists_and_tracks(params, arrays)
    if artists is None:
        return None, []
    trained = [t for t in tracks if t["split"] == "train"]
    heard = {artists[t["key"]].casefold() for t in trained if artists.get(t["key"])}
    ids = {t["id"] for t in tracks if t["split"] != "train" and artists.get(t["key"])
           and artists[t["key"]].casefold() in heard}
    by_class: dict[str, list[str]] = {}
    for t in trained:
        by_class.setdefault(t["class"], []).append(t["key"])
    per_class = class_artists(by_class, artists)
    lines = ["  training artists per class: " + ", ".join(
        f"{c} {len(v['artists'])}" for c, v in sorted(per_class.items()))]
    warnings = [f"  warning: {w}" for w in artist_warnings(per_class)]
    if warnings and not params.backbone.pretrained:
        warnings.append('  hint: with few artists per class, "model": {"backbone": '
                        '"musicnn-msd"} (pretrained) labels artists it never heard better: '
                        "0.81 against 0.57 mean recall on gtzan-other-artists "
                        "(BENCHMARKS.md)")
    return ids, lines + warnings


def _signature(params: PipelineParams, inputs: dict, classes: list[str]) -> dict:
    return {"arrays": inputs, "classes": classes, "model": params.to_dict()["model"],
            "training": params.to_dict()["training"]}


def _same_run(a: dict, b: dict) -> bool:
    """Same signature but for ``training.epochs`` (raising it continues a training)."""
    def strip(sig):
        sig = json.loads(json.dumps(sig))
        sig.get("training", {}).pop("epochs", None)
        return sig

    return strip(a) == strip(b)


def _load_arrays(params: PipelineParams) -> tuple[ArraysLayout, dict]:
    arrays = output_layout(params).arrays
    manifest = read_json(arrays.manifest_file) if arrays.manifest_file.exists() else {}
    if not manifest.get("complete"):
        raise StageError(f"No processed arrays in '{arrays.root}'. Run build_dataset.py "
                         "and process_dataset.py first.")
    fingerprint = cache.fingerprint(params.feature_settings())
    if manifest["inputs"].get("build_fingerprint") != fingerprint:
        raise StageError(f"The arrays in '{arrays.root}' were made with other audio/slicing/"
                         "feature parameters than the current ones. Run build_dataset.py "
                         "--rebuild and process_dataset.py, or restore the old values.")
    shape = tuple(manifest["snippet_shape"])
    if shape != (params.n_frames, params.features.n_mels):
        raise StageError(f"The arrays hold {shape} snippets, the parameters say "
                         f"{(params.n_frames, params.features.n_mels)}. Run "
                         "process_dataset.py again.")
    return arrays, manifest


def _class_weights(labels: np.ndarray, n_classes: int, how: str) -> np.ndarray | None:
    if how == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def compile_model(model, params: PipelineParams) -> None:
    model.compile(optimizer=keras.optimizers.Adam(params.training.learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])


def new_model(params: PipelineParams, n_classes: int):
    """The model stage 3 fits, as the backbone builds it (precision policy applied)."""
    keras.mixed_precision.set_global_policy(params.training.precision)
    return params.backbone.build_trainable(params, n_classes)


def evaluate_splits(model, arrays: ArraysLayout, classes: list[str], batch_size: int,
                    x_files: dict[str, Path] | None = None, heard: set[int] | None = None
                    ) -> dict:
    """Metrics per non-empty split of :data:`EVAL_SPLITS`; ``x_files`` replaces the
    arrays' ``<part>_X.npy`` (embeddings for a head); ``heard``: see
    :func:`~slapp.stages.evaluate.split_metrics`."""
    metrics = {}
    for part in EVAL_SPLITS:
        x_file = (x_files or {}).get(part, arrays.array(part, "X"))
        if not x_file.exists():
            continue
        x = np.load(x_file, mmap_mode="r")
        probs = predict_probs(model, x, batch_size=max(batch_size, 64))
        metrics[part] = split_metrics(probs, np.load(arrays.array(part, "y")),
                                      np.load(arrays.array(part, "track")), classes, heard)
    return metrics


def _write_evaluation(folder: Path, metrics: dict, classes: list[str]) -> None:
    layout = BundleLayout(folder)
    write_json(layout.evaluation_file, metrics)
    texts = []
    for part, m in metrics.items():
        name = {"val": "validation", "test": "test"}[part]
        write_confusion_csv(layout.confusion_file(part, "csv"), m["track"]["confusion"],
                            classes)
        plot_confusion(layout.confusion_file(part, "png"), m["track"]["confusion"], classes,
                       f"{name} tracks (sum of snippet scores): accuracy "
                       f"{m['track']['accuracy']:.2f}")
        texts.append(f"{name}: snippet accuracy {m['snippet']['accuracy']:.3f}, track "
                     f"accuracy {m['track']['accuracy']:.3f}, track macro-F1 "
                     f"{m['track']['macro_f1']:.3f}\n{report_text(m, classes)}\n")
    data = "\n".join(texts).encode("utf-8")
    atomic_write(layout.report_file, lambda f: f.write(data))


def _history_csv(history: list[dict]) -> bytes:
    keys = ["epoch"] + sorted({k for row in history for k in row} - {"epoch"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    return buf.getvalue().encode("utf-8")


def train_crnn(params: PipelineParams, *, retrain: bool = False, restart: bool = False,
               progress: bool = True) -> TrainReport:
    """Run stage 3 (see the module docstring)."""
    started = time.monotonic()
    arrays, manifest = _load_arrays(params)
    classes = list(manifest["classes"])
    layout = output_layout(params).training
    report = TrainReport(bundle_dir=params.model_dir, classes=classes)
    signature = _signature(params, manifest["inputs"], classes)
    with output_lock(Path(params.paths.output_dir), "train_crnn.py"):
        remove_temp_files(params.model_dir)  # what a kill during a bundle write left
        info = bundle_io.read_info(params.model_dir)
        if info and info.get("signature") == signature and not retrain:
            report.up_to_date = True
            return report
        state = _interrupted_state(layout, signature, discard=retrain or restart)
        x_files = params.backbone.training_inputs(arrays, ("train",) + EVAL_SPLITS, params,
                                                  progress=progress)
        fitted = _fit(params, arrays, x_files, classes, layout, signature, state, progress)
        model, state = fitted.model, fitted.state
        report.resumed_from, report.epochs_run = fitted.resumed_from, fitted.epochs_run
        report.best_epoch, report.best, report.stopped = (fitted.best_epoch, fitted.best,
                                                          fitted.stopped)
        report.train_snippets = fitted.train_snippets
        logger.info("evaluating on the validation and test tracks")
        heard, report.artists = heard_tracks(params, arrays)
        report.metrics = evaluate_splits(model, arrays, classes, params.training.batch_size,
                                         x_files, heard)
        report.seconds = time.monotonic() - started
        _write_bundle(params, model, x_files, arrays, classes, state, signature, report)
        shutil.rmtree(layout.root)
    return report


def _interrupted_state(layout: TrainingLayout, signature: dict, *, discard: bool
                       ) -> dict | None:
    """The state of an interrupted training to resume (None: start afresh); refuses one
    made with other inputs or parameters."""
    state = read_state(layout)
    if state and discard:
        shutil.rmtree(layout.root)
        state = None
    if state and not _same_run(state.get("signature", {}), signature):
        changes = cache.changed_settings(state.get("signature", {}), signature)
        raise StageError(
            f"'{layout.root}' holds an interrupted training with other inputs or "
            f"parameters ({'; '.join(c for c in changes[:4])}). Run train_crnn.py "
            "--restart to discard it and start over, or restore the old values.")
    remove_temp_files(layout.root)
    layout.root.mkdir(parents=True, exist_ok=True)
    return state


def _feeds(params: PipelineParams, arrays: ArraysLayout, x_files: dict[str, Path],
           n_classes: int, first_epoch: int):
    """``(train feed, validation feed or None)``: augmented, shuffled per epoch."""
    from slapp.models.feed import SnippetFeed

    t = params.training
    labels = np.load(arrays.array("train", "y"))
    augmentation, scale, bins = None, None, None
    if params.backbone.augments:  # log-mel augmentations; not for embeddings
        from slapp.dsp.augment import Augmentation, db_scale, lowpass_bins

        augmentation = Augmentation(t.augment_gain_db, t.augment_time_masks,
                                    t.augment_freq_masks, t.augment_mixup_alpha,
                                    t.augment_lowpass, t.augment_lowpass_min_hz)
        stats, f = read_json(arrays.stats_file), params.features
        scale = db_scale(stats, f.n_mels)
        bins = lowpass_bins(stats, sample_rate=params.audio.sample_rate, n_mels=f.n_mels,
                            fmin=f.fmin, fmax=f.fmax)
    train = SnippetFeed(x_files["train"], labels, n_classes, t.batch_size,
                        shuffle_seed=t.seed, first_epoch=first_epoch,
                        class_weights=_class_weights(labels, n_classes, t.class_weights),
                        augmentation=augmentation, db_scale=scale, lowpass_bins=bins)
    if "val" not in x_files or not x_files["val"].exists():
        return train, None
    return train, SnippetFeed(x_files["val"], np.load(arrays.array("val", "y")), n_classes,
                              max(t.batch_size, 64))


def _callbacks(params: PipelineParams, layout: TrainingLayout, signature: dict,
               state: dict | None, monitor: str) -> list:
    """Early stopping, LR schedule, best weights, CSV log, epoch lines, and the backup
    that makes them all resumable (last)."""
    t = params.training
    stopping = keras.callbacks.EarlyStopping(monitor=monitor, min_delta=MIN_DELTA,
                                             patience=t.early_stopping_patience)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=t.reduce_lr_factor,
                                                patience=t.reduce_lr_patience, verbose=0)
    checkpoint = BestWeights(layout.best_weights, monitor=monitor)
    if state:  # the CSV log must hold exactly the finished epochs
        data = _history_csv(state["history"])
        atomic_write(layout.history_file, lambda f: f.write(data))
        logger.info("resuming the interrupted training after epoch %d of %d",
                    state["epoch"], t.epochs)
    elif layout.history_file.exists():
        layout.history_file.unlink()
    csv_log = keras.callbacks.CSVLogger(str(layout.history_file), append=True)
    summary = EpochSummary(t.epochs, checkpoint)
    backup = TrainingBackup(layout, signature, {"early_stopping": stopping,
                                                "reduce_lr": plateau,
                                                "checkpoint": checkpoint})
    return [stopping, plateau, checkpoint, csv_log, summary, backup]


@dataclass(frozen=True)
class Fitted:
    """What :func:`_fit` returns: the model with the best epoch's weights, the final
    training state, and the facts the report shows."""

    model: object
    state: dict
    resumed_from: int
    epochs_run: int
    best_epoch: int | None
    best: str       # the best epoch's validation figures, for the summary line
    stopped: str    # why training ended before training.epochs
    train_snippets: int


def _best_epoch(state: dict, monitor: str) -> int | None:
    """The checkpoint's best epoch; states saved before it was recorded: the first
    lowest ``monitor`` in the history (the checkpoint's rule)."""
    best = state.get("callbacks", {}).get("checkpoint", {}).get("best_epoch")
    if best is None and state["history"]:
        best = int(np.argmin([row.get(monitor, np.inf) for row in state["history"]])) + 1
    return best


def _fit(params: PipelineParams, arrays: ArraysLayout, x_files: dict[str, Path],
         classes: list[str], layout: TrainingLayout, signature: dict, state: dict | None,
         progress: bool) -> Fitted:
    """Train (or finish an interrupted training)."""
    t = params.training
    keras.utils.set_random_seed(t.seed)
    model = new_model(params, len(classes))
    compile_model(model, params)
    first_epoch = state["epoch"] if state else 0
    train_feed, val_feed = _feeds(params, arrays, x_files, len(classes), first_epoch)
    monitor = "val_loss" if val_feed is not None else "loss"
    callbacks = _callbacks(params, layout, signature, state, monitor)
    if not (state and state.get("finished")) and first_epoch < t.epochs:
        logger.info("training %s (%d parameters) on %d snippets, %d classes, "
                    "batch %d, up to %d epochs", model.name, model.count_params(),
                    len(train_feed.labels), len(classes), t.batch_size, t.epochs)
        model.fit(train_feed, validation_data=val_feed, epochs=t.epochs,
                  initial_epoch=first_epoch, callbacks=callbacks,
                  verbose=1 if progress and sys.stdout.isatty() else 0)
        state = read_state(layout)
        if state is None:  # fit ran no epoch (cannot happen with epochs > first)
            raise StageError("training ran no epoch")
        state["finished"] = True
        write_state(layout, state)
    if not model.optimizer.built:  # the weight files hold the optimizer's state too
        model.optimizer.build(model.trainable_variables)
    best_epoch = _best_epoch(state, monitor)
    weights = layout.best_weights
    model.load_weights(str(weights if weights.exists() else layout.root / state["weights"]))
    row = state["history"][best_epoch - 1] if best_epoch else {}
    stopped = ""
    if best_epoch and state["epoch"] < t.epochs:
        stopped = (f"stopped early after epoch {state['epoch']} of {t.epochs}: the {monitor} "
                   f"had not improved by {MIN_DELTA:g} for {t.early_stopping_patience} "
                   "epochs (training.early_stopping_patience); the model keeps epoch "
                   f"{best_epoch}'s weights (its best)")
    return Fitted(model=model, state=state, resumed_from=first_epoch,
                  epochs_run=state["epoch"] - first_epoch, best_epoch=best_epoch,
                  best="".join(f", {k} {row[k]:.3f}" for k in ("val_loss", "val_accuracy")
                               if k in row),
                  stopped=stopped, train_snippets=len(train_feed.labels))


def _write_bundle(params: PipelineParams, trained, x_files: dict[str, Path],
                  arrays: ArraysLayout, classes: list[str], state: dict, signature: dict,
                  report: TrainReport) -> None:
    """The bundle: model, its portable copy, evaluation files, history, curves, then
    ``bundle.json``."""
    model = params.backbone.bundle_model(trained, params)
    bundle_dir = params.model_dir
    history = state["history"]
    bundle_io.invalidate(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    bundle_io.save_model(model, bundle_dir)
    check = _check_rows(arrays, x_files)
    portable = bundle_io.save_portable(
        lambda path: params.backbone.write_portable(trained, model, path, check,
                                                    output_layout(params)),
        bundle_dir, len(check[0]))
    for old in bundle_dir.glob("confusion_*"):
        old.unlink()
    _write_evaluation(bundle_dir, report.metrics, classes)
    data = _history_csv(history)
    atomic_write(BundleLayout(bundle_dir).history_file, lambda f: f.write(data))
    plot_curves(BundleLayout(bundle_dir).curves_file, history)
    bundle_io.write_info(bundle_dir, {
        "backbone": params.model.backbone, "classes": classes,
        "snippet_shape": [params.n_frames, params.features.n_mels],
        "feature_settings": params.feature_settings(),
        "normalization": read_json(arrays.stats_file),
        "training_audio": training_range(_train_entries(output_layout(params))),
        "training_artists": training_artists(params, arrays),
        "params": params.to_dict(), "signature": signature, "portable": portable,
        "trained": {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "epochs": state["epoch"], "best_epoch": report.best_epoch,
                    "train_snippets": report.train_snippets,
                    "parameters": int(model.count_params())}})


def _check_rows(arrays: ArraysLayout, x_files: dict[str, Path], most: int = 32
                ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``most`` of the bundle's own snippets (test, else validation, else training),
    as the bundle's network takes them and as the trained model does (the same rows of
    ``x_files``): the portable copy is checked on these."""
    for part in ("test", "val", "train"):
        path = arrays.array(part, "X")
        if path.exists() and part in x_files:
            x = np.load(path, mmap_mode="r")
            if len(x):
                inputs = np.load(x_files[part], mmap_mode="r")
                return (np.asarray(x[:most], dtype=np.float32),
                        np.asarray(inputs[:most], dtype=np.float32))
    raise StageError(f"No snippets in '{arrays.root}' to check the portable model on.")


def _train_entries(layout: BuildLayout) -> list[dict]:
    """Build-manifest entries of the cached training tracks (their audio profile)."""
    if not layout.manifest_file.exists():
        return []
    tracks = read_json(layout.manifest_file).get("tracks", {})
    return [e for e in tracks.values() if e.get("split") == "train"
            and e.get("status") == "done"]


def model_summary(params: PipelineParams) -> str:
    """The Keras summary of the model the parameters describe (``--summary``)."""
    n_classes, note = None, ""
    layout = output_layout(params)
    for path in (layout.arrays.manifest_file, layout.info_file):
        if path.exists():
            n_classes = len(read_json(path).get("classes", [])) or None
            if n_classes:
                break
    if n_classes is None:
        n_classes, note = 10, "(10 classes assumed: no build yet to count them)\n"
    model = new_model(params, n_classes)
    if params.backbone.summary_note:
        note += params.backbone.summary_note + "\n"
    lines: list[str] = []
    model.summary(print_fn=lambda text, **_: lines.append(text), line_length=78)
    return note + "\n".join(lines)


def evaluate_bundle(params: PipelineParams, *, model_dir: Path | None = None) -> TrainReport:
    """``--evaluate-only``: evaluate the bundle on the current val/test arrays and rewrite
    its evaluation files (the arrays must have the bundle's classes and shapes)."""
    started = time.monotonic()
    folder = Path(model_dir or params.model_dir)
    arrays, manifest = _load_arrays(params)
    with output_lock(Path(params.paths.output_dir), "train_crnn.py --evaluate-only"):
        loaded = bundle_io.load_bundle(folder, current=params)
        classes = list(manifest["classes"])
        if classes != loaded.classes:
            raise StageError(f"The arrays' classes ({', '.join(classes)}) differ from the "
                             f"bundle's ({', '.join(loaded.classes)}). Expected the dataset "
                             "the bundle was trained on.")
        if tuple(manifest["snippet_shape"]) != tuple(loaded.model.input_shape[1:]):
            raise StageError("The arrays were made with other feature settings than the "
                             "bundle's. Expected the settings it was trained with.")
        report = TrainReport(bundle_dir=folder, classes=classes, evaluate_only=True)
        heard, report.artists = heard_tracks(params, arrays)
        report.metrics = evaluate_splits(loaded.model, arrays, classes,
                                         params.training.batch_size, heard=heard)
        info = dict(loaded.info)
        bundle_io.invalidate(folder)
        for old in folder.glob("confusion_*"):
            old.unlink()
        _write_evaluation(folder, report.metrics, classes)
        info.pop("bundle_version", None)
        bundle_io.write_info(folder, info)
        report.seconds = time.monotonic() - started
    return report
