#!/usr/bin/env python3
"""Benchmark predict_track.py against the model's own cost, on 3-minute tracks.

Tracks: 3-minute 44.1 kHz stereo MP3s made by concatenating gtzan-mini clips (as users'
files are), written once to a work folder.

model-only floors : the bundle's network on each track's snippet batch (hop 1 s), the
        features computed beforehand — nothing else. Several ways of calling it:
        eager ``model(x)`` per batch of 64 (slapp before #15), ``model.predict``, and
        :class:`slapp.models.inference.Scorer` (one traced function, fixed batch of 64) plain,
        with XLA (``jit``) and with oneDNN bfloat16 (run in a subprocess: the option is
        process-wide).
slapp : ``slapp.stages.label.predict.predict_tracks`` on the folder with the loaded bundle (what
        predict_track.py runs after loading): decode, checks, levelling, features,
        network, aggregation, the table; the next track is prepared in a background
        thread while the network runs.
stages : one track's decode (+ resampling) and features, alone.
cold start : ``predict_track.py --quiet --model M one.mp3`` as a new process (median of 3),
        and where its time goes (imports, bundle load, first track).

Each figure is the median of ``--repeat`` runs in this process, alternating. Prints the
ratios slapp / floor (goal <= 1.15), the per-track time (goal <= 1.0 s on 2 cores), the
cold start (goal <= 6 s), and how far bfloat16 moves the probabilities and labels.

Usage: python bench/predict_speed.py --model output/accuracy/framing/crnn/model-fold-0
       [--tracks 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(ROOT / "bench"))


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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def inputs_of(predictor, tracks):
    """Every snippet's model input (the predictor's hop) of each track."""
    out = []
    for path in tracks:
        prepared = predictor.prepare(path)
        out.append(predictor.model_input(prepared.track, prepared.starts)[0])
    return out


def eager(model, x, batch=64):
    import numpy as np

    for i in range(0, len(x), batch):
        np.asarray(model(x[i:i + batch], training=False))


def floors(bundle, xs, repeat: int) -> dict[str, float]:
    """Seconds for all tracks per way of calling the network (median of ``repeat``)."""
    from keras_options import option_scorer
    from slapp.models.inference import Scorer

    ways = {"eager model(x), batch 64": lambda x: eager(bundle.model, x),
            "model.predict": lambda x: bundle.model.predict(x, batch_size=64, verbose=0)}
    plain, jit = Scorer(bundle.model), option_scorer(bundle.model, jit=True)
    ways[f"Scorer (traced once, batch {plain.batch_size})"] = plain
    ways["Scorer + XLA"] = jit
    for fn in ways.values():  # tracing and compiling are not the floor
        fn(xs[0])
    times = {name: [] for name in ways}
    for _ in range(repeat):
        for name, fn in ways.items():
            times[name].append(timed(lambda: [fn(x) for x in xs]))
    return {name: statistics.median(t) for name, t in times.items()}


def bf16_child(model_dir: str, tracks: list[str], repeat: int, out: str) -> None:
    """In its own process: the bfloat16 floor, and its probabilities beside float32's."""
    import numpy as np

    from keras_options import option_scorer
    from slapp.stages.train.bundle import load_bundle
    from slapp.models.inference import Scorer
    from slapp.stages.label.predict import Predictor

    bundle = load_bundle(model_dir)
    predictor = Predictor(bundle)
    xs = inputs_of(predictor, [Path(t) for t in tracks])
    full = [Scorer(bundle.model)(x) for x in xs]
    scorer = option_scorer(bundle.model, bfloat16=True)
    scorer(xs[0])
    seconds = statistics.median(timed(lambda: [scorer(x) for x in xs]) for _ in range(repeat))
    half = [scorer(x) for x in xs]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(full, half))
    snippets = sum(int((a.argmax(1) != b.argmax(1)).sum()) for a, b in zip(full, half))
    tracks_changed = sum(int(a.sum(0).argmax() != b.sum(0).argmax()) for a, b in zip(full, half))
    Path(out).write_text(json.dumps({"seconds": seconds, "max_diff": diff,
                                     "snippets_changed": snippets,
                                     "snippets": sum(len(a) for a in full),
                                     "tracks_changed": tracks_changed}))


def slapp_run(bundle, paths: list[str]) -> float:
    from slapp.stages.label.predict import predict_tracks

    start = time.perf_counter()
    report = predict_tracks(paths, bundle=bundle, progress=False)
    report.table()
    assert not report.failed, report.summary()
    return time.perf_counter() - start


