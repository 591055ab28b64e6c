#!/usr/bin/env python3
"""Peak memory of stages 1-3 with the default model (musicnn-msd) on 100 and on 1,000
tracks: is stage 3 flat in the number of tracks? (issue 32: "on 1,000 tracks no more than
on 100"; the demo's stage 3 well under 1.5 GB).

The collections are symbolic links to gtzan-mini's 100 clips (10 links per clip for
1,000, each in its genre's folder), so the audio is real and the work scales. Each stage
runs as a new process; its peak RSS is ``ru_maxrss`` of the process and its children
(stage 2's includes the short child that makes musicnn's ONNX copy, once per output
folder). Prints seconds and peak MB per stage and size.

Usage: python bench/train_memory.py [--sizes 100 1000] [--work /tmp/slapp-trainmem]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def collection(folder: Path, n: int) -> Path:
    """``n`` links to gtzan-mini's clips, ``<genre>/<i>.mp3``."""
    if folder.exists():
        return folder
    clips = sorted(DATA.rglob("*.mp3"))
    for i in range(n):
        src = clips[i % len(clips)]
        dst = folder / src.parent.name / f"{i:05d}.mp3"
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    return folder


def main() -> int:
    from runtime_speed import measured

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/slapp-trainmem"))
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    for n in args.sizes:
        work = args.work / str(n)
        shutil.rmtree(work / "out", ignore_errors=True)
        music = collection(work / "music", n)
        raw = json.loads((ROOT / "pipeline_parameters.json").read_text())
        raw["paths"] = {"input_dir": str(music), "output_dir": str(work / "out")}
        params = work / "params.json"
        params.write_text(json.dumps(raw, indent=2))
        for script in ("build_dataset.py", "process_dataset.py", "train_crnn.py"):
            seconds, mb = measured([sys.executable, script, "--params", str(params),
                                    "--quiet"])
            print(f"{n} tracks, {script}: {seconds:.1f} s, peak RSS {mb:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
