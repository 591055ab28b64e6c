"""The Keras rebuild of MSD_musicnn against the original TF1 graph (skipped without the
``musicnn`` wheel), and its float32 input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                reason="musicnn weights not installed "
                                       "(pip install --no-deps musicnn==0.1.0)")


def _original_outputs(prefix: str, x: np.ndarray, outputs=(
        "model/Sigmoid:0", "model/batch_normalization_10/batchnorm/add_1:0")) -> list:
    """``outputs`` (default: tags and penultimate features) of the original graph
    (MetaGraphDef + restore)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + ".meta", "rb") as f:
        meta.ParseFromString(f.read())
    for node in meta.graph_def.node:  # stale shapes make the import fail
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, prefix)
            return sess.run(list(outputs),
                            {"model/Placeholder:0": x, "model/Placeholder_2:0": False})


@pytest.fixture(scope="module")
def batch():
    from slapp.models.musicnn import N_FRAMES, SAMPLE_RATE

    rng = np.random.default_rng(7)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    tones = [0.3 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 2 * t)) for f in
             (110.0, 440.0, 1760.0)]
    noise = [0.2 * rng.standard_normal(len(t)), np.zeros(len(t))]
    y = np.stack(tones + noise).astype(np.float32)
    return musicnn_mel(y)[:, :N_FRAMES]


def test_rebuild_matches_original_graph(batch):
    from slapp.models.musicnn import checkpoint_prefix, load_backbone

    prefix = checkpoint_prefix()
    tags, penultimate, _ = [np.asarray(a) for a in load_backbone()(batch, training=False)]
    ref_tags, ref_pen = _original_outputs(prefix, batch)
    assert tags.shape == (5, 50) and penultimate.shape == (5, 200)
    np.testing.assert_allclose(tags, ref_tags, atol=1e-5)
    np.testing.assert_allclose(penultimate, ref_pen, atol=1e-4, rtol=1e-4)
    # the inputs differ, so must the outputs (the comparison is not between constants)
    assert np.abs(tags[0] - tags[3]).max() > 1e-3


def test_input_is_float32_and_finite_for_loud_audio():

    loud = np.ones((1, 48000), np.float32)  # full-scale DC: float16 log10(1e4·mel) overflows
    loud[0, ::2] = -1.0
    x = musicnn_mel(loud)
    assert x.dtype == np.float32 and x.shape == (1, 188, 96)
    assert np.isfinite(x).all() and x.max() > 4.0


def test_weights_are_frozen_and_loaded():
    from slapp.models.musicnn import build_backbone, load_backbone

    loaded, fresh = load_backbone(), build_backbone()
    assert loaded.trainable_weights == []
    differ = [a.name for a, b in zip(loaded.weights, fresh.weights)
              if not np.allclose(np.asarray(a), np.asarray(b))]
    assert len(differ) >= 60  # every kernel, bias and BatchNorm statistic came from the file


def musicnn_mel(snippets):
    """musicnn's input of 16 kHz snippets ``(n, n_samples)``: ``log10(10000 · mel + 1)``
    of a 96-band mel power spectrogram (n_fft 512, hop 256), ``(n, frames, 96)`` float32."""
    from slapp.dsp.features import mel_power
    from slapp.models.musicnn import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, compress

    power = mel_power(snippets, sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
                      n_mels=N_MELS)
    return compress(power.transpose(0, 2, 1))
