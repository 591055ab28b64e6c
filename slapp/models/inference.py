"""Running a Keras network on snippet batches (the reference engine: a bundle without a
usable portable copy, ``predict_track.py --engine keras``, training's evaluation).

Calling a Keras model eagerly (``model(x)``) runs it layer by layer from Python on every
call; ``model.predict`` rebuilds its data pipeline on every call. :class:`Scorer` wraps the
network in one ``tf.function`` with a fixed input shape ``(batch_size, n_frames, n_mels)``:
it is traced on the first batch and reused for every later batch of every track (a short
last batch is zero-padded, its padding rows dropped). XLA and bfloat16 were measured in
the retired ``bench/predict_speed.py`` and ``bench/keras_options.py`` and not adopted (BENCHMARKS).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm


ACTIVATION_BUDGET_MB = 192  # what one batch's largest activations may take


def _largest_activation(model) -> int:
    """Floats in the largest output of any layer (nested models included) per sample."""
    largest = 0
    for layer in getattr(model, "layers", []):
        largest = max(largest, _largest_activation(layer))
        try:
            outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        except (AttributeError, ValueError):
            continue
        for out in outputs:
            size = 1
            for dim in tuple(out.shape)[1:]:
                size *= int(dim or 1)
            largest = max(largest, size)
    return largest


def batch_for_memory(model, *, budget_mb: float = ACTIVATION_BUDGET_MB,
                     most: int = 64) -> int:
    """The largest batch (at most ``most``) whose biggest layer output, counted three
    times (a layer's input, output and a temporary live together), fits ``budget_mb``:
    64 for small networks, fewer for wide ones (musicnn: 4 at 192 MB)."""
    per_sample = 3 * 4 * max(1, _largest_activation(model))
    return int(max(1, min(most, budget_mb * 2 ** 20 // per_sample)))


class Scorer:
    """``scorer(x)``: class probabilities ``(n, n_classes)`` float32 of model inputs ``x``
    ``(n, n_frames, n_mels)`` (already normalised), ``batch_size`` rows per call (default:
    :func:`batch_for_memory`)."""

    def __init__(self, model, *, batch_size: int | None = None):
        from slapp.models.keras_env import import_keras

        import_keras()
        import tensorflow as tf

        self.model = model
        self.batch_size = batch_size or batch_for_memory(model)
        self.shape = (self.batch_size, *model.input_shape[1:])
        self.n_classes = int(model.output_shape[-1])
        self._fn = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec(self.shape, tf.float32)])
        self._batch = np.zeros(self.shape, np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return batched(self._padded, x, self.batch_size, width=self.n_classes)

    def _padded(self, rows: np.ndarray) -> np.ndarray:
        """The traced model on ``rows`` padded to the fixed batch shape."""
        self._batch[:len(rows)] = rows
        self._batch[len(rows):] = 0.0
        return self._fn(self._batch).numpy()[:len(rows)]


def batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int, *,
            width: int, progress: bool = False, desc: str = "") -> np.ndarray:
    """``fn`` over ``x`` ``batch_size`` rows at a time (a memory map is read one batch at a
    time): ``(n, width)`` float32. The Keras engine's loop (stage 3's snippet figures, a
    bundle without its portable copy); every ONNX network batches in
    :mod:`slapp.models.runtime`."""
    out = np.empty((len(x), width), np.float32)
    for i in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch",
                  disable=not progress, leave=False):
        rows = np.asarray(x[i:i + batch_size], dtype=np.float32)
        out[i:i + len(rows)] = np.asarray(fn(rows), dtype=np.float32)
    return out


def predict_probs(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` float32 of a Keras ``model`` on ``(n, ...)``
    rows, eagerly (any model, no tracing: evaluation after training)."""
    return batched(lambda rows: model(rows, training=False), x, batch_size,
                   width=int(model.output_shape[-1]))
