"""musicnn (MSD), a pretrained music-tagging network, rebuilt in Keras 3 as a frozen backbone.

The weights come from the PyPI wheel ``musicnn==0.1.0`` (installed with ``pip install
--no-deps musicnn==0.1.0``), used only as a container of TF1 checkpoints; its Python code
targets TF1 and is never imported. The network (Pons & Serra 2019, "musicnn: pre-trained
convolutional neural networks for music audio tagging"):

- input ``(187, 96)``: 3-second patches of a 96-band mel power spectrogram of 16 kHz audio
  (n_fft 512, hop 256), compressed with ``log10(10000 · mel + 1)``;
- front end: BatchNorm, then vertical "timbral" convolutions (7 × 38 and 7 × 67, 204
  filters each) and horizontal "temporal" ones (128 × 1, 64 × 1, 32 × 1, 51 filters
  each), each max-pooled over frequency → ``(187, 561)``;
- mid end: three 1-D convolutions (7 taps, 64 filters) with residual connections, all
  concatenated with the front end → ``(187, 753)``;
- back end: max and mean over time, interleaved → 1506 → BatchNorm → dense 200 (ReLU,
  BatchNorm: the "penultimate" embedding) → dense 50 → sigmoid (MSD tags).

musicnn — Copyright (c) 2019, Music Technology Group, Universitat Pompeu Fabra.
ISC licence: Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above copyright notice
and this permission notice appear in all copies. THE SOFTWARE IS PROVIDED "AS IS" AND THE
AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED
WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY
SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING
FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER
TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS
SOFTWARE.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from slapp.errors import StageError

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
N_FRAMES = 187            # 3 s: librosa.time_to_frames(3, sr=16000, hop_length=256, n_fft=512) + 1
PATCH_SECONDS = 3.0
EMBEDDING_SIZE = 200      # the "penultimate" layer
POOLED_SIZE = 1506        # max and mean over time of the 753 mid-end features
OUTPUTS = ("tags", "penultimate", "pooled")  # build_backbone's outputs, in order
TAGS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance',
        '00s', 'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout',
        'male vocalists', 'classic rock', 'soul', 'indie rock', 'Mellow', 'electronica',
        '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies', 'blues',
        'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar',
        'Hip-Hop', '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk',
        'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb', 'indie pop', 'sad',
        'House', 'happy']

INSTALL_HINT = "install it with: pip install --no-deps musicnn==0.1.0"


def checkpoint_prefix(name: str = "MSD_musicnn") -> str:
    """The TF1 checkpoint prefix inside the installed ``musicnn`` package (``<dir>/``).

    Raises :class:`StageError` when the package or its checkpoint is missing."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise StageError(f"The musicnn backbones need the musicnn weights ({name}); "
                         f"{INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / name
    if not (folder / ".index").exists():
        raise StageError(f"The musicnn package has no checkpoint at '{folder}/.index'; "
                         f"reinstall it: pip install --force-reinstall --no-deps musicnn==0.1.0")
    # the prefix is the folder itself ('<dir>/' + '' → '<dir>/.index'); the checkpoint's own
    # 'checkpoint' file points at its author's home folder and is not used
    return str(folder) + "/"


def checkpoint_reader(prefix: str):
    """A reader of the TF1 checkpoint at ``prefix`` (``reader.get_tensor(name)``); a
    damaged checkpoint is a :class:`StageError`."""
    import tensorflow as tf

    try:
        return tf.compat.v1.train.NewCheckpointReader(prefix)
    except Exception as exc:  # a damaged checkpoint
        raise StageError(f"Cannot read the musicnn checkpoint '{prefix}': "
                         f"{str(exc).splitlines()[0][:200]}") from None


def compress(power: np.ndarray) -> np.ndarray:
    """musicnn's compression ``log10(10000 · power + 1)``, float32, same shape."""
    return np.ascontiguousarray(np.log10(10000.0 * power + 1.0), dtype=np.float32)


