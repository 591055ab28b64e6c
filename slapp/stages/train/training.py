"""Stage 3, ``train_crnn.py``: train what the backbone trains (:mod:`slapp.models.backbones`) on
the arrays of stage 2, evaluate it, and write the model bundle.

Training runs Keras with the callbacks of :mod:`slapp.models.callbacks`: one judge of the
best epoch (its weights are the model's at the end) that early stopping, the learning-rate
schedule and the summary read, and a backup at each epoch end, so a run stopped anywhere
(Ctrl-C, SIGTERM, kill -9, power loss) continues from its last finished epoch when started
again. Work files live in ``<output_dir>/training``. The bundle (:mod:`slapp.stages.train.bundle`:
``model.keras``, its portable copy ``model.onnx``) is written at the end, then the figures
on the held-out tracks (:mod:`slapp.stages.train.held_out`), ``bundle.json`` last.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.dsp.coverage import training_range
from slapp.errors import StageError
from slapp.models.callbacks import (MIN_DELTA, BestEpoch, EpochSummary, LowerRateWhenStale,
                                    StopRequests, StopWhenStale, TrainingBackup, read_state,
                                    write_state)
from slapp.models.keras_env import import_keras
from slapp.params import PipelineParams
from slapp.stages.train import bundle as bundle_io
from slapp.stages.label.evaluate import plot_curves
from slapp.stages.train.report import TrainReport
from slapp.stages.train.library_round import pseudo_label, suggest_from_library, uses_library
from slapp.stages.train.known_fit import fit_known, write_known
from slapp.stages.train.held_out import EVAL_SPLITS, evaluate_held_out, keras_scorer, write_evaluation
from slapp.store import cache
from slapp.store.artists import heard_tracks, training_artists
from slapp.store.atomic import atomic_write, read_json, remove_temp_files
from slapp.store.layout import ArraysLayout, BuildLayout, BundleLayout, TrainingLayout, output_layout
from slapp.store.lock import output_lock

logger = logging.getLogger(__name__)

keras = import_keras()


def _artists(params: PipelineParams, arrays: ArraysLayout) -> tuple[dict | None, list[dict]]:
    """``(track key → artist of the build, or None; stage 2's tracks)``."""
    info_file = output_layout(params).info_file
    artists = read_json(info_file).get("artists") if info_file.exists() else None
    return artists, read_json(arrays.tracks_file)["tracks"]


def _heard(params: PipelineParams, arrays: ArraysLayout) -> tuple[set[str] | None, list[str]]:
    artists, tracks = _artists(params, arrays)
    return heard_tracks(artists, tracks, pretrained=params.backbone.pretrained)


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


def compile_model(model, params: PipelineParams) -> None:
    model.compile(optimizer=keras.optimizers.Adam(params.training.learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])


def new_model(params: PipelineParams, n_classes: int):
    """The model stage 3 fits, as the backbone builds it (precision policy applied)."""
    keras.mixed_precision.set_global_policy(params.training.precision)
    return params.backbone.build_trainable(params, n_classes)


def train_crnn(params: PipelineParams, *, retrain: bool = False, restart: bool = False,
               progress: bool = True) -> TrainReport:
    """Run stage 3 (see the module docstring)."""
    started = time.monotonic()
    arrays, manifest = _load_arrays(params)
    classes = list(manifest["classes"])
    layout = output_layout(params).training
    report = TrainReport(bundle_dir=params.model_dir)
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
        if uses_library(params, arrays):
            fitted = _library_round(params, arrays, x_files, classes, layout, signature,
                                    fitted, report, progress)
        report.resumed_from, report.epochs_run = fitted.resumed_from, fitted.epochs_run
        report.best_epoch, report.best, report.stopped = (fitted.best_epoch, fitted.best,
                                                          fitted.stopped)
        report.train_snippets = fitted.train_snippets
        _write_bundle(params, fitted, x_files, arrays, classes, signature, report)
        report.suggested = suggest_from_library(params, arrays, fitted.model, classes)
        report.seconds = time.monotonic() - started
        shutil.rmtree(layout.root)
    return report


def _library_round(params: PipelineParams, arrays: ArraysLayout, x_files: dict[str, Path],
                   classes: list[str], layout: TrainingLayout, signature: dict,
                   first: Fitted, report: TrainReport, progress: bool) -> Fitted:
    """The second round on the labelled and the confidently labelled library tracks
    (:mod:`slapp.stages.train.library_round`), resumable like the first."""
    folder = layout.root / "round-1"
    pseudo = pseudo_label(params, arrays, first.model, classes, x_files["train"], folder)
    report.library = pseudo.line(params.training.library)
    logger.info("%s", report.library.strip())
    if not sum(pseudo.joined.values()):
        return first
    round_layout = TrainingLayout(folder)
    signature = {**signature, "round": 1}
    state = _interrupted_state(round_layout, signature, discard=False)
    return _fit(params, arrays, x_files, classes, round_layout, signature, state, progress,
                train=(pseudo.x_file, pseudo.labels))


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
           n_classes: int, first_epoch: int, train: tuple[Path, np.ndarray] | None = None):
    """``(train feed, validation feed or None)``: augmented, shuffled per epoch.
    ``train``: other training rows and labels than stage 2's (the library's round)."""
    from slapp.models.feed import SnippetFeed, class_weights

    t = params.training
    train_x, labels = train or (x_files["train"], np.load(arrays.array("train", "y")))
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
    train = SnippetFeed(train_x, labels, n_classes, t.batch_size,
                        shuffle_seed=t.seed, first_epoch=first_epoch,
                        class_weights=class_weights(labels, n_classes, t.class_weights),
                        augmentation=augmentation, db_scale=scale, lowpass_bins=bins)
    if "val" not in x_files or not x_files["val"].exists():
        return train, None
    return train, SnippetFeed(x_files["val"], np.load(arrays.array("val", "y")), n_classes,
                              max(t.batch_size, 64))


