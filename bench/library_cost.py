#!/usr/bin/env python3
"""What learning from the library costs stage 3: ``train_crnn.py`` with
``training.library.method`` "off" (the library only suggests tracks to label) and "self-train" /
"propagate" against no library at all, on the same arrays, with a library of ``--tracks``
tracks.

Takes an output folder that stages 1–2 made with ``paths.unlabelled_dir`` set (e.g. gtzan-mini
with gtzan-other-artists as the library: 120 tracks), copies what stage 3 reads into a work
folder, and grows the library's embedding arrays to ``--tracks`` tracks by repeating its
tracks with a little noise (stage 2's cost, one embedding per track, is the same with or
without the round, and is reported by stage 2 itself). Each run is a fresh process; the
figure is the wall time of the whole script and the ratio to the run without a library
("none") measured in the same run.

Usage: python bench/library_cost.py --output /tmp/st/pipe [--tracks 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def grow(out: Path, tracks: int) -> None:
    arrays = out / "arrays"
    e = np.load(arrays / "library_E.npy")
    t = np.load(arrays / "library_track.npy")
    keys = json.loads((arrays / "library.json").read_text())["keys"]
    rng = np.random.default_rng(0)
    rows, ids, names = [], [], []
    for i in range(tracks):
        src = i % len(keys)
        part = e[t == src]
        rows.append(part + rng.normal(0, 0.01, part.shape).astype(np.float32))
        ids.append(np.full(len(part), i, np.int32))
        names.append(f"{keys[src]}#{i}")
    np.save(arrays / "library_E.npy", np.concatenate(rows))
    np.save(arrays / "library_track.npy", np.concatenate(ids))
    (arrays / "library.json").write_text(json.dumps({"keys": names}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slapp-library-cost"))
    args = parser.parse_args()
    print(f"# python bench/library_cost.py --output {args.output} --tracks {args.tracks} "
          f"--repeat {args.repeat}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores")
    shutil.rmtree(args.work, ignore_errors=True)
    out = args.work / "out"
    out.mkdir(parents=True)
    for name in ("arrays", "build_info.json", "build_manifest.json",
                 "train_val_test_dict.json"):
        src = args.output / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, out / name)
    onnx = next((args.output / "embeddings").glob("*/backbone.onnx"))
    (out / "embeddings" / onnx.parent.name).mkdir(parents=True)
    shutil.copy2(onnx, out / "embeddings" / onnx.parent.name / onnx.name)
    grow(out, args.tracks)
    info = json.loads((args.output / "build_info.json").read_text())
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for method in ("none", "off", "self-train", "propagate"):
            params = {"paths": {"input_dir": info["input_dir"], "output_dir": str(out),
                                "unlabelled_dir": None if method == "none" else str(args.work),
                                "model_dir": str(args.work / f"model-{method}")},
                      "training": {"library": {"method": "off" if method == "none"
                                               else method}}}
            pfile = args.work / f"{method}.json"
            pfile.write_text(json.dumps(params))
            started = time.monotonic()
            run = subprocess.run([sys.executable, str(ROOT / "train_crnn.py"), "--params",
                                  str(pfile), "--quiet", "--retrain"],
                                 capture_output=True, text=True)
            seconds = time.monotonic() - started
            if run.returncode:
                print(run.stdout[-2000:], run.stderr[-2000:])
                return 1
            times.setdefault(method, []).append(seconds)
            line = next((ln.strip() for ln in run.stdout.splitlines()
                         if "joined training" in ln), "library: not used")
            print(f"{method}: {seconds:.1f} s; {line[:110]}", flush=True)
    base = min(times["none"])
    for method, values in times.items():
        print(f"train_crnn.py, library {args.tracks} tracks, method {method}: best "
              f"{min(values):.1f} s, {min(values) / base:.2f}x without a library")
    return 0


if __name__ == "__main__":
    sys.exit(main())
