#!/usr/bin/env python3
"""The collection audit at scale: time and peak memory of the build and of the audit.

A collection of ``--tracks`` symbolic links to the clips of gtzan-mini and
gtzan-other-artists (never copies of the files), one class folder per genre, made in
``--work``. Every clip appears about ``tracks / 220`` times, so every one of them is an
exact duplicate of the others: the duplicate search's worst case (groups everywhere),
not a realistic collection. ``build_dataset.py`` then ``audit_dataset.py`` run as new
processes; for each, the wall time and the peak resident memory (``ru_maxrss``).

Goal (issue 24): an audit of 10,000 tracks within the build's order of time and within
2 GB of memory.

Usage: python bench/audit_scale.py [--tracks 1000] [--data ../shared/data]
       [--work /tmp/slapp-audit-scale]
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

ROOT = Path(__file__).resolve().parents[1]


def collection(data: Path, music: Path, n: int) -> None:
    clips = sorted((data / "gtzan-mini").rglob("*.mp3")) + sorted(
        (data / "gtzan-other-artists").rglob("*.mp3"))
    for i in range(n):
        src = clips[i % len(clips)]
        dst = music / src.parent.name / f"{i // len(clips):03d}_{src.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src.resolve())


def measured(script: str, params: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and printed summary of ``script --params P --quiet``."""
    log = params.parent / f"{script}.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / script), "--params", str(params),
                                 "--quiet"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{script} failed: {log.read_text()[-2000:]}")
    return time.monotonic() - started, usage.ru_maxrss / 1024, log.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default="/tmp/slapp-audit-scale")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    collection(Path(args.data), work / "music", args.tracks)
    params = work / "params.json"
    params.write_text(json.dumps({"paths": {"input_dir": str(work / "music"),
                                            "output_dir": str(work / "out")}}))
    print(f"command: python bench/audit_scale.py --tracks {args.tracks}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"{args.tracks} tracks (symbolic links to 220 clips of 15-30 s)")
    rows = []
    for script in ("build_dataset.py", "audit_dataset.py"):
        seconds, peak, out = measured(script, params)
        rows.append((script, seconds, peak))
        print(f"{script}: {seconds:.0f} s, peak {peak:.0f} MB", flush=True)
    seconds, peak, out = measured("audit_dataset.py", params)
    print(f"audit_dataset.py again (embeddings cached): {seconds:.0f} s, peak {peak:.0f} MB")
    print(f"audit / build time: {rows[1][1] / rows[0][1]:.2f}")
    print("--- the audit's summary (first lines) ---")
    print("\n".join(out.splitlines()[:6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