def _callbacks(params: PipelineParams, layout: TrainingLayout, signature: dict,
               state: dict | None, monitor: str) -> tuple[list, BestEpoch]:
    """``(callbacks, the judge)``: the judge of the best epoch first, then early stopping and
    the learning-rate schedule that read it, the CSV log, the epoch lines, the backup that
    makes them resumable, and last the check for a Ctrl-C that Python lost (after the
    backup: a finished epoch is saved before the run stops)."""
    t = params.training
    judge = BestEpoch(layout.best_weights, monitor=monitor)
    if state:  # the CSV log must hold exactly the finished epochs
        data = bundle_io.history_csv(state["history"])
        atomic_write(layout.history_file, lambda f: f.write(data))
        logger.info("resuming the interrupted training after epoch %d of %d",
                    state["epoch"], t.epochs)
    elif layout.history_file.exists():
        layout.history_file.unlink()
    return [judge, StopWhenStale(judge, t.early_stopping_patience),
            LowerRateWhenStale(judge, t.reduce_lr_patience, t.reduce_lr_factor),
            keras.callbacks.CSVLogger(str(layout.history_file), append=True),
            EpochSummary(t.epochs, judge), TrainingBackup(layout, signature, judge),
            StopRequests()], judge


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


def _fit(params: PipelineParams, arrays: ArraysLayout, x_files: dict[str, Path],
         classes: list[str], layout: TrainingLayout, signature: dict, state: dict | None,
         progress: bool, train: tuple[Path, np.ndarray] | None = None) -> Fitted:
    """Train (or finish an interrupted training); ``train``: see :func:`_feeds`."""
    t = params.training
    keras.utils.set_random_seed(t.seed)
    model = new_model(params, len(classes))
    compile_model(model, params)
    first_epoch = state["epoch"] if state else 0
    train_feed, val_feed = _feeds(params, arrays, x_files, len(classes), first_epoch, train)
    monitor = "val_loss" if val_feed is not None else "loss"
    callbacks, _ = _callbacks(params, layout, signature, state, monitor)
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
    best_epoch = state["callbacks"]["checkpoint"].get("best_epoch")  # the judge's
    weights = layout.best_weights
    model.load_weights(str(weights if weights.exists() else layout.root / state["weights"]))
    row = state["history"][best_epoch - 1] if best_epoch else {}
    stopped = ""
    if best_epoch and state["epoch"] < t.epochs:
        stopped = (f"stopped early after epoch {state['epoch']} of {t.epochs}: the {monitor} "
                   f"had not improved by more than {MIN_DELTA:g} for "
                   f"{t.early_stopping_patience} epochs (training.early_stopping_patience); "
                   f"the model keeps epoch {best_epoch}'s weights (its best)")
    return Fitted(model=model, state=state, resumed_from=first_epoch,
                  epochs_run=state["epoch"] - first_epoch, best_epoch=best_epoch,
                  best="".join(f", {k} {row[k]:.3f}" for k in ("val_loss", "val_accuracy")
                               if k in row),
                  stopped=stopped, train_snippets=len(train_feed.labels))


