"""The local engine's process pool: a worker that dies from a native crash (a decoder
segfault, an abort) costs only its own track; the run goes on and reports it."""

from __future__ import annotations

import os
import signal

import pytest

from slapp.executor import InlineExecutor, LocalExecutor, TwoPhase


def _crash_on_poison(task):
    if task in ("abort", "segv"):
        import faulthandler

        faulthandler.disable()  # no crash report from pytest's handler in the worker
    if task == "abort":
        os.abort()
    if task == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"key": task, "status": "done"}


def _lost(task, kills):
    return {"key": task, "status": "lost", "kills": kills}


@pytest.mark.parametrize("poison", ["abort", "segv"])
def test_a_native_crash_in_a_worker_fails_its_track_and_the_run_completes(poison):
    tasks = [f"t{i}" for i in range(3)] + [poison] + [f"t{i}" for i in range(3, 8)]
    results = list(LocalExecutor(2).map_unordered(_crash_on_poison, tasks, on_lost=_lost))
    assert sorted(r["key"] for r in results if r["status"] == "done") == [
        f"t{i}" for i in range(8)]
    assert [r for r in results if r["status"] == "lost"] == [
        {"key": poison, "status": "lost", "kills": 2}]


def test_two_crashing_tracks_are_each_reported():
    tasks = ["abort", "t0", "t1", "segv", "t2"]
    results = list(LocalExecutor(2).map_unordered(_crash_on_poison, tasks, on_lost=_lost))
    assert sorted(r["key"] for r in results if r["status"] == "lost") == ["abort", "segv"]
    assert sorted(r["key"] for r in results if r["status"] == "done") == ["t0", "t1", "t2"]


def _prepare(task):
    if task == "bad":
        raise ValueError("unreadable")
    return task.upper()


def _finish(task, prepared):
    try:
        return prepared()
    except ValueError as exc:
        return f"{task}: {exc}"


def test_the_inline_executor_runs_both_phases_in_order_and_passes_errors_to_finish():
    fn = TwoPhase(prepare=_prepare, finish=_finish)
    out = list(InlineExecutor().map_unordered(fn, ["a", "bad", "c"], on_lost=_lost))
    assert out == ["A", "bad: unreadable", "C"]
    assert fn("a") == "A" and fn("bad") == "bad: unreadable"
