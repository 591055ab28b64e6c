#!/usr/bin/env python3
"""The lean engine (issue 32): the bundle's ONNX copy on onnxruntime against today's Keras
path, in the same run, on this machine.

1. **bundle**: the default (musicnn-msd) trained on ``gtzan-mini`` with the four scripts
   (made once in ``--work``); wall time and peak RSS of stages 1-3 (each a new process,
   ``ru_maxrss`` from ``wait4``, the export child of stage 2 included).
2. **engine options**: the network alone on one 3-minute track's snippets (every snippet,
   hop 2 s): onnxruntime threads × batch × graph optimisation level, and one process per
   core (two single-thread sessions side by side).
3. **per track**: ``predict_tracks`` on a folder of 3-minute 44.1 kHz stereo MP3s, every
   snippet, ONNX vs Keras (and Keras at the old cap of 28), in this process, median of
   ``--repeat``.
4. **cold start**: ``predict_track.py --quiet --model M one.mp3`` as a new process, ONNX
   (default) and ``--engine keras``: wall time (median of 3) and peak RSS.
5. **memory**: peak RSS of ``predict_track.py`` on one track of each ``--minutes`` and on the
   folder.
6. **labels**: both engines on ``gtzan-other-artists`` (never heard in training): labels
   that differ, and the largest difference of a track's scores and of a snippet's
   probabilities.

Usage: python bench/lean_engine.py [--work /tmp/slapp-lean] [--tracks 8] [--repeat 3]
       [--minutes 1 60 180]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data"

MEASURE = r"""
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
      code)
"""


def measured(cmd: list[str]) -> tuple[float, float]:
    """``(seconds, peak RSS in MB)`` of ``cmd`` run as a new process (and its children)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.split()
    if out[2] != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited with {out[2]}")
    return float(out[0]), int(out[1]) / 1024


def train_bundle(work: Path) -> tuple[Path, dict]:
    """The default bundle on gtzan-mini; stage figures (measured when made now)."""
    params = work / "params.json"
    raw = json.loads((ROOT / "pipeline_parameters.json").read_text())
    raw["paths"] = {"input_dir": str(DATA / "gtzan-mini"), "output_dir": str(work / "out")}
    params.write_text(json.dumps(raw, indent=2))
    bundle = work / "out" / "model"
    figures = {}
    if not (bundle / "bundle.json").exists():
        for script in ("build_dataset.py", "process_dataset.py", "train_crnn.py"):
            figures[script] = measured([sys.executable, script, "--params", str(params),
                                        "--quiet"])
    return bundle, figures


def engine_options(bundle: Path, track: Path) -> dict:
    """Seconds for the network alone on one track's snippets per onnxruntime setting."""
    import numpy as np
    import onnxruntime as ort

    from slapp.models.portable import session_options
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import Predictor

    predictor = Predictor(load_bundle(bundle))
    prepared = predictor.prepare(track)
    x = predictor.model_input(prepared.track, prepared.starts)[0]
    out = {"snippets": len(x)}
    for level in ("basic", "all"):
        for threads in (1, 2):
            options = session_options(threads)
            if level == "basic":
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            session = ort.InferenceSession(str(bundle / "model.onnx"), options,
                                           providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            for batch in (1, 4, 8, 16, 32):
                def run():
                    for i in range(0, len(x), batch):
                        session.run(None, {name: np.ascontiguousarray(x[i:i + batch])})
                run()
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
                out[f"{level}, {threads} thread(s), batch {batch}"] = min(times)
    np.save(bundle.parent / "bench_x.npy", x)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", PER_CORE, str(bundle / "model.onnx"),
                               str(bundle.parent / "bench_x.npy")], cwd=ROOT)
             for _ in range(2)]
    for p in procs:
        p.wait()
    out["2 processes x 1 thread, batch 4 (the same snippets each; per track)"] = (
        time.perf_counter() - start) / 2
    return out


PER_CORE = r"""
import sys, numpy as np
from slapp.models.portable import OnnxScorer
x = np.load(sys.argv[2])
scorer = OnnxScorer(__import__("pathlib").Path(sys.argv[1]), threads=1)
scorer(x[:4])
scorer(x)
"""


def per_track(bundle: Path, folder: Path, n: int, repeat: int) -> dict:
    """Seconds per track of predict_tracks on ``folder``, per engine (median)."""
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    ways = {"onnx, every snippet": (load_bundle(bundle), PredictOptions()),
            "keras, every snippet": (load_bundle(bundle, engine="keras"), PredictOptions()),
            "keras, 28 snippets (the old default)": (load_bundle(bundle, engine="keras"),
                                                     PredictOptions(max_snippets=28))}
    paths = [str(folder)]
    for b, o in ways.values():  # tracing, first calls
        predict_tracks([str(next(folder.glob("*.mp3")))], b, o, progress=False)
    times = {name: [] for name in ways}
    for _ in range(repeat):
        for name, (b, o) in ways.items():
            start = time.perf_counter()
            predict_tracks(paths, b, o, progress=False)
            times[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(t) for name, t in times.items()}


