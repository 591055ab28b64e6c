#!/usr/bin/env python3
"""Time to first screen of ``predict_track.py --report`` pages in headless Chromium.

Writes pages of N synthetic results (10 classes, 90-snippet timelines, as a 3-minute track
at the default hop gives) with :func:`slapp.stages.deliver.page.write_page`, then times Debian's
``chromium --headless --screenshot`` of each (the wall time of the whole command: start,
parse, script, layout, paint, PNG). The 10-track page is the baseline measured in the same
run; what grows beyond it is the page's own cost.

Usage: python bench/page_speed.py [--tracks 10 2000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--window-size=1280,900"]


def fake_report(n: int, folder: Path):
    import numpy as np

    from slapp.stages.label.outputs import PredictReport, TrackResult

    classes = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
               "reggae", "rock"]
    rng = np.random.default_rng(0)
    results = []
    for i in range(n):
        probs = rng.dirichlet(np.ones(10) * 0.5, size=90)
        total = probs.sum(axis=0) / 90
        best = int(total.argmax())
        r = TrackResult(path=str(folder / "music" / classes[i % 10] / f"track{i:05d}.mp3"),
                        label=classes[best], confidence=float(total[best]),
                        scores={c: float(s) for c, s in zip(classes, total)}, seconds=180.0,
                        snippets=90, notes=["loudness -44 dBFS is outside the training "
                                            "range"] if i % 7 == 0 else [])
        r.timeline = [{"start": 2.0 * k, "label": classes[int(row.argmax())],
                       "scores": {c: float(v) for c, v in zip(classes, row)}}
                      for k, row in enumerate(probs)]
        results.append(r)
    return PredictReport(results=results, classes=classes, bundle=folder / "model")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[10, 2000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from slapp.stages.deliver.page import write_page

    work = Path(tempfile.mkdtemp(prefix="slapp-page-"))
    print(f"command: python bench/page_speed.py --tracks "
          f"{' '.join(map(str, args.tracks))} --repeat {args.repeat}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"{subprocess.run(['chromium', '--version'], capture_output=True, text=True).stdout.strip()}")
    base = None
    for n in args.tracks:
        page = work / f"labels-{n}.html"
        write_page(page, fake_report(n, work))
        times = []
        for i in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(CHROMIUM + [f"--user-data-dir={work / f'profile-{n}-{i}'}",
                                       f"--screenshot={work / f'shot-{n}.png'}",
                                       page.as_uri()], capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        base = base or t
        print(f"{n:6d} tracks: page {page.stat().st_size / 1e6:6.2f} MB, first screen "
              f"{t:5.2f} s (median of {args.repeat}), {t / base:4.2f} x the "
              f"{args.tracks[0]}-track page")
    print(f"screenshots: {work}/shot-*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
