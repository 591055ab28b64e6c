"""The model bundle: the one folder prediction needs.

Layout of ``<model_dir>`` (``paths.model_dir``, default ``<output_dir>/model``)::

    model.keras          the trained Keras model (best epoch)
    model.onnx           its portable copy: prediction runs it on the one runtime
                         (slapp.models.runtime), without TensorFlow (checked against
                         model.keras when written)
    check.npz            a few test snippets per test track and onnxruntime's
                         probabilities on them: every backend is checked on these
    known.npz            what the ``known`` score compares a track with
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

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slapp.store.atomic import atomic_path, read_json, write_json
from slapp.store.cache import changed_settings
from slapp.errors import ParameterError, StageError
from slapp.store.layout import ArraysLayout, BundleLayout
from slapp.params import PipelineParams, params_from_dict

logger = logging.getLogger(__name__)

BUNDLE_VERSION = 1


@dataclass
class Bundle:
    """A loaded bundle: its network, classes, and the parameters it was trained with.

    ``engine`` says how the network runs: the checked backend of the portable copy
    (``"openvino f32"``, ``"onnxruntime fp32"``, ...: :mod:`slapp.models.runtime`; TensorFlow
    is never imported) or ``"keras"`` (``model.keras`` through TensorFlow: a bundle without
    a usable portable copy); ``requested`` is the engine asked for (``"auto"``, ...), what a
    Dask worker resolves on its own CPU. :attr:`model` loads the Keras model on demand."""

    folder: Path
    classes: list[str]
    params: PipelineParams
    stats: dict
    info: dict
    engine: str = "keras"
    requested: str = "auto"
    _model: object = field(default=None, repr=False, compare=False)
    _scorers: dict = field(default_factory=dict, repr=False, compare=False)
    _known: object = field(default=False, repr=False, compare=False)

    @property
    def known(self):
        """The :class:`~slapp.models.known.KnownModel` of ``known.npz`` and
        ``bundle.json``'s ``known`` (None: a bundle trained before slapp measured it)."""
        if self._known is False:
            from slapp.models.known import KnownModel

            entry, path = self.info.get("known"), BundleLayout(self.folder).known_file
            self._known = None
            if isinstance(entry, dict) and path.exists():
                try:
                    with np.load(path, allow_pickle=False) as data:
                        self._known = KnownModel.from_arrays(data, entry["threshold"])
                except (OSError, ValueError, KeyError) as exc:
                    raise StageError(f"Model bundle file '{path}' is damaged ({exc}). "
                                     "Retrain it with train_crnn.py --retrain.") from None
        return self._known

    @property
    def model(self):
        """The Keras model (imports TensorFlow the first time)."""
        if self._model is None:
            self._model = _load_keras(BundleLayout(self.folder).model_file)
        return self._model

    def batch_size(self, requested: int | None = None) -> int:
        """Snippets per network call: ``requested``, else the engine's measured default."""
        if requested:
            return requested
        if self.engine != "keras":
            return self.scorer().batch
        from slapp.models.inference import batch_for_memory

        return batch_for_memory(self.model)

    def scorer(self, batch_size: int | None = None):
        """The network as a callable ``x (n, n_frames, n_mels) -> probabilities (n,
        n_classes)``, made once per bundle and batch size: a checked
        :class:`~slapp.models.engine_check.CheckedNetwork` of the one runtime or a traced
        Keras :class:`~slapp.models.inference.Scorer`."""
        if batch_size not in self._scorers:
            if self.engine != "keras":
                from slapp.models.engine_check import open_checked

                files = BundleLayout(self.folder)
                scorer = open_checked(files.portable_file, files.check_file, self.requested,
                                      batch=batch_size)
            else:
                from slapp.models.inference import Scorer

                scorer = Scorer(self.model, batch_size=batch_size)
            self._scorers[batch_size] = scorer
        return self._scorers[batch_size]


def save_model(model, folder: Path) -> None:
    """Write ``model.keras`` atomically (Keras wants the ``.keras`` suffix on the temp)."""
    with atomic_path(BundleLayout(folder).model_file, suffix=".keras") as tmp:
        model.save(str(tmp))