def labels(bundle: Path) -> dict:
    """Both engines on gtzan-other-artists: how many labels differ, largest differences."""
    import numpy as np

    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    folder = DATA / "gtzan-other-artists"
    options = PredictOptions(timeline=True)
    a = predict_tracks([str(folder)], load_bundle(bundle), options, progress=False).results
    b = predict_tracks([str(folder)], load_bundle(bundle, engine="keras"), options,
                       progress=False).results
    track_diff = max(max(abs(x.scores[c] - y.scores[c]) for c in x.scores)
                     for x, y in zip(a, b))
    snippet_diff = max(float(np.max(np.abs(np.array([list(r["scores"].values())
                                                     for r in x.timeline])
                                           - np.array([list(r["scores"].values())
                                                       for r in y.timeline]))))
                       for x, y in zip(a, b))
    return {"tracks": len(a), "labels that differ": sum(x.label != y.label for x, y in zip(a, b)),
            "largest track-score difference (sum / snippets)": track_diff,
            "largest snippet-probability difference (rounded to 1e-6)": snippet_diff}


def make_tracks(data: Path, folder: Path, n: int) -> list[Path]:
    """``n`` 3-minute 44.1 kHz stereo MP3s of 6 consecutive gtzan-mini clips each."""
    import numpy as np
    import soundfile as sf

    from slapp.dsp.audio import resample

    clips = sorted(data.rglob("*.mp3"))
    out = []
    for i in range(n):
        path = folder / f"long_{i:02d}.mp3"
        out.append(path)
        if path.exists():
            continue
        parts = []
        for clip in clips[(i * 6) % len(clips):(i * 6) % len(clips) + 6]:
            y, sr = sf.read(str(clip), dtype="float32", always_2d=True)
            y = resample(y.mean(axis=1), orig_sr=sr, target_sr=44100)[:30 * 44100]
            parts.append(y)
        mono = np.concatenate(parts)
        stereo = np.stack([mono, 0.9 * mono], axis=1)
        sf.write(str(path), stereo, 44100, format="MP3")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/slapp-lean"))
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 60, 180])
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["options", "speed", "cold", "memory", "labels"])
    args = parser.parse_args()
    from memory import make_track

    print(f"# {' '.join(sys.argv)}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}")
    args.work.mkdir(parents=True, exist_ok=True)
    bundle, stages = train_bundle(args.work)
    for script, (seconds, mb) in stages.items():
        print(f"stage {script}: {seconds:.1f} s, peak RSS {mb:.0f} MB (gtzan-mini, 100 clips)")
    folder = args.work / "tracks"
    folder.mkdir(exist_ok=True)
    tracks = make_tracks(DATA / "gtzan-mini", folder, args.tracks)
    if "options" not in args.skip:
        for name, value in engine_options(bundle, tracks[0]).items():
            print(f"network alone, {name}: {value if name == 'snippets' else f'{value:.3f} s'}")
    if "speed" not in args.skip:
        for name, seconds in per_track(bundle, folder, len(tracks), args.repeat).items():
            print(f"per 3-minute track, {name}: {seconds:.3f} s")
    if "cold" not in args.skip:
        for engine in ("auto", "keras"):
            runs = [measured([sys.executable, "predict_track.py", "--quiet", "--engine", engine,
                              "--model", str(bundle), str(tracks[0])]) for _ in range(3)]
            print(f"cold start, one 3-minute track, engine {engine}: "
                  f"{statistics.median(r[0] for r in runs):.2f} s, peak RSS "
                  f"{max(r[1] for r in runs):.0f} MB")
    if "memory" not in args.skip:
        for minutes in args.minutes:
            track = make_track(DATA / "gtzan-mini", args.work / f"long_{minutes:g}.mp3", minutes)
            seconds, mb = measured([sys.executable, "predict_track.py", "--quiet", "--model",
                                    str(bundle), str(track)])
            print(f"peak RSS, one {minutes:g}-minute track: {mb:.0f} MB ({seconds:.1f} s)")
        seconds, mb = measured([sys.executable, "predict_track.py", "--quiet", "--model",
                                str(bundle), str(folder)])
        print(f"peak RSS, a folder of {len(tracks)} 3-minute tracks: {mb:.0f} MB "
              f"({seconds:.1f} s)")
    if "labels" not in args.skip:
        for name, value in labels(bundle).items():
            print(f"gtzan-other-artists, onnx vs keras: {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
