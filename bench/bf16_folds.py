#!/usr/bin/env python3
"""bfloat16 inference against float32 on the accuracy study's folds.

For each fold's bundle kept by ``bench/accuracy.py`` (``WORK/TAG/<row>/model-fold-F``),
label that fold's test tracks through ``predict_tracks`` (default hop) once in float32
and once with oneDNN's bfloat16 rewrite (in a separate process: the option is
process-wide), and print track accuracy of both and how many labels changed.

Usage: python bench/bf16_folds.py [--tag framing] [--rows crnn,musicnn]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def labels(model_dir: str, paths: list[str], bf16: bool) -> list[str]:
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import predict_tracks

    bundle = load_bundle(model_dir)
    if bf16:  # the bundle's cached Scorer (the one predict uses), in bfloat16
        from keras_options import option_scorer

        bundle._scorers[None] = option_scorer(bundle.model, bfloat16=True)
    report = predict_tracks(paths, bundle=bundle, progress=False)
    return [r.label for r in report.results]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "bench" / "params_gtzan.json"))
    parser.add_argument("--work", default=str(ROOT / "output" / "accuracy"))
    parser.add_argument("--tag", default="framing")
    parser.add_argument("--rows", default="crnn,musicnn")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model_dir, paths, bf16 = args.child
        print(json.dumps(labels(model_dir, json.loads(paths), bf16 == "1")))
        return 0

    from accuracy import folds_of

    from slapp.store.discovery import find_tracks
    from slapp.params import load_params

    dataset = find_tracks(load_params(args.params).paths.input_dir)
    folds = folds_of(dataset, args.folds)
    print(f"command: python bench/bf16_folds.py --tag {args.tag} --rows {args.rows}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    print("| row | fold | float32 | bfloat16 | labels changed |")
    print("| --- | --- | --- | --- | --- |")
    for row in args.rows.split(","):
        totals = [0, 0, 0, 0]
        for f in range(args.folds):
            model_dir = Path(args.work) / args.tag / row / f"model-fold-{f}"
            test = [(c, key) for c in dataset.classes for key in folds[f][c]]
            paths = json.dumps([str(dataset.root / dataset.files[k]) for _, k in test])
            out = {}
            for bf16 in ("0", "1"):
                proc = subprocess.run([sys.executable, __file__, "--child", str(model_dir),
                                       paths, bf16], capture_output=True, text=True,
                                      check=True, cwd=ROOT)
                out[bf16] = json.loads(proc.stdout.strip().splitlines()[-1])
            right = [sum(lab == c for lab, (c, _) in zip(out[b], test)) for b in ("0", "1")]
            changed = sum(a != b for a, b in zip(out["0"], out["1"]))
            totals = [totals[0] + right[0], totals[1] + right[1], totals[2] + changed,
                      totals[3] + len(test)]
            print(f"| {row} | {f} | {right[0] / len(test):.2f} | {right[1] / len(test):.2f} "
                  f"| {changed} of {len(test)} |", flush=True)
        print(f"| {row} | all | {totals[0] / totals[3]:.3f} | {totals[1] / totals[3]:.3f} "
              f"| {totals[2]} of {totals[3]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
