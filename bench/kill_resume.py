#!/usr/bin/env python3
"""Kill every stage at random moments, resume it, and compare with an uninterrupted run.

On a small synthetic dataset (tones, made here), each round picks a stage (build,
process, train, predict with --output) in turn, starts its script as a subprocess on a
fresh copy of the previous stages' outputs, sends SIGKILL after a seeded random delay
(0 to the stage's reference duration), re-runs the same command to completion and
compares with a reference run made without interruption:

- build: same split file, and every cache file holds the same arrays;
- process: identical .npy arrays and statistics;
- train: the re-run resumed from the last finished epoch (or finished/started over when
  killed before the first epoch ended), the history has each epoch once, the bundle is
  complete and loads (weights are not compared: a resumed run is not bit-identical);
- predict: the same labels and scores in the output file.

Also: no temp file left anywhere in the output. Prints kills, resumes, mismatches.

Usage: python bench/kill_resume.py [--rounds 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCRIPTS = {"build": "build_dataset.py", "process": "process_dataset.py",
           "train": "train_crnn.py", "predict": "predict_track.py"}
PREVIOUS = {"build": [], "process": ["build"], "train": ["build", "process"],
            "predict": ["build", "process", "train"]}


def make_music(root: Path) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    for c, base in (("low", 110.0), ("mid", 440.0), ("high", 1760.0)):
        for i in range(8):
            t = np.arange(int((2.0 + 0.3 * i) * 16000)) / 16000
            y = 0.3 * np.sin(2 * np.pi * base * (1 + 0.02 * i) * t)
            y += 0.02 * rng.standard_normal(len(t))
            (root / c).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / c / f"{c}_{i}.wav"), y.astype(np.float32), 16000)


def write_params(path: Path, music: Path, out: Path) -> None:
    path.write_text(json.dumps({
        "paths": {"input_dir": str(music), "output_dir": str(out)},
        "audio": {"sample_rate": 16000},
        "slicing": {"snippet_seconds": 1.0, "overlap_seconds": 0.5,
                    "max_snippets_per_track": 6, "min_track_seconds": 0.5},
        "features": {"n_fft": 512, "hop_length": 256, "n_mels": 32},
        "split": {"val_share": 0.25, "test_share": 0.25, "seed": 1},
        "model": {"crnn": {"conv_filters": [4, 8], "pool_sizes": [[2, 4], [2, 8]],
                           "recurrent_units": [8]}},
        "training": {"batch_size": 4, "epochs": 6, "learning_rate": 0.01},
        "workers": 1}))


def command(stage: str, params: Path, work: Path) -> list[str]:
    cmd = [sys.executable, str(ROOT / SCRIPTS[stage]), "--params", str(params), "--quiet"]
    if stage == "predict":
        cmd += [str(work / "music"), "--output", str(work / "labels.json")]
    return cmd


def run(cmd) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-500:]}")
    return time.monotonic() - start


def compare(stage: str, ref: Path, got: Path) -> list[str]:
    problems = []
    out_r, out_g = ref / "out", got / "out"
    temps = [str(p) for p in got.rglob("*") if p.name.endswith(".slapp-tmp")
             or p.name.startswith(".tmp-") or p.name.endswith(".partial.jsonl")]
    if temps:
        problems.append(f"temp files left: {temps[:3]}")
    if stage == "build":
        if (out_r / "train_val_test_dict.json").read_text() != \
                (out_g / "train_val_test_dict.json").read_text():
            problems.append("split differs")
        for f in (out_r / "cache").rglob("*.npz"):
            g = out_g / "cache" / f.relative_to(out_r / "cache")
            if not g.exists():
                problems.append(f"missing {g.name}")
                continue
            a, b = np.load(f), np.load(g)
            if not all(np.array_equal(a[k], b[k]) for k in a.files):
                problems.append(f"cache differs: {g.name}")
    elif stage == "process":
        for f in (out_r / "arrays").iterdir():
            g = out_g / "arrays" / f.name
            if f.suffix in (".npy",) and (not g.exists() or f.read_bytes() != g.read_bytes()):
                problems.append(f"array differs: {f.name}")
            if f.name == "normalization.json" and f.read_text() != g.read_text():
                problems.append("statistics differ")
    elif stage == "train":
        info = out_g / "model" / "bundle.json"
        if not info.exists():
            problems.append("bundle incomplete")
        else:
            import csv

            rows = list(csv.DictReader((out_g / "model" / "history.csv").open()))
            if [int(r["epoch"]) for r in rows] != list(range(len(rows))):
                problems.append("history has missing or repeated epochs")
            from slapp.stages.train.bundle import load_bundle

            load_bundle(out_g / "model")
    elif stage == "predict":
        a = json.loads((ref / "labels.json").read_text())["tracks"]
        b = json.loads((got / "labels.json").read_text())["tracks"]
        strip = [(t["path"].replace(str(ref), ""), t["label"], t["scores"]) for t in a]
        if strip != [(t["path"].replace(str(got), ""), t["label"], t["scores"]) for t in b]:
            problems.append("labels differ")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="slapp-kill-"))
    ref = base / "ref"
    make_music(ref / "music")
    write_params(ref / "params.json", ref / "music", ref / "out")
    durations = {}
    for stage in SCRIPTS:
        durations[stage] = run(command(stage, ref / "params.json", ref))
    kills = resumes = mismatches = 0
    for i in range(args.rounds):
        stage = list(SCRIPTS)[i % 4]
        work = base / f"round{i:02d}"
        shutil.copytree(ref / "music", work / "music")
        write_params(work / "params.json", work / "music", work / "out")
        for prev in PREVIOUS[stage]:  # bring the outputs up to this stage
            run(command(prev, work / "params.json", work))
        cmd = command(stage, work / "params.json", work)
        delay = rng.uniform(0.0, durations[stage])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        rerun = subprocess.run(cmd, capture_output=True, text=True)
        resumed = any(s in rerun.stdout for s in ("resumed after epoch",
                                                   "from the interrupted run"))
        resumes += int(killed)
        problems = [] if rerun.returncode == 0 else [f"re-run exit {rerun.returncode}: "
                                                     f"{rerun.stderr[-300:]}"]
        if not problems:
            problems = compare(stage, ref, work)
        mismatches += int(bool(problems))
        print(f"round {i + 1:2d}: {stage:<8} kill at {delay:5.2f} s "
              f"{'(killed)' if killed else '(had finished)'}"
              f"{' resumed' if resumed else ''}: {'; '.join(problems) or 'identical'}",
              flush=True)
        shutil.rmtree(work)
    shutil.rmtree(base)
    print(f"command: python bench/kill_resume.py --rounds {args.rounds} --seed {args.seed}")
    print(f"kills: {kills}, resumes: {resumes}, mismatches: {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
