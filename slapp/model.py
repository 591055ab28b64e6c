"""The network of the divide & conquer method: a small CRNN (after Choi et al. 2017).

Input ``(n_frames, n_mels)`` normalised log-mels (130 × 100 by default). Convolution
blocks (Conv2D 3×3 → BatchNorm → ReLU → MaxPool → Dropout) pool the frequency axis down to
one bin while keeping most of the time axis; the ``(time, channels)`` sequence goes through
stacked GRUs; a softmax gives class probabilities. ~392k parameters by default.
"""

from __future__ import annotations

from .keras_env import import_keras
from .params import ModelParams


def build_model(n_frames: int, n_mels: int, n_classes: int, params: ModelParams):
    """A compiled-free Keras model mapping ``(batch, n_frames, n_mels)`` → ``(batch, n_classes)``."""
    if params.backbone != "crnn":
        raise ValueError(f"unknown backbone {params.backbone!r}")
    return build_crnn(n_frames, n_mels, n_classes, params)


def build_crnn(n_frames: int, n_mels: int, n_classes: int, params: ModelParams):
    """The CRNN; pools larger than what is left of an axis are clipped to it."""
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
    for i, units in enumerate(params.gru_units, start=1):
        last = i == len(params.gru_units)
        x = layers.GRU(units, return_sequences=not last, name=f"gru{i}")(x)
    x = layers.Dropout(params.gru_dropout, name="dropout_gru")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                           name="probabilities")(x)
    return keras.Model(inputs, outputs, name="slapp_crnn")
