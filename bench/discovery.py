#!/usr/bin/env python3
"""Finding the tracks of a big collection: time and memory of the build's discovery walk
and of reading every track's artist tag.

Makes N symbolic links to the real clips of gtzan-mini (10 classes, N/10 each) under a
temp folder, then times, in a fresh process each, ``find_tracks`` alone and
``find_tracks`` + the artist tags (:func:`slapp.store.split_policy.collection_artists`), with
the peak RSS of each process. A baseline in the same run: ``os.walk`` over the same tree
with nothing else.

Usage: python bench/discovery.py [--tracks 100000] [--data ../shared/data/gtzan-mini]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOBS = {
    "os.walk only (baseline)": "import os,sys; sum(len(f) for _, _, f in os.walk(sys.argv[1]))",
    "find_tracks": "import sys; from slapp.store.discovery import find_tracks; "
                   "find_tracks(sys.argv[1])",
    "find_tracks + artist tags": "import sys; from slapp.store.discovery import find_tracks; "
                                 "from slapp.store.split_policy import collection_artists; "
                                 "collection_artists(find_tracks(sys.argv[1]).files, None)",
}


def run(code: str, folder: Path) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {code}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    args = parser.parse_args()
    sources = sorted(Path(args.data).rglob("*.mp3"))
    folder = Path(tempfile.mkdtemp(prefix="slapp-discovery-"))
    for i in range(args.tracks):
        src = sources[i % len(sources)]
        target = folder / src.parent.name / f"{i:06d}_{src.name}"
        target.parent.mkdir(exist_ok=True)
        target.symlink_to(src.resolve())
    print(f"command: python bench/discovery.py --tracks {args.tracks}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"{args.tracks} links to {len(sources)} clips in {folder}")
    for name, code in JOBS.items():
        seconds, peak = run(code, folder)
        print(f"{name:28s} {seconds:7.2f} s   peak RSS {peak:6.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
