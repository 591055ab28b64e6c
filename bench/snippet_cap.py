#!/usr/bin/env python3
"""How many snippets a long track needs: labels and time per track at prediction caps.

Long tracks: 3-minute 44.1 kHz stereo MP3s, each six consecutive clips of one genre of
``--unheard`` (artists the bundles never heard), written once to ``--work``. Each bundle
labels them with ``predict_tracks`` (hop 2 s) keeping every snippet (0) and at most N
snippets spread evenly over the track (``--caps``): per cap, tracks right, labels changed
against every snippet, and seconds per track (model loaded, median of ``--repeat``).
The 30-second clips themselves are also labelled at each cap (at hop 2 s a clip has 14
snippets, so a cap of 14 or more keeps them all).

Usage: python bench/snippet_cap.py --model M [--model M2 ...] [--caps 0,30,20,12,8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_long_tracks(unheard: Path, folder: Path, clips_per_track: int = 6) -> list[Path]:
    """``<folder>/<genre>/long_NN.mp3``: ``clips_per_track`` clips of a genre end to end."""
    import numpy as np
    import soundfile as sf

    from slapp.dsp.audio import decode

    out = []
    for genre in sorted(p for p in unheard.iterdir() if p.is_dir()):
        clips = sorted(genre.glob("*.mp3"))
        for i in range(len(clips) // clips_per_track):
            path = folder / genre.name / f"long_{i:02d}.mp3"
            out.append(path)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            parts = [decode(c, sample_rate=44100).y[:30 * 44100]
                     for c in clips[i * clips_per_track:(i + 1) * clips_per_track]]
            mono = np.concatenate(parts)
            sf.write(str(path), np.stack([mono, 0.9 * mono], axis=1), 44100, format="MP3")
    return out


def label(bundle, paths: list[Path], cap: int) -> tuple[dict[str, str], float]:
    """{path: label} and the wall seconds of one ``predict_tracks`` run."""
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    start = time.perf_counter()
    report = predict_tracks([str(p) for p in paths], bundle=bundle,
                            options=PredictOptions(max_snippets=cap), progress=False)
    seconds = time.perf_counter() - start
    assert not report.failed, report.summary()
    return {r.path: r.label for r in report.results}, seconds


def right(labels: dict[str, str]) -> int:
    return sum(Path(p).parent.name == lab for p, lab in labels.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--unheard", default=str(ROOT.parent / "shared" / "data" /
                                                 "gtzan-other-artists"))
    parser.add_argument("--caps", default="0,30,20,12,8")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "slapp-bench-long"))
    args = parser.parse_args()

    from slapp.stages.train.bundle import load_bundle

    caps = [int(c) for c in args.caps.split(",")]
    unheard = Path(args.unheard)
    long_tracks = make_long_tracks(unheard, Path(args.work))
    clips = sorted(unheard.rglob("*.mp3"))
    print(f"command: python bench/snippet_cap.py {' '.join('--model ' + m for m in args.model)}"
          f" --caps {args.caps} --repeat {args.repeat}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, python "
          f"{platform.python_version()}; {len(long_tracks)} tracks of 3 min (6 clips of one "
          f"genre of {unheard.name}: artists not heard in training), {len(clips)} clips of 30 s")
    print("| bundle | cap | 3-min tracks right | labels changed vs every snippet | "
          "s per 3-min track | 30-s clips right |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in args.model:
        bundle = load_bundle(model)
        label(bundle, long_tracks[:1], 0)  # tracing is not the figure
        full = None
        for cap in caps:
            runs = [label(bundle, long_tracks, cap) for _ in range(args.repeat)]
            labels, seconds = runs[0][0], statistics.median(s for _, s in runs)
            full = labels if full is None else full
            changed = sum(labels[p] != full[p] for p in labels)
            short, _ = label(bundle, clips, cap)
            print(f"| {bundle.params.model.backbone} | {cap or 'all'} | {right(labels)}/"
                  f"{len(labels)} | {changed} | {seconds / len(labels):.3f} | "
                  f"{right(short)}/{len(short)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
