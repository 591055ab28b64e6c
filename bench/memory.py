#!/usr/bin/env python3
"""Peak memory (RSS) of building and labelling one long track, per track length.

Tracks: 44.1 kHz stereo MP3s of 1, 10, 60 and 180 minutes, made by repeating gtzan-mini
clips (written block by block once, to ``--work``). Each figure is the peak resident set
size of a new process (``ru_maxrss`` from ``wait4``), so imports, TensorFlow and the model
are included:

- baseline: the process that imports slapp, TensorFlow and loads the bundle, and stops;
- build: stage 1's per-track work (:func:`slapp.stages.build.prepare.prepare_track` and its features: decode, checks,
  profile, snippets, features) with the default parameters;
- predict: ``predict_track.py --quiet --model M track.mp3`` with the default-architecture
  CRNN bundle, and with a musicnn-msd bundle (``--musicnn``; up to 60 minutes: it labels
  about 35 snippets a second on 2 cores), plus a folder of five 3-minute tracks.

Goals (issue #17): predict <= 1 GB (CRNN) and <= 1.5 GB (musicnn) at any length; the
build of a 60-minute track <= 800 MB.

Usage: python bench/memory.py --model output/accuracy/framing/crnn/model-fold-0
       --musicnn output/accuracy/framing/musicnn/model-fold-0 [--minutes 1 10 60 180]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_track(data: Path, path: Path, minutes: float) -> Path:
    """A 44.1 kHz stereo MP3 of ``minutes``, written a clip at a time."""
    if path.exists():
        return path
    import numpy as np
    import soundfile as sf

    from slapp.dsp.audio import resample

    clips = sorted(data.rglob("*.mp3"))
    need = int(minutes * 60 * 44100)
    tmp = path.with_suffix(".part.mp3")
    with sf.SoundFile(str(tmp), "w", 44100, 2, format="MP3") as out:
        i = 0
        while need > 0:
            y, sr = sf.read(str(clips[i % len(clips)]), dtype="float32", always_2d=True)
            y = resample(y.mean(axis=1), orig_sr=sr, target_sr=44100)[:need]
            out.write(np.stack([y, 0.9 * y], axis=1))
            need -= len(y)
            i += 1
    os.replace(tmp, path)
    return path


def peak_mb(cmd: list[str]) -> float:
    """Peak RSS in MB of ``cmd`` run as a new process (fails loudly if it fails)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


BASELINE = ("import sys; from slapp.stages.train.bundle import load_bundle; "
            "from slapp.stages.label.predict import Predictor; load_bundle(sys.argv[1])")
BUILD = ("import sys; from slapp.params import params_from_dict; "
         "from slapp.stages.build.prepare import build_starts, prepare_track; "
         "p = params_from_dict({'paths': {'input_dir': '.'}}); "
         "t = prepare_track(sys.argv[1], p); t.features(build_starts(t, p, key='x'), p)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "output" / "accuracy" / "framing" /
                                               "crnn" / "model-fold-0"))
    parser.add_argument("--musicnn", default=None, help="a musicnn-msd bundle")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60, 180])
    parser.add_argument("--musicnn-max-minutes", type=float, default=60)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "slapp-memory"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    tracks = {m: make_track(Path(args.data), work / f"track_{m:g}min.mp3", m)
              for m in args.minutes}
    folder = work / "five"
    folder.mkdir(exist_ok=True)
    for i in range(5):
        make_track(Path(args.data), folder / f"three_{i}.mp3", 3)

    print(f"command: python bench/memory.py --model {args.model}"
          + (f" --musicnn {args.musicnn}" if args.musicnn else "")
          + " --minutes " + " ".join(f"{m:g}" for m in args.minutes))
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; peak RSS "
          "of a new process, MB")
    print(f"baseline (imports + TensorFlow + CRNN bundle loaded): "
          f"{peak_mb([py, '-c', BASELINE, args.model]):.0f}")
    if args.musicnn:
        print(f"baseline (imports + TensorFlow + musicnn bundle loaded): "
              f"{peak_mb([py, '-c', BASELINE, args.musicnn]):.0f}")
    print("| track (44.1 kHz stereo MP3) | build (one track) | predict, CRNN | "
          "predict, musicnn |")
    print("| --- | --- | --- | --- |")
    for minutes, track in tracks.items():
        build = peak_mb([py, "-c", BUILD, str(track)])
        crnn = peak_mb([py, "predict_track.py", "--quiet", "--model", args.model, str(track)])
        music = "-"
        if args.musicnn and minutes <= args.musicnn_max_minutes:
            music = f"{peak_mb([py, 'predict_track.py', '--quiet', '--model', args.musicnn, str(track)]):.0f}"
        print(f"| {minutes:g} min | {build:.0f} | {crnn:.0f} | {music} |", flush=True)
    if args.musicnn:
        five = peak_mb([py, "predict_track.py", "--quiet", "--model", args.musicnn,
                        str(folder)])
        crnn5 = peak_mb([py, "predict_track.py", "--quiet", "--model", args.model,
                         str(folder)])
        print(f"| folder of 5 x 3 min | - | {crnn5:.0f} | {five:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
