"""The musicnn wheel's VGG-like taggers (``MSD_vgg``, ``MTT_vgg``), rebuilt in Keras 3.

The same input as musicnn (:mod:`slapp.models.musicnn`: ``(187, 96)`` patches of its
compressed mel spectrogram). The network (Pons & Serra 2019's "vgg" baseline): BatchNorm,
then five blocks of 3 × 3 convolution (128 filters, ReLU, "same") → BatchNorm → max
pooling (:data:`POOLS`, per checkpoint) → ``(2, 1, 128)``, flattened
to 256 features ("pool5", the embedding) → dense 50 → sigmoid (MSD or MTT tags). Weights
from the wheel's TF1 checkpoints (see :func:`slapp.models.musicnn.checkpoint_prefix` for
the licence and how they are installed); ``tests/test_musicnn.py`` compares the rebuild
with the original graph.
"""

from __future__ import annotations

from slapp.models.musicnn import N_FRAMES, N_MELS, checkpoint_prefix, checkpoint_reader

FILTERS = 128
# (pool, stride) per block, read off each checkpoint's own graph: MTT_vgg is the wheel's
# models.py; MSD_vgg was trained with other first two poolings
POOLS = {"MTT_vgg": [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                     ((4, 4), (4, 4))],
         "MSD_vgg": [((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                     ((4, 4), (4, 4))]}
EMBEDDING_SIZE = 256  # pool5 flattened
N_TAGS = 50


def build_vgg(checkpoint: str = "MSD_vgg", n_frames: int = N_FRAMES, *,
              name: str = "musicnn_vgg"):
    """Keras model ``(batch, n_frames, 96)`` → ``[tags (batch, 50) sigmoid, pool5
    (batch, 256)]``, weights not loaded (see :func:`load_vgg`); layer names are the
    checkpoint's."""
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    L = keras.layers
    inputs = keras.Input(shape=(n_frames, N_MELS), name="musicnn_mel")
    x = L.Reshape((n_frames, N_MELS, 1), name="expand")(inputs)
    x = L.BatchNormalization(epsilon=1e-3, name="batch_normalization")(x)
    for i, (pool, stride) in enumerate(POOLS[checkpoint], start=1):
        x = L.Conv2D(FILTERS, (3, 3), padding="same", activation="relu", name=f"{i}CNN")(x)
        x = L.BatchNormalization(epsilon=1e-3, name=f"batch_normalization_{i}")(x)
        x = L.MaxPooling2D(pool, strides=stride, name=f"max_pool{i}")(x)
    pool5 = L.Flatten(name="pool5")(x)
    tags = L.Activation("sigmoid", name="tags")(L.Dense(N_TAGS, name="dense")(pool5))
    return keras.Model(inputs, [tags, pool5], name=name)


def load_vgg(checkpoint: str = "MSD_vgg", n_frames: int = N_FRAMES, prefix: str | None = None):
    """:func:`build_vgg` with the weights of ``checkpoint`` (``MSD_vgg`` or ``MTT_vgg``),
    frozen."""
    model = build_vgg(checkpoint, n_frames)
    reader = checkpoint_reader(prefix or checkpoint_prefix(checkpoint))
    names = {"Conv2D": ["kernel", "bias"], "Dense": ["kernel", "bias"],
             "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"]}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in names:
            layer.set_weights([reader.get_tensor(f"{layer.name}/{n}") for n in names[kind]])
    model.trainable = False
    return model