def save_portable(write, folder: Path, check_x: np.ndarray, check_track: np.ndarray
                  ) -> dict:
    """Write ``model.onnx``, the portable copy of the bundle's network, by calling
    ``write(path)`` (a backbone's ``write_portable``; returns the largest difference
    from Keras on the snippets ``check_x``), then ``check.npz`` (those snippets, their
    tracks ``check_track`` and the reference's probabilities: what every backend is checked
    on). Returns ``bundle.json``'s ``portable`` entry: ``{"file", "check_snippets",
    "max_difference"}``, or ``{"error": why}`` when it cannot be made (prediction then runs
    ``model.keras`` through TensorFlow)."""
    from slapp.models.engine_check import write_check

    files = BundleLayout(folder)
    path, n_check = files.portable_file, len(check_x)
    for old in (path, files.check_file):
        if old.exists():
            old.unlink()  # never keep a copy of an older model
    try:
        diff = write(path)
    except StageError as exc:
        why = str(exc)
    except Exception as exc:  # the converter meets a layer it cannot translate
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        why = f"{type(exc).__name__}: {first}"
    else:
        logger.info("wrote %s: onnxruntime gives the Keras probabilities on %d snippets "
                    "within %.1g", path, n_check, diff)
        write_check(files.check_file, path, check_x, check_track)
        return {"file": path.name, "check_snippets": n_check, "max_difference": diff,
                "engines": _check_engines(files)}
    return {"error": f"no portable copy ({why}): predict_track.py labels through "
                     "TensorFlow (model.keras)"}


def _check_engines(files: BundleLayout) -> dict:
    """The automatic backend checked on the new bundle now (its verdict kept in the user's
    cache folder, so the first labelling starts at once): ``{name: verdict}``."""
    from dataclasses import asdict

    from slapp.models.engine_check import verdict
    from slapp.models.runtime import REFERENCE, resolve

    choice = resolve("auto")
    found = verdict(files.portable_file, files.check_file, choice)
    if found.ok:
        logger.info("checked %s on the bundle's test snippets: probabilities within %.2g of "
                    "%s", choice.name, found.max_difference, REFERENCE.name)
    else:  # a note: nothing to act on (the CRNN's GRU loop, which OpenVINO cannot convert)
        logger.info("%s is not used for this bundle (%s): prediction labels on %s",
                    choice.name, found.why, REFERENCE.name)
    return {choice.name: asdict(found)}


