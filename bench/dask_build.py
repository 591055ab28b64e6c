#!/usr/bin/env python3
"""Stage 1 on the local process pool and on Dask, same tracks, same cores, one run.

Engines (each a fresh ``build_dataset.py`` process into an empty output folder, median
of ``--repeat``):

- local : ``engine.kind = "local"``, ``workers`` processes (today's default);
- LocalCluster : ``engine.kind = "dask"`` without an address: slapp starts a LocalCluster
  of ``workers`` processes (its start-up is included);
- scheduler + workers : ``dask scheduler`` and ``workers`` x ``dask worker --nthreads 1``
  started here as separate processes on 127.0.0.1 (a real multi-process cluster on one
  machine; started once, before the timing), ``engine.address`` pointing at it.

Datasets: gtzan-mini (100 clips) and the same clips 4 times by symlinks (400 tracks).
Prints wall times, tracks/s and the ratio of each Dask engine to the local pool (goal:
within 1.15x), and checks that every engine wrote the same cache bytes' arrays.

Usage: python bench/dask_build.py [--workers 2] [--repeat 3]
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
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
                 "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}


def build(data: Path, out: Path, workers: int, engine: dict) -> float:
    params = json.loads((ROOT / "pipeline_parameters.json").read_text())
    params["paths"] = {"input_dir": str(data), "output_dir": str(out)}
    params["workers"], params["engine"] = workers, engine
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(params))
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "build_dataset.py"), "--params", str(path),
                    "--quiet"], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def cache_digest(out: Path) -> dict:
    import numpy as np

    digest = {}
    for path in sorted((out / "cache").rglob("*.npz")):
        with np.load(path) as data:
            digest[path.relative_to(out).as_posix()] = (data["mel"].tobytes(),
                                                        data["starts"].tobytes())
    return digest


def start_cluster(workers: int, port: int) -> list[subprocess.Popen]:
    env = {**os.environ, **SCHEDULER_ENV, "PYTHONPATH": str(ROOT)}
    dask = str(Path(sys.executable).parent / "dask")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    time.sleep(2)
    procs += [subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                                "--nworkers", "1", "--no-dashboard"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(workers)]
    from distributed import Client

    with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as client:
        client.wait_for_workers(workers, timeout=60)
    return procs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    from build_speed import linked_dataset

    data = Path(args.data).resolve()
    address = f"tcp://127.0.0.1:{args.port}"
    engines = {"local pool": {"kind": "local", "address": None},
               "LocalCluster": {"kind": "dask", "address": None},
               "scheduler + workers": {"kind": "dask", "address": address}}
    procs = start_cluster(args.workers, args.port)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            big = linked_dataset(data, tmp / "x4", 4)
            for name, folder in (("gtzan-mini", data), ("400 tracks (symlinks)", big)):
                n = sum(1 for _ in folder.rglob("*.mp3"))
                times, digests = {}, {}
                for _ in range(args.repeat):
                    for engine, settings in engines.items():
                        out = tmp / "out"
                        shutil.rmtree(out, ignore_errors=True)
                        times.setdefault(engine, []).append(
                            build(folder, out, args.workers, settings))
                        digests[engine] = cache_digest(out)
                same = all(d == digests["local pool"] for d in digests.values())
                rows.append((name, n, {e: statistics.median(t) for e, t in times.items()},
                             same))
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    print(f"command: python bench/dask_build.py --workers {args.workers} --repeat "
          f"{args.repeat}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
          f"{args.workers} workers per engine; wall time of build_dataset.py from scratch, "
          f"median of {args.repeat}")
    print("| dataset | engine | wall s | tracks/s | / local pool | same cache |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, n, times, same in rows:
        for engine, seconds in times.items():
            print(f"| {name} | {engine} | {seconds:.2f} | {n / seconds:.1f} | "
                  f"{seconds / times['local pool']:.2f} | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
