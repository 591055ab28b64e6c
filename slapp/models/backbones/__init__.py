"""The backbones: what turns a snippet into class scores, one module per backbone.

Every module here exposes ``BACKBONE``, an instance of
:class:`~slapp.models.backbones.base.Backbone` that declares its input settings (what it fixes of ``audio``/``slicing``/``features``,
frames per snippet, the feature function), how it builds what stage 3 trains, what it
trains on (the arrays, or embeddings computed once), and the network the bundle holds
(which carries its own input shape). Nothing outside this package compares backbone names:
everything asks :func:`get`. Adding a backbone is one module plus its line in
:data:`MODULES`; ``tests/test_backbone_contract.py`` runs every one end to end.
"""

from __future__ import annotations

from importlib import import_module

import numpy as np

from slapp.models.backbones.base import Backbone

# model.backbone value -> module of this package
MODULES = {
    "crnn": "crnn",
    "musicnn-msd": "musicnn_msd",
    "musicnn-mtt": "musicnn_mtt",
}
NAMES = tuple(MODULES)


def get(name: str) -> Backbone:
    """The registered backbone called ``name`` (a value of ``model.backbone``)."""
    if name not in MODULES:
        raise KeyError(f"unknown backbone {name!r}; expected one of {', '.join(NAMES)}")
    return import_module(f"{__name__}.{MODULES[name]}").BACKBONE


def snippet_features(y: np.ndarray, sample_starts: np.ndarray, params
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The model input of the snippets of ``y`` that start at ``sample_starts`` as
    ``params`` (a :class:`~slapp.params.PipelineParams`) defines it; build and predict both
    call this. Snippets start on whole frames: each start is moved back to the frame at or
    before it.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float32 waveform at ``params.audio.sample_rate``.
    sample_starts : np.ndarray [shape=(n_snippets,)], int, sorted.

    Returns
    -------
    features : np.ndarray [shape=(n_snippets, params.n_frames, params.features.n_mels)],
        float32.
    starts : np.ndarray [shape=(n_snippets,)], int64 start of each snippet in samples
        (a whole number of ``params.features.hop_length``).
    """
    from slapp.dsp.features import frame_starts

    hop = params.features.hop_length
    first = frame_starts(sample_starts, hop_length=hop)
    return get(params.model.backbone).features(y, first, params.input_spec), first * hop


__all__ = ["Backbone", "MODULES", "NAMES", "get", "snippet_features"]
