"""The one runtime: every ONNX network slapp runs goes through :func:`network`.

Stage 2's backbone embeddings, prediction and ``--suggest`` (the bundle's portable copy),
the collection audit, the beets plug-in and Dask workers all call :func:`network`, which
opens a file once per process and backend and returns a :class:`Network`: batched runs
returning every output (class probabilities and, for a musicnn bundle, the embedding).

Backends (:data:`ENGINES`, ``engine.runtime`` or ``predict_track.py --engine``):

- ``onnxruntime`` fp32: the reference, checked against Keras when a bundle is written;
- ``openvino`` f32, and bf16 where OpenVINO's own capability query (``CPU``'s
  ``OPTIMIZATION_CAPABILITIES``) lists ``BF16``: the CPU has native bf16 units (AVX512-BF16,
  AMX). Without them OpenVINO emulates bf16 at a fifth of f32's speed, so bf16 is never
  chosen there, and forcing it is an error.

``auto`` takes OpenVINO (bf16 where native, else f32) when it is installed, else
onnxruntime. A backend is never trusted unchecked: :mod:`slapp.models.engine_check`
compares it with the reference on the bundle's own test snippets and falls back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.errors import StageError

ENGINES = ("auto", "onnxruntime", "openvino", "openvino-f32", "openvino-bf16")


@dataclass(frozen=True)
class Choice:
    """A backend and the precision it computes in: ``name`` is what summaries print."""

    backend: str    # "onnxruntime" or "openvino"
    precision: str  # "fp32", "f32" or "bf16"

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}"

    @property
    def exact(self) -> "Choice":
        """The same backend at full precision (what a bf16 near-tie is re-scored on)."""
        return self if self.precision != "bf16" else Choice(self.backend, "f32")


REFERENCE = Choice("onnxruntime", "fp32")
# snippets per call, measured on musicnn with 2 threads (bench/runtime_speed.py):
# onnxruntime: 1-2 fastest (bench/lean_engine.py, retired); OpenVINO f32: 4 (2.04 s a 3-minute
# track against 2.28 s at 2 and 2.83 s at 1, 2026-12-03)
BATCH = {"onnxruntime": 2, "openvino": 4}


def openvino_core():
    """OpenVINO's ``Core`` (None: OpenVINO is not installed)."""
    try:
        import openvino
    except ImportError:
        return None
    global _CORE
    if _CORE is None:
        _CORE = openvino.Core()
    return _CORE


_CORE = None


