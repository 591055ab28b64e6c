#!/usr/bin/env python3
"""Benchmark build_dataset.py against a bare floor, and check that memory stays flat.

floor : the minimum work by the one-spectrogram-per-track method — decode each track
        (soundfile), one log-mel of the whole track (librosa), its 14 snippets cut in frame
        space; one process per core, nothing written, no bookkeeping.
build : ``build_dataset.py`` from scratch into an empty output folder.
original : (``--original``) the original SLAPP's method, reconstructed from its README:
        one process; per track pydub decodes the MP3 (ffmpeg), cuts 3 s snippets with
        1 s overlap and exports each as an MP3 file, then librosa loads each snippet
        file and computes its mel spectrogram (n_fft 2048, hop 512, 100 mels) in dB.

Both run as fresh processes (interpreter start and imports included) on the same tracks,
in the same run; each is repeated and the median wall time is used. Peak RSS is the
largest resident set of the main process and of any worker, read from getrusage.
Memory flatness: the build is also run on datasets of several sizes made of symlinks to
the same clips (nothing copied).

Usage: python bench/build_speed.py [--data ../shared/data/gtzan-mini] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _floor_task(path: str):
    import librosa
    import numpy as np
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != 22050:
        y = librosa.resample(y, orig_sr=sr, target_sr=22050)
    length, hop = 66150, 44100
    starts = np.arange(0, max(1, len(y) - length + 1), hop)
    starts = starts[np.unique(np.round(np.linspace(0, len(starts) - 1, min(14, len(starts)))
                                       ).astype(int))]
    power = librosa.feature.melspectrogram(y=np.pad(y, (0, max(0, length - len(y)))),
                                           sr=22050, n_fft=2048, hop_length=512, n_mels=100)
    db = librosa.power_to_db(power, ref=1.0, top_db=None)
    snippets = np.stack([db[:, s // 512:s // 512 + 130] for s in starts])
    return float(snippets.mean())


def child_original(data: str) -> dict:
    """The original SLAPP's method (see the module docstring), one process."""
    import librosa
    import numpy as np
    from imageio_ffmpeg import get_ffmpeg_exe
    from pydub import AudioSegment

    AudioSegment.converter = get_ffmpeg_exe()
    paths = sorted(str(p) for p in Path(data).rglob("*.mp3"))
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            # AudioSegment.from_mp3 as the original, without ffprobe (not in the wheel):
            # ffmpeg decodes to WAV, pydub reads it
            wav = subprocess.run([get_ffmpeg_exe(), "-loglevel", "error", "-i", path, "-f",
                                  "wav", "-"], capture_output=True, check=True).stdout
            song = AudioSegment.from_wav(io.BytesIO(wav))
            files = []
            for k, start in enumerate(range(0, max(1, len(song) - 3000 + 1), 2000)):
                name = os.path.join(tmp, f"{i}_{k}.mp3")
                song[start:start + 3000].export(name, format="mp3")
                files.append(name)
            for name in files[:14]:
                y, _ = librosa.load(name, sr=22050)
                power = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048,
                                                       hop_length=512, n_mels=100)
                librosa.power_to_db(power, ref=np.max)
    return {"tracks": len(paths)}


def _floor_worker_init():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def child_floor(data: str, workers: int) -> dict:
    import multiprocessing as mp

    import librosa
    import numpy as np

    librosa.feature.melspectrogram(y=np.zeros(4096, np.float32), sr=22050)  # import once
    paths = sorted(str(p) for p in Path(data).rglob("*.mp3"))
    with mp.get_context("fork").Pool(workers, initializer=_floor_worker_init) as pool:
        list(pool.imap_unordered(_floor_task, paths, chunksize=1))
    return {"tracks": len(paths)}


def child_build(params: str) -> dict:
    import build_dataset

    rc = build_dataset.main(["--params", params, "--quiet"])
    if rc != 0:
        raise SystemExit(rc)
    manifest = json.loads((Path(params).parent / "out" / "build_manifest.json").read_text())
    return {"tracks": manifest["counts"]["done"]}


