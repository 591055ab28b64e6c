#!/usr/bin/env python3
"""Benchmark train_crnn.py's input pipeline against a bare ``model.fit`` on NumPy arrays.

feed : ``model.fit(SnippetFeed(...))`` — the PyDataset train_crnn.py uses, reading
       batches from the memory-mapped ``train_X.npy`` of process_dataset.py.
bare : ``model.fit(X, Y, batch_size, shuffle=True)`` with the same rows already in RAM.

Same model (the parameters' CRNN), same batch size, same data, in the same process; each
variant first runs one warm-up epoch (graph tracing), then timed epochs alternate
feed/bare (order swapped every round) and the fastest epoch of each is compared. Prints snippets/s of each, the ratio
feed/bare (target >= 0.9) and seconds per epoch. ``--precision mixed_bfloat16`` times the
bfloat16 policy instead of float32 (and reports snippet accuracy after the epochs, to
compare with a float32 run).

Needs the arrays: run build_dataset.py and process_dataset.py with the same --params
first (e.g. on ../shared/data/gtzan-mini).

Usage: python bench/train_speed.py [--params P] [--epochs 2] [--precision float32]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "pipeline_parameters.json"))
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per variant")
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16"))
    args = parser.parse_args()

    import numpy as np

    from slapp.models.feed import SnippetFeed
    from slapp.models.keras_env import import_keras
    from slapp.params import load_params
    from slapp.store.layout import ArraysLayout
    from slapp.stages.train.training import compile_model, new_model

    keras = import_keras()
    params = load_params(args.params)
    params = dataclasses.replace(params, training=dataclasses.replace(
        params.training, precision=args.precision))
    arrays = ArraysLayout(Path(params.paths.output_dir) / "arrays")
    x_file = arrays.array("train", "X")
    if not x_file.exists():
        sys.exit(f"no arrays at {x_file}: run build_dataset.py and process_dataset.py first")
    labels = np.load(arrays.array("train", "y"))
    n_classes = int(labels.max()) + 1
    batch = params.training.batch_size

    def fresh():
        keras.utils.set_random_seed(0)
        model = new_model(params, n_classes)
        compile_model(model, params)
        return model

    feed_model, bare_model = fresh(), fresh()
    feed = SnippetFeed(x_file, labels, n_classes, batch, shuffle_seed=0)
    x = np.load(x_file)
    y = np.eye(n_classes, dtype=np.float32)[labels]
    runs = {"feed": [], "bare": []}

    def epoch(kind):
        start = time.perf_counter()
        if kind == "feed":
            feed_model.fit(feed, epochs=1, verbose=0)
        else:
            bare_model.fit(x, y, batch_size=batch, shuffle=True, epochs=1, verbose=0)
        return time.perf_counter() - start

    epoch("feed"), epoch("bare")  # warm-up: tracing and first allocations
    for i in range(args.epochs):
        for kind in (("feed", "bare") if i % 2 == 0 else ("bare", "feed")):
            runs[kind].append(epoch(kind))
    n = len(labels)
    # the fastest epoch of each: the shared 2-core machine has slow spells that hit
    # whichever variant runs then; all epoch times are printed too
    feed_s, bare_s = min(runs["feed"]), min(runs["bare"])
    print(f"command: python bench/train_speed.py --params {args.params} --epochs "
          f"{args.epochs} --precision {args.precision}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
          f"python {platform.python_version()}, keras {keras.__version__}")
    print(f"model: {feed_model.count_params()} parameters, batch {batch}, {n} training "
          f"snippets of {tuple(x.shape[1:])}, precision {args.precision}")
    print(f"feed (train_crnn.py PyDataset on the memory map): {feed_s:.2f} s/epoch, "
          f"{n / feed_s:.1f} snippets/s")
    print(f"bare (model.fit on in-RAM NumPy arrays):         {bare_s:.2f} s/epoch, "
          f"{n / bare_s:.1f} snippets/s")
    print("epoch times (s): " + "; ".join(
        f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in runs.items()))
    print(f"ratio feed/bare: {bare_s / feed_s:.2f} (target >= 0.9)")
    acc = feed_model.evaluate(feed, verbose=0, return_dict=True)["accuracy"]
    print(f"training-set snippet accuracy after {args.epochs + 1} epochs (feed model): "
          f"{acc:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
