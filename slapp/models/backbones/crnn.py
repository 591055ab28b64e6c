"""The CRNN of the divide & conquer method (after Choi et al. 2017), trained from scratch.

Input ``(n_frames, n_mels)`` normalised log-mels (130 × 100 by default). Convolution blocks
(Conv2D 3×3 → BatchNorm → ReLU → MaxPool → Dropout) pool the frequency axis down to one
bin while keeping most of the time axis; the ``(time, channels)`` sequence goes through
stacked recurrent layers (``model.crnn.recurrent``: GRU or LSTM,
``model.crnn.recurrent_units`` units each); a softmax gives class probabilities. ~392k
parameters by default (GRU). Its settings are :class:`CrnnParams` (``model.crnn``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from slapp.errors import ParameterError
from slapp.dsp.features import n_frames, power_to_db
from slapp.models.backbones.base import Backbone
from slapp.spec import param


@dataclass(frozen=True)
class CrnnParams:
    """``model.crnn``: the convolution blocks, then the recurrent layers (GRU or LSTM)."""

    conv_filters: tuple[int, ...] = param((64, 128, 128, 128), "ints", lo=1, hi=4096)
    pool_sizes: tuple[tuple[int, int], ...] = param(((2, 2), (2, 5), (2, 5), (1, 2)),
                                                     "pairs", lo=1, hi=64)
    recurrent: str = param("gru", "str", choices=("gru", "lstm"))
    recurrent_units: tuple[int, ...] = param((32, 32), "ints", lo=1, hi=4096)
    conv_dropout: float = param(0.1, "float", lo=0.0, hi=1.0, hi_open=True)
    recurrent_dropout: float = param(0.3, "float", lo=0.0, hi=1.0, hi_open=True)


class CRNN(Backbone):
    name = "crnn"
    section = "crnn"
    owns = {"audio": ("sample_rate",),
            "features": ("n_fft", "hop_length", "n_mels", "fmin", "fmax", "log_reference",
                         "log_amin", "dtype"),
            "process": ("normalization",),
            "training": ("augment_gain_db", "augment_time_masks", "augment_freq_masks",
                         "augment_mixup_alpha", "augment_lowpass", "augment_lowpass_min_hz")}
    separate_cache = False  # the historical cache of log-mels
    augments = True

    def check(self, params) -> None:
        c = params.model.crnn
        pools = c.pool_sizes
        if len(pools) != len(c.conv_filters):
            raise ParameterError(
                "The 'model.crnn.pool_sizes' parameter must be one [time, frequency] pair "
                f"per convolution block ({len(c.conv_filters)}, as in "
                f"model.crnn.conv_filters). Got {json.dumps([list(v) for v in pools])} "
                "instead.")
        time_pool = math.prod(t for t, _ in pools)
        if time_pool > params.n_frames:
            raise ParameterError(
                f"The 'model.crnn.pool_sizes' parameter must be time pools whose product "
                f"({time_pool}) is at most the {params.n_frames} frames of a snippet. Got "
                f"{json.dumps([list(v) for v in pools])} (a list) instead.")

    def n_frames(self, spec) -> int:
        return n_frames(spec.snippet_samples, hop_length=spec.hop_length)

    def compress(self, power: np.ndarray, spec) -> np.ndarray:
        return power_to_db(power, reference=spec.log_reference, amin=spec.log_amin)

    def build_trainable(self, params, n_classes: int):
        return build_crnn(params.n_frames, params.features.n_mels, n_classes,
                          params.model.crnn)


def build_crnn(n_frames: int, n_mels: int, n_classes: int, params):
    """The CRNN ``(batch, n_frames, n_mels)`` → ``(batch, n_classes)`` for ``params`` (a
    :class:`CrnnParams`); pools larger than what is left of an axis are
    clipped to it."""
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    layers = keras.layers
    inputs = keras.Input(shape=(n_frames, n_mels), name="log_mel")
    x = layers.Reshape((n_frames, n_mels, 1))(inputs)
    for i, (filters, (pool_t, pool_f)) in enumerate(
            zip(params.conv_filters, params.pool_sizes), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        # momentum 0.9, not Keras' 0.99: with the few hundred steps a small dataset gives,
        # 0.99 leaves the moving statistics far from the data and inference near chance
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        pool = (max(1, min(pool_t, x.shape[1])), max(1, min(pool_f, x.shape[2])))
        x = layers.MaxPooling2D(pool, name=f"pool{i}")(x)
        x = layers.Dropout(params.conv_dropout, name=f"dropout{i}")(x)
    if x.shape[2] > 1:  # whatever frequency resolution is left: max over it
        x = layers.MaxPooling2D((1, x.shape[2]), name="pool_frequency")(x)
    x = layers.Reshape((x.shape[1], x.shape[3]), name="to_sequence")(x)
    recurrent = {"gru": layers.GRU, "lstm": layers.LSTM}[params.recurrent]
    for i, units in enumerate(params.recurrent_units, start=1):
        last = i == len(params.recurrent_units)
        x = recurrent(units, return_sequences=not last, name=f"{params.recurrent}{i}")(x)
    x = layers.Dropout(params.recurrent_dropout, name="dropout_recurrent")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                           name="probabilities")(x)
    return keras.Model(inputs, outputs, name="slapp_crnn")


BACKBONE = CRNN()
