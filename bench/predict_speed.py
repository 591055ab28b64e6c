#!/usr/bin/env python3
"""Benchmark predict_track.py's labelling against a bare floor, on 3-minute tracks.

Tracks: 3-minute 44.1 kHz stereo MP3s made by concatenating gtzan-mini clips (as users'
files are), written once to a temporary folder.

floor : with the model loaded, per track: decode (soundfile) + mono + resample to the
        bundle's rate, log-mel of every snippet (hop 1 s) in one call, normalise, one
        batched ``model.predict`` — nothing else (no checks, no aggregation, no output).
slapp : ``slapp.predict.predict_tracks`` on the same folder with the same loaded bundle
        (what predict_track.py runs after loading the model): checks, snippet batches,
        background decoding of the next track, aggregation, the result table.

Both run in the same process, alternating, each timed ``--repeat`` times (median). Prints
tracks/s, the ratio slapp/floor (target >= 0.8) and the latency of one 3-minute track
after the model is loaded (goal < 1 s on 2 cores).

Needs a model bundle: train one first (e.g. the gtzan-mini parameters in
bench/params_gtzan.json: build_dataset.py, process_dataset.py, train_crnn.py with
``--params bench/params_gtzan.json``).

Usage: python bench/predict_speed.py [--model output/gtzan-mini/model] [--tracks 8]
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


def make_tracks(data: Path, folder: Path, n: int) -> list[Path]:
    """``n`` 3-minute 44.1 kHz stereo MP3s of 6 consecutive gtzan-mini clips each."""
    import numpy as np
    import soundfile as sf

    from slapp.audio import resample

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


def floor_run(bundle, tracks: list[Path]) -> float:
    import soundfile as sf

    from slapp.audio import resample
    from slapp.features import log_mel
    from slapp.normalization import apply
    from slapp.predict import track_starts
    from slapp.slicing import cut_snippets

    p, f = bundle.params, bundle.params.features
    rate = p.audio.sample_rate
    start = time.perf_counter()
    for path in tracks:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = resample(y.mean(axis=1), orig_sr=sr, target_sr=rate)
        starts = track_starts(len(y), snippet_samples=p.snippet_samples, hop_samples=rate)
        mel = log_mel(cut_snippets(y, starts, snippet_samples=p.snippet_samples),
                      sample_rate=rate, n_fft=f.n_fft, hop_length=f.hop_length,
                      n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax, reference=f.log_reference,
                      amin=f.log_amin)
        bundle.model.predict(apply(mel, bundle.stats), batch_size=64, verbose=0)
    return time.perf_counter() - start


def slapp_run(bundle, paths: list[str]) -> float:
    from slapp.predict import predict_tracks

    start = time.perf_counter()
    report = predict_tracks(paths, bundle=bundle, progress=False)
    report.table()
    assert not report.failed, report.summary()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "output" / "gtzan-mini" / "model"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "slapp-bench-3min"))
    args = parser.parse_args()

    from slapp.bundle import load_bundle

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tracks = make_tracks(Path(args.data), work, args.tracks)
    bundle = load_bundle(args.model)
    slapp_run(bundle, [str(tracks[0])]), floor_run(bundle, tracks[:1])  # warm-up
    times = {"floor": [], "slapp": []}
    for _ in range(args.repeat):
        times["floor"].append(floor_run(bundle, tracks))
        times["slapp"].append(slapp_run(bundle, [str(work)]))
    latency = statistics.median(slapp_run(bundle, [str(tracks[1])]) for _ in range(3))
    floor_s, slapp_s = statistics.median(times["floor"]), statistics.median(times["slapp"])
    n = len(tracks)
    print(f"command: python bench/predict_speed.py --model {args.model} --tracks {n} "
          f"--repeat {args.repeat}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
          f"python {platform.python_version()}")
    print(f"tracks: {n} x 180 s, 44.1 kHz stereo MP3; bundle {args.model} "
          f"({bundle.model.count_params()} parameters)")
    print(f"floor (decode + features + one predict per track): {n / floor_s:.2f} tracks/s "
          f"({floor_s:.2f} s)")
    print(f"slapp (predict_tracks, model loaded):              {n / slapp_s:.2f} tracks/s "
          f"({slapp_s:.2f} s)")
    print(f"ratio slapp/floor: {floor_s / slapp_s:.2f} (target >= 0.8)")
    print(f"latency of one 3-minute track, model loaded: {latency:.2f} s (goal < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
