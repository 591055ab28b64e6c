"""The model bundle: the one folder prediction needs.

Layout of ``<model_dir>`` (``paths.model_dir``, default ``<output_dir>/model``)::

    model.keras          the trained Keras model (best epoch)
    bundle.json          version, class names, every audio/slicing/feature parameter,
                         normalisation statistics, all training parameters, training facts
    evaluation.json      validation/test metrics (snippet and track level)
    history.csv          per-epoch loss/accuracy/learning rate
    curves.png           training curves
    confusion_<split>.csv / .png    track-level confusion matrices
    report.txt           per-class precision/recall/F1 per split

``bundle.json`` is written last: a folder without it is an incomplete bundle and is
refused. Prediction takes the feature settings from the bundle, never from the current
parameters file (when they differ, the bundle wins and says so).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slapp.store.atomic import atomic_path, read_json, write_json
from slapp.store.cache import changed_settings
from slapp.errors import ParameterError, StageError
from slapp.store.layout import BundleLayout
from slapp.params import PipelineParams, params_from_dict

logger = logging.getLogger(__name__)

BUNDLE_VERSION = 1


@dataclass
class Bundle:
    """A loaded bundle: the model, its classes, and the parameters it was trained with."""

    folder: Path
    model: object
    classes: list[str]
    params: PipelineParams
    stats: dict
    info: dict
    _scorers: dict = field(default_factory=dict, repr=False, compare=False)

    def scorer(self, batch_size: int | None = None):
        """The model as a :class:`~slapp.models.inference.Scorer`, traced once per bundle and
        batch size (every later run with this loaded bundle reuses it)."""
        if batch_size not in self._scorers:
            from slapp.models.inference import Scorer

            self._scorers[batch_size] = Scorer(self.model, batch_size=batch_size)
        return self._scorers[batch_size]


def save_model(model, folder: Path) -> None:
    """Write ``model.keras`` atomically (Keras wants the ``.keras`` suffix on the temp)."""
    with atomic_path(BundleLayout(folder).model_file, suffix=".keras") as tmp:
        model.save(str(tmp))


def write_info(folder: Path, info: dict) -> None:
    """Write ``bundle.json`` (last: it marks the bundle complete)."""
    write_json(BundleLayout(folder).info_file, {"bundle_version": BUNDLE_VERSION, **info})


def read_info(folder: Path) -> dict | None:
    """``bundle.json`` of a complete bundle, or None."""
    try:
        return read_json(BundleLayout(folder).info_file)
    except StageError:
        return None


def invalidate(folder: Path) -> None:
    """Mark the bundle incomplete before its files are replaced."""
    try:
        BundleLayout(folder).info_file.unlink()
    except FileNotFoundError:
        pass


def load_bundle(folder: str | os.PathLike, *, current: PipelineParams | None = None
                ) -> Bundle:
    """Load and check a bundle; ``current`` only serves to warn about differing settings."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StageError(f"Model bundle '{folder}' not found. Expected the folder "
                         "train_crnn.py writes (paths.model_dir), or pass --model.")
    files = BundleLayout(folder)
    info_path = files.info_file
    if not info_path.exists():
        raise StageError(f"Model bundle '{folder}' is incomplete (no {info_path.name}). Run "
                         "train_crnn.py to finish it.")
    info = read_json(info_path)
    version = info.get("bundle_version") if isinstance(info, dict) else None
    if version != BUNDLE_VERSION:
        raise StageError(f"Model bundle '{folder}' has format version {version}; this slapp "
                         f"reads version {BUNDLE_VERSION}. Retrain it with this version "
                         "(train_crnn.py --retrain).")
    try:
        params = params_from_dict(info["params"], base=folder, backbone_defaults=False)
        classes = [str(c) for c in info["classes"]]
        stats = info["normalization"]
    except (KeyError, TypeError, ParameterError) as exc:
        raise StageError(f"Model bundle file '{info_path}' is damaged ({exc}). Retrain "
                         "it with train_crnn.py --retrain.") from None
    model_path = files.model_file
    if not model_path.exists():
        raise StageError(f"Model bundle '{folder}' has no {model_path.name}. Retrain it with "
                         "train_crnn.py --retrain.")
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception:  # Keras raises many kinds (even "File not found") for a damaged file
        size = model_path.stat().st_size
        raise StageError(f"Model file '{model_path}' exists ({size} bytes) but cannot be "
                         "read: it is damaged or incomplete (a copy cut short?). Copy the "
                         "bundle again, or rebuild it with train_crnn.py --retrain.") from None
    expected = (params.n_frames, params.features.n_mels)
    if tuple(model.input_shape[1:]) != expected or model.output_shape[-1] != len(classes):
        raise StageError(f"Model bundle '{folder}' is inconsistent: model input "
                         f"{model.input_shape[1:]} / {model.output_shape[-1]} classes, but "
                         f"its settings say {expected} / {len(classes)}.")
    if current is not None:
        diffs = changed_settings(params.feature_settings(), current.feature_settings())
        if diffs:
            logger.info("the bundle's feature settings differ from %s (bundle -> file: %s); "
                        "using the bundle's", current.source or "the parameters file",
                        "; ".join(diffs))
    return Bundle(folder=folder, model=model, classes=classes, params=params, stats=stats,
                  info=info)