def _write_bundle(params: PipelineParams, fitted: Fitted, x_files: dict[str, Path],
                  arrays: ArraysLayout, classes: list[str], signature: dict,
                  report: TrainReport) -> None:
    """The bundle: the model and its portable copy, the held-out figures (the tracks
    labelled through them), history, curves, then ``bundle.json``."""
    bundle_dir, trained = params.model_dir, fitted.model
    model = params.backbone.bundle_model(trained, params)
    bundle_io.invalidate(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    bundle_io.save_model(model, bundle_dir)
    check = bundle_io.check_rows(arrays, x_files)
    portable = bundle_io.save_portable(
        lambda path: params.backbone.write_portable(trained, model, path, check[:2],
                                                    output_layout(params)),
        bundle_dir, check[0], check[2])
    artists, tracks = _artists(params, arrays)
    info = {"backbone": params.model.backbone, "classes": classes,
            "snippet_shape": [params.n_frames, params.features.n_mels],
            "feature_settings": params.feature_settings(),
            "normalization": read_json(arrays.stats_file),
            "training_audio": training_range(_train_entries(output_layout(params))),
            "training_artists": training_artists(artists, tracks),
            "params": params.to_dict(), "signature": signature, "portable": portable,
            "trained": {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "epochs": fitted.state["epoch"], "best_epoch": fitted.best_epoch,
                        "train_snippets": fitted.train_snippets,
                        "library": report.library.strip() or None,
                        "parameters": int(model.count_params())}}
    bundle = bundle_io.Bundle(folder=bundle_dir, classes=classes, params=params,
                              stats=info["normalization"], info=info,
                              engine="keras" if "error" in portable else "onnxruntime fp32",
                              _model=model)
    report.portable = portable.get("error", "")
    logger.info("evaluating on the validation and test tracks")
    heard, report.artists = _heard(params, arrays)
    report.metrics = evaluate_held_out(bundle, keras_scorer(trained), arrays, x_files,
                                       params.paths.input_dir, heard)
    write_evaluation(bundle_dir, report.metrics, classes)
    info["known"] = write_known(bundle_dir, fit_known(params, tracks, artists, report.metrics))
    data = bundle_io.history_csv(fitted.state["history"])
    atomic_write(BundleLayout(bundle_dir).history_file, lambda f: f.write(data))
    plot_curves(BundleLayout(bundle_dir).curves_file, fitted.state["history"])
    bundle_io.write_info(bundle_dir, info)


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


def evaluate_bundle(params: PipelineParams) -> TrainReport:
    """``--evaluate-only``: evaluate the bundle on the current val/test arrays and tracks
    and rewrite its evaluation files (the arrays must have the bundle's classes and
    shapes)."""
    started = time.monotonic()
    folder = params.model_dir
    arrays, manifest = _load_arrays(params)
    with output_lock(Path(params.paths.output_dir), "train_crnn.py --evaluate-only"):
        loaded = bundle_io.load_bundle(folder, current=params)
        classes = list(manifest["classes"])
        if classes != loaded.classes:
            raise StageError(f"The arrays' classes ({', '.join(classes)}) differ from the "
                             f"bundle's ({', '.join(loaded.classes)}). Expected the dataset "
                             "the bundle was trained on.")
        if list(manifest["snippet_shape"]) != list(loaded.info.get("snippet_shape", [])):
            raise StageError("The arrays were made with other feature settings than the "
                             "bundle's. Expected the settings it was trained with.")
        report = TrainReport(bundle_dir=folder, evaluate_only=True)
        heard, report.artists = _heard(params, arrays)
        report.metrics = evaluate_held_out(loaded, loaded.scorer(), arrays, {},
                                           params.paths.input_dir, heard)
        info = dict(loaded.info)
        bundle_io.invalidate(folder)
        write_evaluation(folder, report.metrics, classes)
        info.pop("bundle_version", None)
        bundle_io.write_info(folder, info)
        report.seconds = time.monotonic() - started
    return report
