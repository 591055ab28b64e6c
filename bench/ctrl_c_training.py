#!/usr/bin/env python3
"""Ctrl-C at random moments of a training: is any lost?

Prepares once a tiny synthetic collection (the tests' CRNN settings) up to stage 2, then
``--runs`` times: copies the arrays, starts ``train_crnn.py`` as a new process, waits until
its first epoch is saved, then sends SIGINT after a random delay spread over the rest of
the training (batches, validation, the learning-rate schedule, checkpoint writing, the
bundle). A run that exits 0 although the signal reached it while it ran lost the Ctrl-C;
one that exits 130 must leave an unfinished training state. Prints the counts; the
figure to expect is 0 lost.

Usage: python bench/ctrl_c_training.py [--runs 200] [--work /tmp/slapp-ctrlc] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def prepare(work: Path) -> Path:
    from conftest import TINY, make_dataset, run_stages, write_params

    params = work / "params.json"
    if not (work / "base" / "arrays" / "process_manifest.json").exists():
        music = make_dataset(work / "music", per_class=6, seconds=3.0)
        write_params(params, music, work / "base", model=TINY["model"],
                     training={"batch_size": 4, "epochs": 6, "learning_rate": 0.01,
                               "early_stopping_patience": 30, "reduce_lr_patience": 1})
        run_stages(params, "build", "process")
    return params


def one_run(work: Path, params: Path, rng: random.Random) -> tuple[str, str]:
    """``"stopped"``, ``"lost"`` (exit 0 after the signal), ``"late"`` (the bundle was done
    before it: the process had ended, or was exiting), or ``"bad: ..."``; and its stderr."""
    out = work / "base"
    for name in ("training", "model"):
        shutil.rmtree(out / name, ignore_errors=True)
    state = out / "training" / "state.json"
    proc = subprocess.Popen([sys.executable, "train_crnn.py", "--params", str(params),
                             "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 3.0))  # an epoch takes ~0.3 s: all its moments, the bundle
    running = proc.poll() is None
    if running:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    finished = (out / "model" / "bundle.json").exists()
    if not running or (proc.returncode == -signal.SIGINT and finished):
        return "late", err  # done before the signal, or it came while Python was exiting
    if proc.returncode == 0:
        where = "a finaliser dropped it" if "Exception ignored" in err else "?"
        return f"lost ({where}; bundle {'written' if finished else 'not written'})", err
    if proc.returncode != 130:
        return f"bad: exit {proc.returncode}: {err.strip().splitlines()[-1:]}", err
    if finished:
        return "stopped after the bundle was written", err  # no harm: the signal came last
    return "stopped", err


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slapp-ctrlc"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}")
    args.work.mkdir(parents=True, exist_ok=True)
    params = prepare(args.work)
    rng = random.Random(args.seed)
    counts: dict[str, int] = {}
    started = time.monotonic()
    for i in range(args.runs):
        result, err = one_run(args.work, params, rng)
        counts[result] = counts.get(result, 0) + 1
        if result not in ("stopped", "late"):
            (args.work / f"run-{i}.stderr").write_text(err)
            print(f"run {i}: {result} (stderr: {args.work / f'run-{i}.stderr'})", flush=True)
    print(f"{args.runs} runs in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    lost = sum(v for k, v in counts.items() if k.startswith("lost"))
    print(f"lost Ctrl-C: {lost} of "
          f"{args.runs - counts.get('late', 0)} delivered while training ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