def history_csv(history: list[dict]) -> bytes:
    """The per-epoch rows of a training as CSV (``history.csv``)."""
    keys = ["epoch"] + sorted({k for row in history for k in row} - {"epoch"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    return buf.getvalue().encode("utf-8")


def check_rows(arrays: ArraysLayout, x_files: dict[str, Path]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Some of the bundle's own snippets (test, else validation, else training; a few from
    each track: :func:`slapp.models.engine_check.check_rows`), as the bundle's network takes
    them and as the trained model does (the same rows of ``x_files``), and their track ids:
    the portable copy and every backend are checked on these."""
    from slapp.models.engine_check import check_rows as choose

    for part in ("test", "val", "train"):
        path = arrays.array(part, "X")
        if path.exists() and part in x_files:
            x = np.load(path, mmap_mode="r")
            if len(x):
                track = np.load(arrays.array(part, "track"))
                rows = choose(x, track)
                inputs = np.load(x_files[part], mmap_mode="r")
                return (np.asarray(x[rows], dtype=np.float32),
                        np.asarray(inputs[rows], dtype=np.float32), track[rows])
    raise StageError(f"No snippets in '{arrays.root}' to check the portable model on.")


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


def load_bundle(folder: str | os.PathLike, *, current: PipelineParams | None = None,
                engine: str = "auto") -> Bundle:
    """Load and check a bundle; ``current`` only serves to warn about differing settings.
    ``engine``: one of :data:`~slapp.models.runtime.ENGINES` (the portable copy on that
    backend, checked; ``"auto"``: the fastest this CPU runs exactly) or ``"keras"`` (the Keras
    model through TensorFlow: the reference the portable copy is measured against)."""
    from slapp.models.runtime import resolve

    folder = Path(folder)
    if engine != "keras":
        resolve(engine)  # a forced backend that is not installed: one clear error, first
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
    if not model_path.exists() and not files.portable_file.exists():
        raise StageError(f"Model bundle '{folder}' has no {model_path.name}. Retrain it with "
                         "train_crnn.py --retrain.")
    found = "keras" if engine == "keras" else _engine(
        files, (params.n_frames, params.features.n_mels), len(classes), engine)
    bundle = Bundle(folder=folder, classes=classes, params=params, stats=stats, info=info,
                    engine="keras" if found == "keras" else found.name, requested=engine)
    if found != "keras":  # the network opened to check it: the one to use
        bundle._scorers[None] = found
    if bundle.engine == "keras":
        _check_keras(bundle, files)
    if current is not None:
        diffs = changed_settings(params.feature_settings(), current.feature_settings())
        if diffs:
            logger.info("the bundle's feature settings differ from %s (bundle -> file: %s); "
                        "using the bundle's", current.source or "the parameters file",
                        "; ".join(diffs))
    return bundle


def _check_keras(bundle: Bundle, files: BundleLayout) -> None:
    """A bundle labelling through ``model.keras``: it must exist and match its settings."""
    folder, params = bundle.folder, bundle.params
    if not files.model_file.exists():
        raise StageError(f"Model bundle '{folder}' has no usable network: no "
                         f"{files.model_file.name}, and {files.portable_file.name} cannot be "
                         "used (see above). Retrain it with train_crnn.py --retrain.")
    model = bundle.model
    shape, width = tuple(model.input_shape[1:]), model.output_shape[-1]
    expected = (params.n_frames, params.features.n_mels)
    if shape != expected or width != len(bundle.classes):
        raise StageError(f"Model bundle '{folder}' is inconsistent: model input {shape} / "
                         f"{width} classes, but its settings say {expected} / "
                         f"{len(bundle.classes)}.")


def _load_keras(model_path: Path):
    """The Keras model of ``model.keras``; a damaged file is a :class:`StageError`."""
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception:  # Keras raises many kinds (even "File not found") for a damaged file
        size = model_path.stat().st_size
        raise StageError(f"Model file '{model_path}' exists ({size} bytes) but cannot be "
                         "read: it is damaged or incomplete (a copy cut short?). Copy the "
                         "bundle again, or rebuild it with train_crnn.py --retrain.") from None


def _engine(files: BundleLayout, shape: tuple[int, int], n_classes: int, engine: str):
    """The portable copy's checked network on ``engine``
    (:func:`~slapp.models.engine_check.open_checked`) when it opens and matches the bundle's
    settings; otherwise ``"keras"``, after a one-line note. A bundle made before the portable
    copy gets one here, once (checked against ``model.keras``); a damaged one is left as it
    is."""
    from slapp.models.engine_check import open_checked

    path = files.portable_file
    if not path.exists() and (not files.model_file.exists()
                              or _convert(files, shape) == "keras"):
        return "keras"
    try:
        scorer = open_checked(path, files.check_file, engine)
    except StageError as exc:
        logger.warning("%s Labelling through model.keras with TensorFlow instead (slower "
                       "to start); delete '%s' to have it made again from model.keras.",
                       exc, path)
        return "keras"
    if scorer.input_shape != shape or scorer.n_classes != n_classes:
        logger.warning("Portable model '%s' takes %s and gives %d classes, but the bundle "
                       "says %s and %d; labelling through model.keras instead. Delete it to "
                       "have it made again.", path, scorer.input_shape, scorer.n_classes,
                       shape, n_classes)
        return "keras"
    return scorer


def _convert(files: BundleLayout, shape: tuple[int, int]) -> str:
    """Write the portable copy of an older bundle from its ``model.keras`` (checked on
    seeded random snippets): ``"onnx"``, or ``"keras"`` where that is not possible."""
    from slapp.models.portable import export

    logger.info("model bundle '%s' has no portable copy (model.onnx; bundles made before "
                "slapp wrote one): making it once from model.keras", files.root)
    x = np.random.default_rng(0).uniform(0.0, 4.0, (8, *shape)).astype(np.float32)
    model = _load_keras(files.model_file)  # a damaged model.keras: its own one-line error
    try:
        export(model, files.portable_file, x)
        from slapp.models.engine_check import write_check

        write_check(files.check_file, files.portable_file, x, np.arange(len(x)) // 4)
    except (StageError, OSError) as exc:
        logger.warning("could not write '%s' (%s); labelling through model.keras",
                       files.portable_file, exc)
        return "keras"
    return "onnx"