def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports bf16 among its optimisation capabilities."""
    core = openvino_core()
    return core is not None and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve(engine: str, *, allow_emulated: bool = False) -> Choice:
    """The :class:`Choice` for ``engine`` (one of :data:`ENGINES`) on this machine. A forced
    backend that is not installed, or bf16 on a CPU without it, is a :class:`StageError`;
    ``allow_emulated`` lets bf16 run emulated (tests of the bf16 path on any CPU)."""
    if engine not in ENGINES:
        raise StageError(f"Unknown engine '{engine}'. Expected one of {', '.join(ENGINES)}.")
    if engine == "onnxruntime":
        return REFERENCE
    core = openvino_core()
    if core is None:
        if engine == "auto":
            return REFERENCE
        raise StageError(f"The engine '{engine}' needs OpenVINO, which is not installed here "
                         "(pip install openvino), or choose --engine onnxruntime.")
    bf16 = native_bf16()
    if engine == "openvino-bf16" and not (bf16 or allow_emulated):
        caps = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        raise StageError("The engine 'openvino-bf16' needs a CPU with native bf16 (OpenVINO "
                         f"reports {caps}); choose openvino-f32 or auto.")
    if engine == "openvino-f32" or (engine in ("auto", "openvino") and not bf16):
        return Choice("openvino", "f32")
    return Choice("openvino", "bf16")


class Network:
    """One ONNX file compiled on one backend: ``outputs(x)`` runs inputs ``x``
    ``(n, *input_shape)`` float32 ``batch`` rows per call and returns every output
    ``(n, width)`` float32, in the file's order; calling it, and :meth:`with_embedding`,
    name the first two (a bundle: class probabilities, and musicnn's embedding)."""

    def __init__(self, path: Path, choice: Choice, *, threads: int | None = None,
                 batch: int | None = None):
        self.path, self.choice = Path(path), choice
        self.threads = threads or (os.cpu_count() or 1)
        self.batch = batch or BATCH[choice.backend]
        opener = _open_openvino if choice.backend == "openvino" else _open_onnxruntime
        self._infer, shapes = opener(self.path, choice.precision, self.threads)
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None
                                 for d in shapes[0][1:])
        self.widths = [int(s[-1]) for s in shapes[1:]]
        self.n_classes = self.widths[0]
        self.has_embedding = len(self.widths) > 1
        self.embedding_width = self.widths[1] if self.has_embedding else 0

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of the network on ``x`` (a memory map is read a batch at a time)."""
        out = [np.empty((len(x), w), np.float32) for w in self.widths]
        for i in range(0, len(x), self.batch):
            rows = np.ascontiguousarray(x[i:i + self.batch], dtype=np.float32)
            for dest, value in zip(out, self._infer(rows)):
                dest[i:i + len(rows)] = value
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (the first output) ``(n, n_classes)``."""
        return self.outputs(x)[0]

    def with_embedding(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probabilities (n, n_classes), embeddings (n, width) or None)``."""
        out = self.outputs(x)
        return out[0], (out[1] if self.has_embedding else None)


_OPEN: dict[tuple, Network] = {}  # this process's networks, by (file, choice, threads)


def network(path: Path, choice: Choice = REFERENCE, *, threads: int | None = None,
            batch: int | None = None) -> Network:
    """The process's :class:`Network` of ``path`` on ``choice`` (``threads``: None, one per
    core; ``batch``: None, :data:`BATCH`), opened once (a file replaced since is opened
    again); a file that will not open is a :class:`StageError`."""
    path = Path(path)
    try:
        stamp = path.stat()
    except OSError as exc:
        raise StageError(f"Network file '{path}' cannot be read ({exc.strerror}).") from None
    key = (str(path.resolve()), choice, threads, batch, stamp.st_size, stamp.st_mtime_ns)
    if key not in _OPEN:
        for old in [k for k in _OPEN if k[:4] == key[:4]]:
            del _OPEN[old]
        try:
            _OPEN[key] = Network(path, choice, threads=threads, batch=batch)
        except StageError:
            raise
        except Exception as exc:  # each backend raises its own kinds for a damaged file
            raise StageError(f"Network file '{path}' ({stamp.st_size} bytes) cannot be read "
                             f"by {choice.backend}: {first_line(exc)}") from None
    return _OPEN[key]


def first_line(exc: BaseException) -> str:
    """The useful first line of a backend's message (OpenVINO's start with source files)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))
              and not ln.endswith(":")]
    return (useful or lines or [type(exc).__name__])[0][:200]


def _open_onnxruntime(path: Path, precision: str, threads: int):
    """``(infer(rows) -> outputs, [input shape, *output shapes])`` on onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # the graph is a chain
    # idle threads sleep rather than spin: the next track is decoded meanwhile on the same
    # cores (3-minute tracks labelled faster with spinning off)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shapes = [session.get_inputs()[0].shape] + [o.shape for o in session.get_outputs()]
    return (lambda rows: session.run(None, {name: rows})), shapes


def _open_openvino(path: Path, precision: str, threads: int):
    """``(infer(rows) -> outputs, shapes)`` on OpenVINO's CPU plugin at ``precision``,
    the compiled network kept in OpenVINO's model cache (a later process starts faster)."""
    core = openvino_core()
    if core is None:
        raise StageError("OpenVINO is not installed here (pip install openvino).")
    from openvino.frontend import FrontEndManager

    onnx_reader = FrontEndManager().load_by_framework("onnx")  # no guessing among formats
    model = onnx_reader.convert(onnx_reader.load(str(path)))
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
              "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
              # unpinned: one-thread workers side by side (stage 2) would share a core, and
              # the decoding thread runs beside the network (bench/runtime_speed.py)
              "ENABLE_CPU_PINNING": False}
    cache = _model_cache()
    if cache:
        config["CACHE_DIR"] = cache
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    shapes = [[d.get_length() if d.is_static else None for d in model.inputs[0].partial_shape]]
    shapes += [[d.get_length() if d.is_static else None for d in o.partial_shape]
               for o in model.outputs]
    n_out = len(model.outputs)

    def infer(rows):
        result = request.infer({0: rows})
        return [np.array(result[i], copy=True) for i in range(n_out)]

    return infer, shapes


def _model_cache() -> str | None:
    """OpenVINO's model cache folder, in the user's cache folder (None: not writable)."""
    from slapp.store.user_dirs import cache_dir

    folder = cache_dir("openvino")
    return str(folder) if folder is not None else None
