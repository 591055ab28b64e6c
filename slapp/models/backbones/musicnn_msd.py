"""musicnn trained on the Million Song Dataset (:mod:`slapp.models.musicnn`), frozen, with a
softmax head on its 200-d "penultimate" embedding.

Stage 2 embeds every cached snippet once, per track, on onnxruntime
(:mod:`slapp.stages.process.embed`), and stage 3 trains the head on those embeddings;
``model.musicnn.fine_tune`` trains musicnn's own top layers (from the checkpoint) and the softmax on its 1506 pooled features instead. The bundle holds
backbone and head as one model ``(batch, 187, 96)`` → ``(batch, n_classes)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.models import musicnn
from slapp.models.backbones.base import Backbone
from slapp.spec import param


@dataclass(frozen=True)
class MusicnnParams:
    """``model.musicnn``: the settings of the musicnn backbones (MSD and MTT)."""

    fine_tune: bool = param(False, "bool", doc="also train musicnn's top layers")

HEAD_DROPOUT = 0.5
HEAD_L2 = 1e-3


class Musicnn(Backbone):
    """A musicnn checkpoint of the ``musicnn`` wheel as a frozen backbone."""

    section = "musicnn"
    owns = {"audio": ("trim_silence", "loudness_db")}
    unused = {"features": ("log_reference", "log_amin"),
              "training": ("augment_gain_db", "augment_time_masks", "augment_freq_masks",
                           "augment_mixup_alpha", "augment_lowpass", "augment_lowpass_min_hz")}

    fixed_settings = {
        "audio": {"sample_rate": musicnn.SAMPLE_RATE},
        "slicing": {"snippet_seconds": musicnn.PATCH_SECONDS},
        "features": {"n_fft": musicnn.N_FFT, "hop_length": musicnn.HOP_LENGTH,
                     "n_mels": musicnn.N_MELS, "fmin": 0.0, "fmax": None,
                     "dtype": "float32"},
        "process": {"normalization": "none"},
    }
    # levelled input: same clean accuracy, and -20/+10 dB files no longer lose 0.2-0.5 of
    # their labels (BENCHMARKS.md, domain shifts)
    defaults = {"audio": {"trim_silence": True, "loudness_db": -20.0}}
    pretrained = True
    feature_unit = "(log10(1 + 10000 mel))"

    def __init__(self, name: str, checkpoint: str):
        self.name, self.checkpoint = name, checkpoint
        self.summary_note = (f"(the head that training fits, on the frozen {name} embedding;"
                             " the bundle holds the backbone and this head)")

    def n_frames(self, spec) -> int:
        return musicnn.N_FRAMES

    def compress(self, power: np.ndarray, spec) -> np.ndarray:
        return musicnn.compress(power)

    def embedding_layer(self, params) -> str:
        """Which backbone output stage 2 caches and the head reads: ``"penultimate"``, or
        ``"pooled"`` when fine-tuning musicnn's top layers."""
        return "pooled" if params.model.musicnn.fine_tune else "penultimate"

    def build_trainable(self, params, n_classes: int):
        if params.model.musicnn.fine_tune:
            return build_top_head(n_classes, checkpoint=self.checkpoint)
        return build_head(musicnn.EMBEDDING_SIZE, n_classes)

    def training_inputs(self, arrays, parts, params, *, progress=False) -> dict[str, Path]:
        """Stage 2's ``<part>_E.npy``: the cached embeddings, rows as in ``<part>_X.npy``."""
        files = {part: arrays.array(part, "E") for part in parts}
        if not files["train"].exists():
            from slapp.errors import StageError

            raise StageError(f"No embeddings in '{arrays.root}' ({files['train'].name}): the "
                             "arrays were made by an older slapp. Run process_dataset.py "
                             "again.")
        return {part: f for part, f in files.items() if f.exists()}

    def write_portable(self, trained, bundled, path: Path, check: tuple, layout) -> float:
        """The head's export joined to the ONNX backbone that embedded the snippets:
        musicnn itself never runs through TensorFlow in stage 3."""
        from slapp.models.backbone_onnx import OUTPUTS, ensure_backbone
        from slapp.models.portable import export_on_backbone

        backbone = ensure_backbone(self.checkpoint, layout.backbone_file(self.name))
        layer = "pooled" if trained.input_shape[-1] == musicnn.POOLED_SIZE else "penultimate"
        return export_on_backbone(trained, backbone, OUTPUTS.index(layer), path, *check)

    def bundle_model(self, trained, params):
        from slapp.models.keras_env import import_keras

        keras = import_keras()
        backbone = musicnn.load_backbone(checkpoint=self.checkpoint)
        inputs = keras.Input(shape=(musicnn.N_FRAMES, musicnn.N_MELS), name="musicnn_mel")
        embedding = backbone(inputs)[musicnn.OUTPUTS.index(self.embedding_layer(params))]
        return keras.Model(inputs, trained(embedding),
                           name=f"slapp_{self.checkpoint.lower()}")


def _softmax_head(keras, x, n_classes: int):
    """Dropout → softmax with L2 on the weights: the classifier on top of an embedding."""
    x = keras.layers.Dropout(HEAD_DROPOUT, name="dropout_embedding")(x)
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                              kernel_regularizer=keras.regularizers.L2(HEAD_L2),
                              name="probabilities")(x)


def build_head(n_inputs: int, n_classes: int):
    """Softmax regression on an embedding: ``(batch, n_inputs)`` → ``(batch, n_classes)``,
    with input dropout 0.5 and L2 1e-3 on the weights."""
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    inputs = keras.Input(shape=(n_inputs,), name="embedding")
    return keras.Model(inputs, _softmax_head(keras, inputs, n_classes), name="slapp_head")


def build_top_head(n_classes: int, *, checkpoint: str = "MSD_musicnn"):
    """For fine-tuning: musicnn's own top layers (BatchNorm → dropout → dense 200 →
    BatchNorm, initialised from the checkpoint, trainable) then dropout → softmax, on its
    pooled features ``(batch, 1506)`` → ``(batch, n_classes)``."""
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    L = keras.layers
    inputs = keras.Input(shape=(musicnn.POOLED_SIZE,), name="pooled")
    top = [L.BatchNormalization(epsilon=1e-3, name="batch_normalization_9"),
           L.Dropout(0.5, name="dropout_pooled"),
           L.Dense(musicnn.EMBEDDING_SIZE, activation="relu", name="dense"),
           L.BatchNormalization(epsilon=1e-3, name="batch_normalization_10")]
    x = inputs
    for layer in top:
        x = layer(x)
    outputs = _softmax_head(keras, x, n_classes)
    backbone = musicnn.load_backbone(checkpoint=checkpoint)
    for layer in top:
        if layer.weights:
            layer.set_weights(backbone.get_layer(layer.name).get_weights())
    return keras.Model(inputs, outputs, name="slapp_top_head")


BACKBONE = Musicnn("musicnn-msd", "MSD_musicnn")
