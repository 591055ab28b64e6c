"""The backbone contract (see :mod:`slapp.models.backbones`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """What a backbone's input is computed from: the audio and feature settings in force
    (:attr:`slapp.params.PipelineParams.input_spec`), plain values only."""

    sample_rate: int
    snippet_samples: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None
    log_reference: float = 1.0
    log_amin: float = 1e-10


class Backbone:
    """One way of scoring snippets. Subclasses set ``name`` and override what differs.

    - ``section``, ``owns``: the settings that shape only this backbone's input live in
      the parameters file under ``model.<section>`` (``model.crnn.features.n_mels``);
    - ``unused``: ``{section: keys}`` it does not read (a key set there is noted);
    - ``fixed_settings``: ``{section: {key: value}}`` of ``audio``/``slicing``/``features``/
      ``process`` values the backbone's input needs, whatever the JSON says;
    - ``defaults``: ``{section: {key: value}}`` used where the JSON does not set the key
      (what measured best with this backbone; the JSON may say otherwise);
    - ``separate_cache``: whether its features are cached apart from the CRNN's (the
      feature fingerprint then names the backbone);
    - ``augments``: whether the log-mel augmentations of the training feed apply.
    """

    name: str = ""
    section: str = ""  # its settings' section under ``model`` in the parameters file
    owns: dict = {}  # {"features": ("n_mels", ...)}: settings under model.<section>.<sec>
    unused: dict = {}  # {"training": (...)}: settings it neither fixes nor reads
    fixed_settings: dict = {}
    defaults: dict = {}
    separate_cache: bool = True
    augments: bool = False
    pretrained: bool = False  # learned from other music: better on artists not in training
    feature_unit: str = "dB"  # of the model input, for the summaries
    summary_note: str = ""

    def check(self, params) -> None:
        """Refuse parameter combinations this backbone cannot work with
        (:class:`~slapp.errors.ParameterError`)."""

    def n_frames(self, spec: InputSpec) -> int:
        """Spectrogram frames per snippet."""
        raise NotImplementedError

    def compress(self, power: np.ndarray, spec: InputSpec) -> np.ndarray:
        """Mel power ``(n_snippets, n_frames, n_mels)`` → the model input, same shape,
        float32."""
        raise NotImplementedError

    def features(self, y: np.ndarray, first_frames: np.ndarray, spec: InputSpec
                 ) -> np.ndarray:
        """The model input of the snippets of ``y`` ``(n_samples,)`` that start on frames
        ``first_frames`` ``(n_snippets,)``, cut from one mel spectrogram of the track
        (:func:`slapp.dsp.features.snippet_mel_power`): ``(n_snippets, n_frames, n_mels)``
        float32."""
        from slapp.dsp.features import snippet_mel_power

        power = snippet_mel_power(
            y, first_frames, n_frames=self.n_frames(spec),
            snippet_samples=spec.snippet_samples, sample_rate=spec.sample_rate,
            n_fft=spec.n_fft, hop_length=spec.hop_length, n_mels=spec.n_mels,
            fmin=spec.fmin, fmax=spec.fmax)
        return self.compress(power, spec)

    def embedding_layer(self, params) -> str | None:
        """The frozen backbone output that stage 2 caches per track and the head trains on
        (``"penultimate"``/``"pooled"``), or None: the model trains on the features."""
        return None

    def build_trainable(self, params, n_classes: int):
        """The Keras model stage 3 fits (on :meth:`training_inputs`)."""
        raise NotImplementedError

    def training_inputs(self, arrays, parts: tuple[str, ...], params, *,
                        progress: bool = False) -> dict[str, Path]:
        """``{part: .npy file}`` the trainable model reads per split: the arrays of stage
        2 by default."""
        return {part: arrays.array(part, "X") for part in parts}

    def write_portable(self, trained, bundled, path: Path, check: tuple, layout) -> float:
        """Write the ONNX copy of ``bundled`` (:meth:`bundle_model` of ``trained``) to
        ``path``, checked on ``check`` = ``(snippets (n, n_frames, n_mels), the same rows
        as`` ``trained`` ``takes them)``; returns the largest probability difference
        (:mod:`slapp.models.portable`). ``layout``: the output folder's
        :class:`~slapp.store.layout.BuildLayout`."""
        from slapp.models.portable import export

        return export(bundled, path, check[0])

    def bundle_model(self, trained, params):
        """The network the bundle holds: snippet features → class probabilities."""
        return trained
