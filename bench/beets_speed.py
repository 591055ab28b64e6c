#!/usr/bin/env python3
"""`beet slapp` against `predict_track.py` on the same files (issue 35: within 1.2x).

Makes ``--items`` symbolic links to gtzan-mini's clips (10 per clip for 1,000) in a work
folder, imports them into a fresh beets library (``beet import -A``, no copy, no network),
then times, each as a new process: ``predict_track.py --quiet --model M FOLDER`` and
``beet slapp`` (labels every item, writes the tags: the links' targets are copied first so
the shared data is never written), and a second ``beet slapp`` (nothing to do).

Usage: python bench/beets_speed.py --model /tmp/slapp-lean/out/model [--items 1000]
       [--work /tmp/slapp-beets]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(cmd[:3])}: exit {done.returncode}: {done.stderr[-500:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slapp-beets"))
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    shutil.rmtree(args.work, ignore_errors=True)
    music, clips = args.work / "music", args.work / "clips"
    music.mkdir(parents=True)
    clips.mkdir()
    sources = sorted(DATA.rglob("*.mp3"))
    for i, src in enumerate(sources):  # own copies: beet slapp writes tags into them
        shutil.copy(src, clips / f"{i:03d}.mp3")
    copies = sorted(clips.iterdir())
    for i in range(args.items):
        os.symlink(copies[i % len(copies)], music / f"{i:05d}.mp3")
    home = args.work / "beets"
    home.mkdir()
    (home / "config.yaml").write_text(
        f"directory: {args.work / 'lib'}\nlibrary: {args.work / 'lib.db'}\n"
        "import:\n  copy: no\n  write: yes\n  quiet: yes\n"
        f"plugins: slapp\nslapp:\n  model: {args.model}\n  min_confidence: 0.0\n")
    env = {**os.environ, "BEETSDIR": str(home), "PYTHONPATH": str(ROOT)}
    beet = str(Path(sys.executable).parent / "beet")
    print(f"beet import -A ({args.items} links): "
          f"{timed([beet, 'import', '-A', str(music)], env):.1f} s")
    predict = timed([sys.executable, "predict_track.py", "--quiet", "--model",
                     str(args.model), str(music)], env)
    slapp = timed([beet, "slapp"], env)
    again = timed([beet, "slapp"], env)
    print(f"predict_track.py on the {args.items} files: {predict:.1f} s")
    print(f"beet slapp on the {args.items} items (labels, fields, tags written): "
          f"{slapp:.1f} s = {slapp / predict:.2f}x predict_track.py (goal <= 1.2x)")
    print(f"beet slapp again (nothing to do): {again:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
