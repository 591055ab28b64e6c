#!/usr/bin/env python3
"""Throughput of the musicnn backbone: slapp's Keras 3 rebuild against the original TF1
graph, on the same patches, in the same process.

patches : 3-second musicnn inputs ``(187, 96)`` cut from gtzan-mini clips (one per 2 s).
original: musicnn's MetaGraphDef imported with ``tf.compat.v1`` and restored from the
          wheel's checkpoint, one ``session.run`` per batch (the baseline).
slapp   : ``slapp.models.musicnn.load_backbone()`` called on the same batches (what stage 3's
          embedding and stage 4 run).

Alternating rounds, ``--repeat`` each, best round kept. Prints patches/s of both and the
ratio slapp/original (target >= 0.9), plus the cost of the input features (patches/s of
``musicnn_mel``). Needs ``pip install --no-deps musicnn==0.1.0``.

Usage: python bench/musicnn_speed.py [--data ../shared/data/gtzan-mini] [--patches 512]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def musicnn_mel(snippets):
    """musicnn's input of 16 kHz snippets ``(n, n_samples)``: ``log10(10000 · mel + 1)``
    of a 96-band mel power spectrogram (n_fft 512, hop 256), ``(n, frames, 96)`` float32."""
    from slapp.dsp.features import mel_power
    from slapp.models.musicnn import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, compress

    power = mel_power(snippets, sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
                      n_mels=N_MELS)
    return compress(power.transpose(0, 2, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--patches", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from slapp.dsp.audio import decode
    from slapp.models.keras_env import import_keras
    from slapp.models.musicnn import N_FRAMES, checkpoint_prefix, load_backbone
    from slapp.dsp.slicing import snippet_starts

    import_keras()
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    files = sorted(Path(args.data).rglob("*.mp3"))
    snippets, feat_s = [], 0.0
    for path in files:
        y = decode(path, sample_rate=16000).y
        starts = snippet_starts(len(y), snippet_samples=48000, hop_samples=32000)
        y = np.pad(y, (0, max(0, 48000 - len(y))))  # a short track: one padded snippet
        snippets.append(np.stack([y[s:s + 48000] for s in starts]))
        if sum(len(s) for s in snippets) >= args.patches:
            break
    snippets = np.concatenate(snippets)[:args.patches]
    musicnn_mel(snippets[:1])  # librosa's one-off set-up is not the features' cost
    t = time.perf_counter()
    x = musicnn_mel(snippets)[:, :N_FRAMES]
    feat_s = time.perf_counter() - t
    batches = [x[i:i + args.batch] for i in range(0, len(x), args.batch)]

    prefix = checkpoint_prefix()
    model = load_backbone()
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(Path(prefix + ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        saver.restore(sess, prefix)

    def run_slapp():
        for b in batches:
            np.asarray(model(b, training=False)[1])

    def run_original():
        for b in batches:
            sess.run("model/batch_normalization_10/batchnorm/add_1:0",
                     {"model/Placeholder:0": b, "model/Placeholder_2:0": False})

    run_slapp(), run_original()  # warm-up
    best = {"slapp": float("inf"), "original": float("inf")}
    for _ in range(args.repeat):
        for name, fn in (("original", run_original), ("slapp", run_slapp)):
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    n = len(x)
    rate = {k: n / v for k, v in best.items()}
    print(f"command: python bench/musicnn_speed.py --patches {args.patches} "
          f"--batch {args.batch} --repeat {args.repeat}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"tensorflow {tf.__version__}")
    print(f"input features (musicnn_mel): {n / feat_s:.0f} patches/s")
    print(f"original TF1 graph: {rate['original']:.1f} patches/s")
    print(f"slapp Keras rebuild: {rate['slapp']:.1f} patches/s")
    print(f"ratio slapp/original: {rate['slapp'] / rate['original']:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

