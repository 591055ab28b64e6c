"""The Dask engine (``engine.kind = "dask"``) on a LocalCluster: the same cache as the
local pool, workers that die, poison tracks, and the errors a user can meet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, make_dataset, write_params

pytest.importorskip("distributed")


def _cache(out: Path) -> dict[str, dict[str, np.ndarray]]:
    arrays = {}
    for path in sorted((out / "cache").rglob("*.npz")):
        with np.load(path) as data:
            arrays[path.relative_to(out).as_posix()] = {k: data[k] for k in data.files}
    return arrays


def test_a_dask_build_writes_the_same_cache_as_the_local_pool(tmp_path, capsys):
    import build_dataset

    music = make_dataset(tmp_path / "music", per_class=4, seconds=2.0)
    local = write_params(tmp_path / "local.json", music, tmp_path / "local", **TINY,
                         workers=2)
    dask = write_params(tmp_path / "dask.json", music, tmp_path / "dask", **TINY, workers=2,
                        engine={"kind": "dask"})
    assert build_dataset.main(["--params", str(local), "--quiet"]) == 0
    assert build_dataset.main(["--params", str(dask), "--quiet"]) == 0
    a, b = _cache(tmp_path / "local"), _cache(tmp_path / "dask")
    assert list(a) == list(b) and len(a) == 12
    for name in a:
        for key in ("mel", "starts", "fingerprint"):
            np.testing.assert_array_equal(a[name][key], b[name][key])
    manifest = json.loads((tmp_path / "dask" / "build_manifest.json").read_text())
    assert manifest["counts"] == {"done": 12, "failed": 0, "pending": 0}
    assert "12 cached now" in capsys.readouterr().out


def _kill_first_time(task):
    """Kill this worker process the first time a task for ``task[1]`` runs."""
    marker, key = task
    if key == "victim" and not os.path.exists(marker):
        Path(marker).write_text("killed once")
        os._exit(1)
    return {"key": key, "status": "done"}


def _kill_always(task):
    _, key = task
    if key == "poison":
        os._exit(1)
    return {"key": key, "status": "done"}


def test_a_killed_worker_is_replaced_and_its_task_runs_again(tmp_path):
    from slapp.executor import DaskExecutor

    executor = DaskExecutor(2)
    try:
        marker = str(tmp_path / "marker")
        tasks = [(marker, "victim"), *[(marker, f"t{i}") for i in range(6)]]
        results = list(executor.map_unordered(_kill_first_time, tasks,
                                              on_lost=lambda t, n: {"key": t[1],
                                                                    "status": "lost"}))
    finally:
        executor.close()
    assert Path(marker).read_text() == "killed once"
    assert sorted(r["key"] for r in results) == sorted(t[1] for t in tasks)
    assert {r["status"] for r in results} == {"done"}


@pytest.mark.parametrize("n_others", [4, 40])  # 40: batches of 3 tracks per future
def test_a_track_that_kills_its_worker_twice_is_failed_not_retried_forever(tmp_path,
                                                                           n_others):
    from slapp.stages.build.worker import TrackTask, lost as _lost
    from slapp.executor import DaskExecutor

    executor = DaskExecutor(2)
    try:
        tasks = [*[("", f"t{i}") for i in range(n_others // 2)], ("", "poison"),
                 *[("", f"t{i}") for i in range(n_others // 2, n_others)]]
        results = list(executor.map_unordered(
            _kill_always, tasks,
            on_lost=lambda t, n: _lost(TrackTask(t[1], Path("x"), None, None, ""), n)))
    finally:
        executor.close()
    poison = [r for r in results if r["key"] == "poison"]
    assert poison == [{"key": "poison", "status": "failed",
                       "reason": "it stopped the worker process 2 times (a decoder crash?); "
                                 "not retried"}]
    assert sorted(r["key"] for r in results if r["status"] == "done") == sorted(
        f"t{i}" for i in range(n_others))


def test_an_unreachable_scheduler_is_one_line_naming_the_address(tmp_path, capsys):
    import build_dataset

    music = make_dataset(tmp_path / "music", per_class=3, seconds=1.0)
    params = write_params(tmp_path / "p.json", music, tmp_path / "out", **TINY,
                          engine={"kind": "dask", "address": "tcp://127.0.0.1:9"})
    assert build_dataset.main(["--params", str(params), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' "
                          "(engine.address):") and err.count("\n") == 1
    assert not list((tmp_path / "out" / "cache").rglob("*.npz"))


def test_engine_parameters_are_validated():
    from slapp.errors import ParameterError
    from slapp.params import params_from_dict

    base = {"paths": {"input_dir": "x"}}
    with pytest.raises(ParameterError, match=r"'engine.kind' parameter must be one of "):
        params_from_dict({**base, "engine": {"kind": "spark"}})
    with pytest.raises(ParameterError, match=r"'engine.address' parameter must be null, or a "
                                             r"Dask scheduler address such as "
                                             r"'tcp://host:8786' with engine.kind 'dask'"):
        params_from_dict({**base, "engine": {"kind": "local", "address": "tcp://h:8786"}})
    p = params_from_dict({**base, "engine": {"kind": "dask", "address": "tcp://h:8786"}})
    assert (p.engine.kind, p.engine.address) == ("dask", "tcp://h:8786")


def test_workers_that_cannot_see_the_output_folder_are_refused(tmp_path):
    """The shared-file-system check: a worker that reads something else than the marker
    this process wrote stops the build before any work."""
    from slapp.errors import StageError
    from slapp.executor import DaskExecutor

    class Blind:
        def run(self, fn, path):
            return {"tcp://10.0.0.7:4000": "cannot read it: No such file or directory"}

    executor = DaskExecutor.__new__(DaskExecutor)
    executor.client, executor.cluster = Blind(), None
    with pytest.raises(StageError, match=r"Dask worker tcp://10.0.0.7:4000 cannot see the "
                                         r"output folder .* \(cannot read it: No such file "
                                         r"or directory\)\. With engine.kind 'dask' the output "
                                         r"folder must be on a file system shared"):
        executor.check_shared(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the marker is removed


def test_predict_on_dask_writes_what_a_local_run_writes(trained, tmp_path, capsys):
    """Each worker loads the bundle once; results stream back and are written by this
    process exactly as a local run writes them (same rows, same order)."""
    import predict_track

    root, params = trained
    raw = json.loads(params.read_text())
    raw["engine"], raw["workers"] = {"kind": "dask"}, 2
    dask_params = tmp_path / "dask.json"
    dask_params.write_text(json.dumps(raw))
    music = root / "music"
    local_out, dask_out = tmp_path / "local.json", tmp_path / "dask.json.out.json"
    assert predict_track.main(["--params", str(params), "--quiet", "--output",
                               str(local_out), str(music)]) == 0
    assert predict_track.main(["--params", str(dask_params), "--quiet", "--output",
                               str(dask_out), "--plot", str(tmp_path / "plots"),
                               str(music)]) == 0
    local = json.loads(local_out.read_text())["tracks"]
    remote = json.loads(dask_out.read_text())["tracks"]
    assert [t["path"] for t in remote] == [t["path"] for t in local] and len(local) == 18
    assert [t["label"] for t in remote] == [t["label"] for t in local]
    for a, b in zip(local, remote):
        assert b["scores"] == pytest.approx(a["scores"], abs=1e-6)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 18
    assert "labelled 18 track(s), failed 0" in capsys.readouterr().out


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def test_the_client_killed_mid_build_then_run_again_finishes_the_same_cache(tmp_path):
    """kill -9 of build_dataset.py (the Dask client, with its LocalCluster) in the middle:
    its worker processes do not outlive it, and the re-run completes a cache identical to
    a local build's."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, popen_script

    music = make_dataset(tmp_path / "music", per_class=10, seconds=12.0)
    params = write_params(tmp_path / "p.json", music, tmp_path / "out", **TINY, workers=2,
                          engine={"kind": "dask"})
    proc = popen_script([sys.executable, str(ROOT / "build_dataset.py"), "--params",
                         str(params), "--quiet"], cwd=ROOT)
    cache = tmp_path / "out" / "cache"
    end = time.monotonic() + 120
    while time.monotonic() < end and proc.poll() is None and \
            sum(1 for _ in cache.rglob("*.npz")) < 3:
        time.sleep(0.01)
    assert proc.poll() is None, "the build finished before it could be killed"
    workers = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()
             and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
    assert alive == []
    assert 3 <= sum(1 for _ in cache.rglob("*.npz")) < 30
    rerun = subprocess.run([sys.executable, str(ROOT / "build_dataset.py"), "--params",
                            str(params), "--quiet"], cwd=ROOT, capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "0 failed" in rerun.stdout
    local = write_params(tmp_path / "l.json", music, tmp_path / "local", **TINY, workers=2)
    subprocess.run([sys.executable, str(ROOT / "build_dataset.py"), "--params", str(local),
                    "--quiet"], cwd=ROOT, check=True, capture_output=True)
    a, b = _cache(tmp_path / "local"), _cache(tmp_path / "out")
    assert list(a) == list(b) and len(a) == 30
    for name in a:
        np.testing.assert_array_equal(a[name]["mel"], b[name]["mel"])