def build_backbone(n_frames: int = N_FRAMES, *, name: str = "musicnn_msd"):
    """Keras model ``(batch, n_frames, 96)`` → ``[tags (batch, 50) sigmoid, penultimate
    (batch, 200), pooled (batch, 1506)]``, weights not loaded (see :func:`load_backbone`).

    Layers carry the TF1 checkpoint's names (``conv2d_3``, ``batch_normalization_7``, ...)
    so that loading is a lookup; inference only (BatchNorm epsilon 1e-3 as in TF1)."""
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    L = keras.layers
    bn_count = iter(range(11))

    def bn(x):
        i = next(bn_count)
        return L.BatchNormalization(epsilon=1e-3, name="batch_normalization" +
                                    (f"_{i}" if i else ""))(x)

    inputs = keras.Input(shape=(n_frames, N_MELS), name="musicnn_mel")
    x = L.Reshape((n_frames, N_MELS, 1), name="expand")(inputs)
    x = bn(x)
    padded = L.ZeroPadding2D(((3, 3), (0, 0)), name="pad_timbral")(x)
    branches = []
    for conv, (kt, kf, filters, padding, source) in enumerate([
            (7, int(0.4 * N_MELS), 204, "valid", padded),
            (7, int(0.7 * N_MELS), 204, "valid", padded),
            (128, 1, 51, "same", x), (64, 1, 51, "same", x), (32, 1, 51, "same", x)]):
        y = L.Conv2D(filters, (kt, kf), padding=padding, activation="relu",
                     name="conv2d" + (f"_{conv}" if conv else ""))(source)
        y = bn(y)
        width = y.shape[2]
        y = L.MaxPooling2D((1, width), strides=(1, width), name=f"pool_freq_{conv}")(y)
        branches.append(L.Reshape((n_frames, filters), name=f"squeeze_{conv}")(y))
    front = L.Concatenate(axis=-1, name="frontend")(branches)          # (T, 561)
    mids = [front]
    y = front
    for i in range(3):
        z = L.ZeroPadding1D(3, name=f"pad_mid_{i}")(y)
        z = L.Conv1D(64, 7, activation="relu", name=f"conv2d_{5 + i}")(z)
        z = bn(z)
        y = z if i == 0 else L.Add(name=f"residual_{i}")([z, y])
        mids.append(y)
    features = L.Concatenate(axis=-1, name="midend")(mids)              # (T, 753)
    width = features.shape[-1]
    pooled_max = L.Reshape((width, 1), name="max_col")(
        L.GlobalMaxPooling1D(name="max_pool")(features))
    pooled_mean = L.Reshape((width, 1), name="mean_col")(
        L.GlobalAveragePooling1D(name="mean_pool")(features))
    # TF1 concatenated [max, mean] on a new last axis, then flattened: interleaved
    pooled = L.Flatten(name="pooled")(L.Concatenate(axis=-1)([pooled_max, pooled_mean]))
    z = bn(pooled)
    z = L.Dense(200, activation="relu", name="dense")(z)
    penultimate = bn(z)
    logits = L.Dense(len(TAGS), name="dense_1")(penultimate)
    tags = L.Activation("sigmoid", name="tags")(logits)
    return keras.Model(inputs, [tags, penultimate, pooled], name=name)


def load_backbone(n_frames: int = N_FRAMES, prefix: str | None = None, *,
                  checkpoint: str = "MSD_musicnn"):
    """:func:`build_backbone` with the weights of ``checkpoint`` (``MSD_musicnn`` or
    ``MTT_musicnn``: both checkpoints share the architecture), frozen."""
    model = build_backbone(n_frames)
    reader = checkpoint_reader(prefix or checkpoint_prefix(checkpoint))
    for layer in model.layers:
        names = {"Conv2D": ["kernel", "bias"], "Conv1D": ["kernel", "bias"],
                 "Dense": ["kernel", "bias"],
                 "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"]}
        kind = type(layer).__name__
        if kind not in names:
            continue
        values = [reader.get_tensor(f"{layer.name}/{n}") for n in names[kind]]
        if kind == "Conv1D":  # TF1 conv2d over a (T, width, 1) map = conv1d over width channels
            values[0] = values[0][:, :, 0, :]
        layer.set_weights(values)
    model.trainable = False
    return model
