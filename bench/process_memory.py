#!/usr/bin/env python3
"""Benchmark process_dataset.py on synthetic caches of growing size: peak RSS and MB/s.

A synthetic stage-1 output (split, build info, manifest, one ``.npz`` of random dB values
per track, 14 snippets of 130 x 100 float32 each, as gtzan-mini's) is generated in a
temp folder for each size; process_dataset.py then runs on it in a fresh process whose
peak RSS (getrusage) and wall time are printed. Peak RSS must stay flat as the cache
grows: the arrays are written row by row, never held or memory-mapped whole.

Usage: python bench/process_memory.py [--sizes-mb 750 3000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACK_MB = 14 * 130 * 100 * 4 / 1e6  # 0.728 MB per cached track


def make_cache(folder: Path, n_tracks: int) -> Path:
    """Write a stage-1 output with ``n_tracks`` synthetic tracks over 10 classes."""
    from slapp.store import cache
    from slapp.store.layout import BuildLayout
    from slapp.params import params_from_dict
    from slapp.store.split import make_split

    params_raw = json.loads((ROOT / "pipeline_parameters.json").read_text())
    params_raw["paths"] = {"input_dir": str(folder / "music"), "output_dir": str(folder / "out")}
    (folder / "params.json").write_text(json.dumps(params_raw))
    params = params_from_dict(params_raw)
    layout = BuildLayout(folder / "out")
    layout.tmp_dir.mkdir(parents=True)
    classes = [f"class{i}" for i in range(10)]
    tracks = {c: [f"{c}/t{j:06d}.mp3" for j in range(n_tracks // 10)] for c in classes}
    split = make_split(tracks, val_share=0.1, test_share=0.1, seed=0)
    fp = cache.fingerprint(params.feature_settings())
    rng = np.random.default_rng(0)
    base = rng.normal(-30, 20, size=(14, 130, 100)).astype(np.float32)
    entries = {}
    for i, key in enumerate(k for ks in tracks.values() for k in ks):
        mel = base + np.float32(i % 17)  # cheap to make, different per track
        cache.write_track(layout, key, mel=mel, starts=np.arange(14, dtype=np.float32) * 2,
                          dtype="float32", fingerprint=fp)
        entries[key] = {"split": "", "status": "done", "snippets": 14}
    (folder / "out" / "train_val_test_dict.json").write_text(json.dumps(split))
    (folder / "out" / "build_manifest.json").write_text(json.dumps({"tracks": entries}))
    (folder / "out" / "build_info.json").write_text(json.dumps({
        "fingerprint": fp, "feature_settings": params.feature_settings(), "classes": classes,
        "n_frames": params.n_frames, "n_mels": params.features.n_mels}))
    return folder / "params.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[750, 3000])
    parser.add_argument("--dir", default=None, help="where the temp caches go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import process_dataset

        rc = process_dataset.main(["--params", args.child, "--quiet"])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rc": rc, "rss_mb": rss}))
        return

    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores")
    for size in args.sizes_mb:
        n_tracks = max(10, int(size / TRACK_MB) // 10 * 10)
        tmp = Path(tempfile.mkdtemp(dir=args.dir, prefix="slapp-bench-"))
        try:
            params = make_cache(tmp, n_tracks)
            subprocess.run(["sync"], check=False)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--child", str(params)],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            arrays_mb = sum(p.stat().st_size for p in (tmp / "out" / "arrays").glob("*.npy")) / 1e6
            print(f"cache {n_tracks * TRACK_MB:8.0f} MB ({n_tracks} tracks, {n_tracks * 14} "
                  f"snippets): {wall:6.1f} s, {arrays_mb / wall:6.1f} MB/s written "
                  f"(reads twice the training cache), peak RSS {out['rss_mb']:.0f} MB")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
