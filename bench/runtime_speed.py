#!/usr/bin/env python3
"""The one runtime (issue 43): each backend beside onnxruntime fp32, in the same run, on this
machine. Every figure is printed with the CPU's bf16 capability (OpenVINO's query).

1. **network alone**: one 3-minute track's snippets (hop 2 s), per backend and batch.
2. **per track through the script**: ``predict_track.py --quiet --engine E`` on a folder of
   ``--tracks`` 3-minute 44.1 kHz stereo 192 kbps MP3s, minus the same on as many 3-second
   ones (start-up and bundle loading cancel out), divided by ``--tracks``; median of
   ``--repeat``. Beside it, :func:`predict_tracks` in this process on the same folder.
3. **cold start**: one 3-minute track, a new process: wall time (median of 3), peak RSS.
4. **stage 2**: the embedding of every cached gtzan-mini track (``embed_cached_tracks``,
   the executor's worker per core, each one thread), into a fresh folder, per backend.
5. **labels**: every backend on gtzan-other-artists (120 clips never heard in training):
   labels that differ from onnxruntime fp32, the largest difference of a track's scores and
   of a snippet's probabilities, and how many tracks were re-scored (bf16 near-ties);
   ``--emulated-bf16``: bf16's numbers (and the re-scoring) where the CPU has no bf16.

Usage: python bench/runtime_speed.py [--work /tmp/slapp-runtime] [--bundle DIR]
       [--output BUILD ...] [--tracks 5] [--repeat 3] [--skip ...]
(``--bundle``: an existing default bundle, else one made in --work on gtzan-mini;
``--output``: the builds whose stage 2 is timed, e.g. gtzan-mini's and the demo's.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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


def train_bundle(work: Path) -> tuple[Path, Path]:
    """The default bundle on gtzan-mini, made once in ``work``: ``(bundle, output dir)``."""
    params = work / "params.json"
    raw = json.loads((ROOT / "pipeline_parameters.json").read_text())
    raw["paths"] = {"input_dir": str(DATA / "gtzan-mini"), "output_dir": str(work / "out")}
    params.write_text(json.dumps(raw, indent=2))
    if not (work / "out" / "model" / "bundle.json").exists():
        for script in ("build_dataset.py", "process_dataset.py", "train_crnn.py"):
            subprocess.run([sys.executable, script, "--params", str(params), "--quiet"],
                           cwd=ROOT, check=True)
    return work / "out" / "model", work / "out"


def make_tracks(folder: Path, n: int, seconds: float) -> Path:
    """``folder`` of ``n`` 44.1 kHz stereo 192 kbps MP3s of ``seconds`` each, of consecutive
    gtzan-mini clips (pydub encodes them at the bitrate)."""
    import numpy as np
    import soundfile as sf

    from slapp.dsp.audio import encode_mp3, resample

    folder.mkdir(parents=True, exist_ok=True)
    clips = sorted((DATA / "gtzan-mini").rglob("*.mp3"))
    for i in range(n):
        path = folder / f"track_{i:02d}.mp3"
        if path.exists():
            continue
        parts, need, k = [], int(seconds * 44100), i * 7
        while sum(len(p) for p in parts) < need:
            y, sr = sf.read(str(clips[k % len(clips)]), dtype="float32", always_2d=True)
            parts.append(resample(y.mean(axis=1), orig_sr=sr, target_sr=44100)[:30 * 44100])
            k += 1
        encode_mp3(path, np.concatenate(parts)[:need], 44100, bitrate="192k", channels=2)
    return folder


def network_alone(bundle: Path, track: Path, engines: list[str]) -> dict:
    """Seconds for the network alone on one track's snippets, per backend and batch."""
    from slapp.models.runtime import Network, resolve
    from slapp.stages.label.predict import Predictor
    from slapp.stages.train.bundle import load_bundle

    predictor = Predictor(load_bundle(bundle, engine="onnxruntime"))
    prepared = predictor.prepare(track)
    x = predictor.model_input(prepared.track, prepared.starts)[0]
    out = {"snippets": len(x)}
    for engine in engines:
        for batch in (1, 2, 4, 8):
            net = Network(bundle / "model.onnx", resolve(engine), batch=batch)
            net(x[:batch])
            times = []
            for _ in range(3):
                start = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - start)
            out[f"{resolve(engine).name}, batch {batch}"] = min(times)
    return out


def per_track(bundle: Path, long: Path, short: Path, n: int, repeat: int, engine: str
              ) -> tuple[float, float]:
    """``(through predict_track.py, in this process)`` seconds per 3-minute track."""
    from slapp.stages.label.predict import PredictOptions, predict_tracks
    from slapp.stages.train.bundle import load_bundle

    def script(folder):
        return measured([sys.executable, "predict_track.py", "--quiet", "--engine", engine,
                         "--model", str(bundle), str(folder)])[0]

    through = statistics.median((script(long) - script(short)) / n for _ in range(repeat))
    b = load_bundle(bundle, engine=engine)
    predict_tracks([str(short)], b, PredictOptions(), progress=False)  # first calls
    inside = []
    for _ in range(repeat):
        start = time.perf_counter()
        predict_tracks([str(long)], b, PredictOptions(), progress=False)
        inside.append((time.perf_counter() - start) / n)
    return through, statistics.median(inside)


