"""The network of the divide & conquer method: a small CRNN (after Choi et al. 2017).

Input ``(n_frames, n_mels)`` normalised log-mels (130 × 100 by default). Convolution
blocks (Conv2D 3×3 → BatchNorm → ReLU → MaxPool → Dropout) pool the frequency axis down to
one bin while keeping most of the time axis; the ``(time, channels)`` sequence goes through
stacked GRUs; a softmax gives class probabilities. ~392k parameters by default.

With ``backbone = "musicnn-msd"`` the trained part is a head on musicnn's 200-dimensional
embedding (:func:`build_head`: dropout → softmax, a multinomial logistic regression), or
with ``fine_tune`` musicnn's own top layers and a softmax on its pooled features
(:func:`build_top_head`); the bundle's model is :func:`with_backbone`, the frozen network
and the head in one.
"""

from __future__ import annotations

from .keras_env import import_keras
from .musicnn import CHECKPOINTS
from .params import ModelParams


def build_model(n_frames: int, n_mels: int, n_classes: int, params: ModelParams):
    """The model that training fits: the CRNN ``(batch, n_frames, n_mels)`` →
    ``(batch, n_classes)``, or for a pretrained backbone the head ``(batch, 200)`` →
    ``(batch, n_classes)``."""
    if params.backbone == "crnn":
        return build_crnn(n_frames, n_mels, n_classes, params)
    if params.fine_tune:
        return build_top_head(n_classes, checkpoint=CHECKPOINTS[params.backbone])
    return build_head(200, n_classes)


HEAD_DROPOUT = 0.5
HEAD_L2 = 1e-3


def build_head(n_inputs: int, n_classes: int):
    """Softmax regression on an embedding: ``(batch, n_inputs)`` → ``(batch, n_classes)``,
    with input dropout 0.5 and L2 1e-3 on the weights."""
    keras = import_keras()
    inputs = keras.Input(shape=(n_inputs,), name="embedding")
    return keras.Model(inputs, _softmax_head(keras, inputs, n_classes), name="slapp_head")


def _softmax_head(keras, x, n_classes: int):
    """Dropout → softmax with L2 on the weights: the classifier on top of an embedding."""
    x = keras.layers.Dropout(HEAD_DROPOUT, name="dropout_embedding")(x)
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                              kernel_regularizer=keras.regularizers.L2(HEAD_L2),
                              name="probabilities")(x)


def build_top_head(n_classes: int, *, checkpoint: str = "MSD_musicnn"):
    """For fine-tuning: musicnn's own top layers (BatchNorm → dropout → dense 200 →
    BatchNorm, initialised from the checkpoint, trainable) then dropout → softmax, on its
    pooled features ``(batch, 1506)`` → ``(batch, n_classes)``."""
    from .musicnn import load_backbone

    keras = import_keras()
    L = keras.layers
    inputs = keras.Input(shape=(1506,), name="pooled")
    top = [L.BatchNormalization(epsilon=1e-3, name="batch_normalization_9"),
           L.Dropout(0.5, name="dropout_pooled"),
           L.Dense(200, activation="relu", name="dense"),
           L.BatchNormalization(epsilon=1e-3, name="batch_normalization_10")]
    x = inputs
    for layer in top:
        x = layer(x)
    outputs = _softmax_head(keras, x, n_classes)
    backbone = load_backbone(checkpoint=checkpoint)
    for layer in top:
        if layer.weights:
            layer.set_weights(backbone.get_layer(layer.name).get_weights())
    return keras.Model(inputs, outputs, name="slapp_top_head")


def head_input(params: ModelParams) -> str:
    """Which backbone output the head reads: ``"penultimate"`` or ``"pooled"``."""
    return "pooled" if params.fine_tune else "penultimate"


def with_backbone(head, n_frames: int = 187, *, layer: str = "penultimate",
                  checkpoint: str = "MSD_musicnn"):
    """The frozen musicnn network and ``head`` as one model ``(batch, n_frames, 96)`` →
    ``(batch, n_classes)``: what the bundle holds and prediction runs."""
    from .embed import LAYERS
    from .musicnn import N_MELS, load_backbone

    keras = import_keras()
    backbone = load_backbone(n_frames, checkpoint=checkpoint)
    inputs = keras.Input(shape=(n_frames, N_MELS), name="musicnn_mel")
    embedding = backbone(inputs)[LAYERS[layer]]
    return keras.Model(inputs, head(embedding), name=f"slapp_{checkpoint.lower()}")


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
