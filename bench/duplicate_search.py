#!/usr/bin/env python3
"""The audit's duplicate search at scale: time and peak memory for N tracks.

Each track is 126 random unit "seconds" of 60 dimensions (what the audit keeps per 30 s
clip: a gain-free spectral shape every quarter of a second); one track in 100 is a noisy
copy (noise 1 % of the signal) of the one before it. Random seconds are the hard case for
a search: nothing clusters. Prints the time of
:func:`slapp.dsp.duplicates.find_duplicates`, how many of the planted copies it found, and
the process's peak memory (the tracks themselves included: about 30 KB each).

Usage: python bench/duplicate_search.py --tracks 1000 [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from slapp.dsp.duplicates import find_duplicates

    rng = np.random.default_rng(args.seed)
    shapes, planted = {}, set()
    for i in range(args.tracks):
        x = rng.standard_normal((126, 60)).astype(np.float32)
        if i % 100 == 1:
            x = shapes[f"c/{i - 1}"] + 0.01 * x
            planted.add((f"c/{i - 1}", f"c/{i}"))
        x -= x.mean(axis=1, keepdims=True)
        shapes[f"c/{i}"] = x / np.linalg.norm(x, axis=1, keepdims=True)
    started = time.perf_counter()
    pairs = {(a, b) for a, b, _, _ in find_duplicates(shapes, {k: 30.0 for k in shapes})}
    seconds = time.perf_counter() - started
    print(f"command: python bench/duplicate_search.py --tracks {args.tracks} --seed {args.seed}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    print(f"{args.tracks} tracks: {seconds:.1f} s, {len(pairs & planted)} of {len(planted)} "
          f"copies found, {len(pairs - planted)} other pairs, peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