def run_child(args: list[str]) -> dict:
    """Run this script in a child mode; return its report with wall time and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["wall"] = wall
    return report


def make_params(tmp: Path, data: Path, workers: int) -> Path:
    params = json.loads((ROOT / "pipeline_parameters.json").read_text())
    params["paths"] = {"input_dir": str(data), "output_dir": str(tmp / "out")}
    params["workers"] = workers
    path = tmp / "params.json"
    path.write_text(json.dumps(params))
    return path


def linked_dataset(src: Path, dst: Path, copies: int, per_class: int | None = None) -> Path:
    """``dst/<class>/`` of symlinks: ``per_class`` clips of each class, ``copies`` times."""
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        clips = sorted(class_dir.glob("*.mp3"))[:per_class]
        (dst / class_dir.name).mkdir(parents=True)
        for c in range(copies):
            for clip in clips:
                os.symlink(clip.resolve(), dst / class_dir.name / f"{c}_{clip.name}")
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/gtzan-mini"))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--original", action="store_true",
                        help="also time the original SLAPP's method once (minutes)")
    parser.add_argument("--child", choices=("floor", "build", "original"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        out = {"floor": lambda: child_floor(args.target, args.workers),
               "build": lambda: child_build(args.target),
               "original": lambda: child_original(args.target)}[args.child]()
        self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out.update(rss_main_mb=self_kb / 1024, rss_worker_mb=kids_kb / 1024)
        print(json.dumps(out))
        return

    data = Path(args.data).resolve()
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"workers={args.workers}, data={data}")
    floors, builds = [], []
    for _ in range(args.repeat):
        floors.append(run_child(["--child", "floor", "--target", str(data),
                                 "--workers", str(args.workers)]))
        with tempfile.TemporaryDirectory() as tmp:
            params = make_params(Path(tmp), data, args.workers)
            builds.append(run_child(["--child", "build", "--target", str(params)]))
    n = floors[0]["tracks"]
    assert builds[0]["tracks"] == n, (builds[0], n)
    floor_wall = statistics.median(r["wall"] for r in floors)
    build_wall = statistics.median(r["wall"] for r in builds)
    print(f"tracks: {n} (median of {args.repeat} runs, process start + imports included)")
    print(f"floor : {floor_wall:6.2f} s  {n / floor_wall:6.1f} tracks/s  "
          f"(decode + log-mel only, nothing written)")
    print(f"build : {build_wall:6.2f} s  {n / build_wall:6.1f} tracks/s  "
          f"peak RSS main {builds[0]['rss_main_mb']:.0f} MB, "
          f"worker {builds[0]['rss_worker_mb']:.0f} MB")
    print(f"ratio : build / floor wall time = {build_wall / floor_wall:.2f} (goal <= 1.2)")
    if args.original:
        original = run_child(["--child", "original", "--target", str(data)])
        print(f"original SLAPP method: {original['wall']:6.2f} s  "
              f"{n / original['wall']:6.2f} tracks/s (one run)")
        print(f"ratio : original / build wall time = {original['wall'] / build_wall:.1f}x "
              "(goal >= 50)")

    print("memory vs dataset size (build from scratch, symlinked clips):")
    for copies, per_class in ((1, 5), (1, None), (4, None)):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            linked_dataset(data, tmp / "music", copies, per_class)
            params = make_params(tmp, tmp / "music", args.workers)
            r = run_child(["--child", "build", "--target", str(params)])
            cache_mb = sum(p.stat().st_size for p in (tmp / "out").rglob("*.npz")) / 1e6
            shutil.rmtree(tmp / "out")
        print(f"  {r['tracks']:4d} tracks: {r['wall']:6.2f} s, cache {cache_mb:7.1f} MB, "
              f"peak RSS main {r['rss_main_mb']:.0f} MB, worker {r['rss_worker_mb']:.0f} MB")


if __name__ == "__main__":
    main()