def stages(bundle, path: Path, repeat: int) -> dict[str, float]:
    from slapp.dsp.audio import decode as decode_file
    from slapp.dsp.slicing import track_starts
    from slapp.stages.build.prepare import prepare_track

    p = bundle.params
    decode = statistics.median(timed(lambda: decode_file(path, sample_rate=p.audio.sample_rate))
                               for _ in range(repeat))
    track = prepare_track(path, p)
    starts = track_starts(len(track.y), snippet_samples=p.snippet_samples,
                          hop_samples=p.audio.sample_rate)
    feats = statistics.median(timed(lambda: track.features(starts, p))
                              for _ in range(repeat))
    return {"decode + resample": decode, "features (one spectrogram)": feats}


COLD = r"""
import time, sys
t0 = time.perf_counter()
from slapp.stages.label.predict import predict_tracks
from slapp.stages.train.bundle import load_bundle
t1 = time.perf_counter()
bundle = load_bundle(sys.argv[1])
t2 = time.perf_counter()
predict_tracks([sys.argv[2]], bundle=bundle, progress=False)
t3 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f}")
"""


def cold_start(model_dir: str, track: Path) -> tuple[float, list[float]]:
    """Median wall of the script as a new process, and (imports, load, first track)."""
    walls, parts = [], []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "predict_track.py"), "--quiet", "--model",
                        model_dir, str(track)], check=True, capture_output=True, cwd=ROOT)
        walls.append(time.perf_counter() - start)
        out = subprocess.run([sys.executable, "-c", COLD, model_dir, str(track)], check=True,
                             capture_output=True, text=True, cwd=ROOT).stdout
        parts.append([float(v) for v in out.split()])
    return statistics.median(walls), [statistics.median(p[i] for p in parts) for i in range(3)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "output" / "accuracy" / "framing" /
                                               "crnn" / "model-fold-0"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "slapp-bench-3min"))
    parser.add_argument("--bf16-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bf16_child:
        bf16_child(args.model, json.loads(args.bf16_child[0]), args.repeat,
                   args.bf16_child[1])
        return 0

    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import Predictor

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tracks = make_tracks(Path(args.data), work, args.tracks)
    n = len(tracks)
    bundle = load_bundle(args.model)
    xs = inputs_of(Predictor(bundle), tracks)
    slapp_run(bundle, [str(tracks[0])])  # warm-up
    floor = floors(bundle, xs, args.repeat)
    slapp_s = statistics.median(slapp_run(bundle, [str(t) for t in tracks]) for _ in range(args.repeat))
    one = stages(bundle, tracks[0], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bf16.json"
        subprocess.run([sys.executable, __file__, "--model", args.model, "--repeat",
                        str(args.repeat), "--bf16-child", json.dumps([str(t) for t in tracks]),
                        str(out)], check=True, cwd=ROOT)
        bf16 = json.loads(out.read_text())
    cold, (imports, load, first) = cold_start(args.model, tracks[1])

    print(f"command: python bench/predict_speed.py --model {args.model} --tracks {n} "
          f"--repeat {args.repeat}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
          f"python {platform.python_version()}")
    print(f"tracks: {n} x 180 s, 44.1 kHz stereo MP3, {len(xs[0])} snippets each (hop "
          f"{Predictor(bundle).options.hop_seconds:g} s, predict's default); "
          f"bundle {args.model} ({bundle.model.count_params()} parameters)")
    print("model-only floors (network on the track's snippets, features ready), per track:")
    for name, seconds in floor.items():
        print(f"  {name:34s} {seconds / n:.3f} s")
    print(f"  {'Scorer + bfloat16 (oneDNN)':34s} {bf16['seconds'] / n:.3f} s; vs float32: "
          f"max |Δp| {bf16['max_diff']:.4f}, {bf16['snippets_changed']}/{bf16['snippets']} "
          f"snippet labels and {bf16['tracks_changed']}/{n} track labels changed")
    print("one track's stages alone: " + ", ".join(f"{k} {v:.3f} s" for k, v in one.items()))
    best = [v for k, v in floor.items() if k.startswith("Scorer (")][0]
    print(f"slapp predict_tracks, model loaded: {slapp_s / n:.3f} s per track "
          f"({n / slapp_s:.2f} tracks/s; goal <= 1.0 s)")
    print(f"ratio slapp / model-only floor (Scorer): {slapp_s / best:.2f} (goal <= 1.15)")
    print(f"cold start, predict_track.py on one track as a new process: {cold:.1f} s "
          f"(goal <= 6 s): imports {imports:.1f} s, bundle load {load:.1f} s, "
          f"first track {first:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