def stage2(output: Path, work: Path, engine: str) -> tuple[float, int]:
    """Seconds to embed every cached track of ``output`` into a fresh folder on ``engine``."""
    from slapp.params import load_params
    from slapp.stages.process.embed import embed_cached_tracks
    from slapp.store.layout import BuildLayout

    fresh = work / f"stage2-{engine}"
    shutil.rmtree(fresh, ignore_errors=True)
    (fresh / "embeddings" / "musicnn-msd").mkdir(parents=True)
    os.symlink((output / "cache").resolve(), fresh / "cache")
    shutil.copy(output / "embeddings" / "musicnn-msd" / "backbone.onnx",
                fresh / "embeddings" / "musicnn-msd" / "backbone.onnx")
    raw = json.loads((ROOT / "pipeline_parameters.json").read_text())
    raw["paths"] = {"input_dir": str(DATA / "gtzan-mini"), "output_dir": str(fresh)}
    raw["engine"] = {"runtime": engine}
    (work / "stage2.json").write_text(json.dumps(raw))
    params = load_params(work / "stage2.json")
    keys = [str(p.relative_to(output / "cache"))[:-4] for p in (output / "cache").rglob("*.npz")]
    layout = BuildLayout(fresh)
    layout.tmp_dir.mkdir(parents=True, exist_ok=True)
    for key in keys:
        layout.embedding_file("musicnn-msd", key).parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    embed_cached_tracks(params, layout, keys, progress=False)
    return time.perf_counter() - start, len(keys)


def labels(bundle: Path, engine: str, reference: list | None) -> tuple[dict, list]:
    """``engine`` on gtzan-other-artists against the reference's results."""
    import numpy as np

    from slapp.stages.label.predict import PredictOptions, predict_tracks
    from slapp.stages.train.bundle import load_bundle

    folder = DATA / "gtzan-other-artists"
    if engine == "emulated-bf16":  # bf16's numbers on a CPU without it (5x slower)
        from slapp.models.engine_check import open_checked

        loaded = load_bundle(bundle, engine="onnxruntime")
        loaded._scorers = {None: open_checked(bundle / "model.onnx", bundle / "check.npz",
                                              "openvino-bf16", allow_emulated=True)}
        loaded.engine = "openvino bf16 (emulated)"
    else:
        loaded = load_bundle(bundle, engine=engine)
    results = predict_tracks([str(folder)], loaded, PredictOptions(timeline=True),
                             progress=False).results
    if reference is None:
        return {}, results

    def rows(r):
        return np.array([list(t["scores"].values()) for t in r.timeline])

    pairs = list(zip(results, reference))
    return {"tracks": len(results),
            "labels that differ": sum(a.label != b.label for a, b in pairs),
            "re-scored (near-ties)": sum(a.rescored for a in results),
            "largest track-score difference": max(max(abs(a.scores[c] - b.scores[c])
                                                      for c in a.scores) for a, b in pairs),
            "largest snippet-probability difference (rounded to 1e-6)":
                max(float(np.max(np.abs(rows(a) - rows(b)))) for a, b in pairs)}, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/slapp-runtime"))
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--output", type=Path, nargs="*", default=[],
                        help="builds whose stage 2 is timed (default: the bundle's)")
    parser.add_argument("--tracks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--emulated-bf16", action="store_true",
                        help="labels: also bf16 emulated by OpenVINO on a CPU without it")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["network", "speed", "cold", "stage2", "labels"])
    args = parser.parse_args()
    from slapp.models import runtime

    core = runtime.openvino_core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") if core else ["no OpenVINO"]
    print(f"# {' '.join(sys.argv)}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}; OpenVINO CPU "
          f"capabilities: {', '.join(caps)}; auto = {runtime.resolve('auto').name}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.bundle:
        bundle, outputs = args.bundle, args.output
    else:
        bundle, output = train_bundle(args.work)
        outputs = args.output or [output]
    engines = ["onnxruntime"] + (["openvino-f32"] if core else [])
    if core and runtime.native_bf16():
        engines.append("openvino-bf16")
    long = make_tracks(args.work / "long", args.tracks, 180.0)
    short = make_tracks(args.work / "short", args.tracks, 3.0)
    first = next(long.glob("*.mp3"))
    if "network" not in args.skip:
        for name, value in network_alone(bundle, first, engines).items():
            print(f"network alone, {name}: {value if name == 'snippets' else f'{value:.3f} s'}")
    if "speed" not in args.skip:
        for engine in engines:
            through, inside = per_track(bundle, long, short, args.tracks, args.repeat, engine)
            print(f"per 3-minute 44.1 kHz stereo MP3, {engine}: {through:.3f} s through "
                  f"predict_track.py, {inside:.3f} s in-process (median of {args.repeat})")
    if "cold" not in args.skip:
        for engine in engines:
            runs = [measured([sys.executable, "predict_track.py", "--quiet", "--engine",
                              engine, "--model", str(bundle), str(first)]) for _ in range(3)]
            print(f"cold start, one 3-minute track, {engine}: "
                  f"{statistics.median(r[0] for r in runs):.2f} s, peak RSS "
                  f"{max(r[1] for r in runs):.0f} MB")
    for output in outputs if "stage2" not in args.skip else []:
        for engine in engines:
            seconds, n = stage2(output, args.work, engine if engine != "openvino-bf16"
                                else "openvino")
            print(f"stage 2, embedding {n} cached tracks of {output}, {engine} "
                  f"(at full precision): {seconds:.1f} s")
    if "labels" not in args.skip:
        _, reference = labels(bundle, "onnxruntime", None)
        more = ["emulated-bf16"] if args.emulated_bf16 and "openvino-bf16" not in engines else []
        for engine in engines[1:] + more:
            for name, value in labels(bundle, engine, reference)[0].items():
                print(f"gtzan-other-artists, {engine} vs onnxruntime fp32: {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
