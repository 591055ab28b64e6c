"""The portable copy of a network: ONNX, run with onnxruntime, no TensorFlow.

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
# snippets per onnxruntime call: 1 and 2 were the fastest for musicnn on 2 cores (9.4 ms a
# snippet; 4: 10.4 ms, 8: 11.0 ms; bench/lean_engine.py), and small batches keep the
# activations (~30 MB a musicnn snippet) small
BATCH_SIZE = 2


def session_options(threads: int | None = None):
    """onnxruntime options: all graph optimisations, ``threads`` intra-op threads
    (None: one per core), one inter-op thread (the graph is a chain)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    # idle threads sleep rather than spin: the next track is decoded meanwhile on the same
    # cores (bench/lean_engine.py: 3-minute tracks labelled faster with spinning off)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no warnings on the terminal
    return options


def open_session(path: Path, *, threads: int | None = None):
    """An onnxruntime session of ``path``; a damaged file is a :class:`StageError`."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(threads),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own kinds for a damaged file
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise StageError(f"Portable model '{path}' ({path.stat().st_size} bytes) cannot "
                         f"be read: {first}") from None


class OnnxScorer:
    """``scorer(x)``: the outputs ``(n, width)`` float32 of the network in an ONNX file on
    inputs ``x`` ``(n, *input_shape)``, ``batch_size`` rows per call (the first output).
    :meth:`with_embedding` also returns the second output, the backbone's embedding,
    when the file has one (``has_embedding``: a musicnn bundle)."""

    def __init__(self, path: Path, *, batch_size: int | None = None,
                 threads: int | None = None):
        self.session = open_session(path, threads=threads)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(int(d) if isinstance(d, int) else None for d in inp.shape[1:])
        self.n_classes = int(out.shape[-1])
        self.batch_size = batch_size or BATCH_SIZE
        outputs = self.session.get_outputs()
        self.has_embedding = len(outputs) > 1
        self.embedding_width = int(outputs[1].shape[-1]) if self.has_embedding else 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from slapp.models.inference import batched

        return batched(self._run, x, self.batch_size, width=self.n_classes)

    def _run(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        return self.session.run(self._first, {self.input_name: rows})[0]

    @property
    def _first(self) -> list[str]:
        return [self.session.get_outputs()[0].name]

    def with_embedding(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probabilities (n, n_classes), embeddings (n, width) or None)``."""
        if not self.has_embedding:
            return self(x), None
        probs, embs = [], []
        for i in range(0, len(x), self.batch_size):
            rows = np.ascontiguousarray(x[i:i + self.batch_size], dtype=np.float32)
            p, e = self.session.run(None, {self.input_name: rows})[:2]
            probs.append(p)
            embs.append(e)
        width = (self.n_classes, self.embedding_width)
        if not probs:
            return np.zeros((0, width[0]), np.float32), np.zeros((0, width[1]), np.float32)
        return np.concatenate(probs), np.concatenate(embs)


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


def _check(path: Path, check_x: np.ndarray, expected: np.ndarray) -> float:
    """The largest difference between ``expected`` and the ONNX file's outputs on
    ``check_x``; a :class:`StageError` above :data:`TOLERANCE`."""
    got = OnnxScorer(path, threads=1)(check_x)
    diff = float(np.max(np.abs(got - expected))) if len(check_x) else 0.0
    if not diff <= TOLERANCE:
        raise StageError(f"The portable model differs from the Keras model by {diff:.2g} (more "
                         f"than {TOLERANCE:g}) on {len(check_x)} snippets; not written. "
                         "Prediction will use model.keras.")
    return diff


def export_on_backbone(head, backbone_path: Path, output: int, path: Path,
                       check_x: np.ndarray, check_inputs: np.ndarray) -> float:
    """Write the ONNX network ``backbone → head`` to ``path`` atomically: the frozen
    backbone's ONNX file (its output number ``output``) joined to Keras ``head``'s export,
    so the big network is never run through TensorFlow. Checked end to end: onnxruntime on
    snippets ``check_x`` ``(n, n_frames, n_mels)`` against Keras ``head`` on their cached
    embeddings ``check_inputs`` ``(n, width)``. Returns the largest difference."""
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
        return _check(Path(tmp), np.asarray(check_x, np.float32), expected)
