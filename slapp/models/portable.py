"""The portable copy of a network: ONNX, written from Keras and checked; it runs on the
one runtime (:mod:`slapp.models.runtime`), without TensorFlow.

``train_crnn.py`` exports the bundle's Keras model to ``model.onnx`` (Keras's own
``model.export(format="onnx")``, through tf2onnx) and checks that onnxruntime gives the same
probabilities as Keras on the bundle's own test snippets (:data:`TOLERANCE`). Prediction
then imports neither TensorFlow nor Keras: importing onnxruntime takes ~0.2 s against
~5-14 s for TensorFlow + Keras, and the process stays a few hundred MB smaller
(BENCHMARKS.md, "The lean engine").

Why ONNX rather than LiteRT: Keras exports it directly; onnxruntime is one pip wheel with
no TensorFlow inside, takes any batch size, and reproduced the musicnn bundle to ~1e-6.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from slapp.errors import StageError
from slapp.store.atomic import atomic_path

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4   # largest probability difference accepted between Keras and onnxruntime
EMBEDDING_TOLERANCE = 1e-3  # ... embedding difference, relative to its largest value
BATCH_SIZE = 2     # snippets per Keras call when checking (small: bounded memory)


@contextlib.contextmanager
def quiet_export():
    """tf2onnx logs every rewrite at INFO and warns about numpy: keep the terminal clean."""
    import warnings

    import tf2onnx  # Keras's ONNX export runs on it

    loggers = [logging.getLogger(n) for n in (tf2onnx.__name__, "absl", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export(model, path: Path, check_x: np.ndarray) -> float:
    """Write ``model`` (Keras, one input ``(batch, ...)``, one output) as ONNX to ``path``
    atomically, after checking that onnxruntime reproduces Keras's outputs on
    ``check_x`` ``(n, ...)`` float32 within :data:`TOLERANCE`. Returns the largest
    difference; raises :class:`StageError` (and writes nothing) when they differ more."""
    from slapp.models.inference import predict_probs

    check_x = np.ascontiguousarray(check_x, dtype=np.float32)
    expected = predict_probs(model, check_x, batch_size=BATCH_SIZE)  # small: bounded memory
    with atomic_path(path, suffix=".onnx") as tmp:
        with quiet_export():
            model.export(str(tmp), format="onnx", verbose=False)
        return _check(Path(tmp), check_x, expected)


def _check(path: Path, check_x: np.ndarray, expected: np.ndarray,
           embedding: np.ndarray | None = None) -> float:
    """The largest difference between ``expected`` and the ONNX file's probabilities on
    ``check_x`` (on the reference, onnxruntime); a :class:`StageError` above
    :data:`TOLERANCE`, or when its second output differs from ``embedding`` (the cached
    embeddings of the same snippets) by more than :data:`EMBEDDING_TOLERANCE`, relative."""
    from slapp.models.engine_check import relative_difference
    from slapp.models.runtime import network

    outputs = network(path, threads=1).outputs(check_x)
    diff = float(np.max(np.abs(outputs[0] - expected))) if len(check_x) else 0.0
    if not diff <= TOLERANCE:
        raise StageError(f"The portable model differs from the Keras model by {diff:.2g} (more "
                         f"than {TOLERANCE:g}) on {len(check_x)} snippets; not written. "
                         "Prediction will use model.keras.")
    if embedding is not None and len(check_x):
        off = relative_difference(outputs[1], embedding)
        if not off <= EMBEDDING_TOLERANCE:
            raise StageError(f"The portable model's embedding differs from stage 2's by "
                             f"{off:.2g} (relative; more than {EMBEDDING_TOLERANCE:g}) on "
                             f"{len(check_x)} snippets; not written.")
    return diff


def export_on_backbone(head, backbone_path: Path, output: int, path: Path,
                       check_x: np.ndarray, check_inputs: np.ndarray) -> float:
    """Write the ONNX network ``backbone → head`` to ``path`` atomically: the frozen
    backbone's ONNX file (its output number ``output``) joined to Keras ``head``'s export,
    so the big network is never run through TensorFlow. Checked end to end: onnxruntime on
    snippets ``check_x`` ``(n, n_frames, n_mels)`` against Keras ``head`` on their cached
    embeddings ``check_inputs`` ``(n, width)``, and the embedding output against those
    embeddings. Returns the largest probability difference."""
    import onnx
    from onnx import compose, utils

    from slapp.models.inference import predict_probs

    expected = predict_probs(head, np.asarray(check_inputs, np.float32), batch_size=64)
    with tempfile.TemporaryDirectory() as folder:
        head_file = Path(folder) / "head.onnx"
        with quiet_export():
            head.export(str(head_file), format="onnx", verbose=False)
        top = onnx.load(str(head_file))
        base = onnx.load(str(backbone_path))
        name = base.graph.output[output].name
        base = utils.Extractor(base).extract_model([base.graph.input[0].name], [name])
        merged = compose.merge_models(base, top, io_map=[(name, top.graph.input[0].name)],
                                      prefix1="backbone_", prefix2="head_")
        # the embedding too, as the second output: what --suggest measures tracks by
        embedding = onnx.ValueInfoProto()
        embedding.CopyFrom(base.graph.output[0])
        embedding.name = "backbone_" + name
        merged.graph.output.append(embedding)
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(merged, str(tmp))
        return _check(Path(tmp), np.asarray(check_x, np.float32), expected,
                      np.asarray(check_inputs, np.float32))
