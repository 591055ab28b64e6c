"""Where per-track work runs: one small interface, two engines (``engine.kind``).

An executor runs ``fn(task)`` for every task and yields the results as they finish, in
any order. ``fn`` takes everything it needs in its task, so the same function runs in
this machine's process pool or on any Dask worker; what is costly to load (a bundle, an
ONNX session) a process keeps in a module-level cache keyed by the task's fields, loaded
once per process.

- :class:`LocalExecutor` (``local``, the default): a process pool of ``workers``
  processes (:class:`concurrent.futures.ProcessPoolExecutor`); each dies with the parent
  (Linux), ignores Ctrl-C (the parent handles it) and uses one BLAS/FFT thread. A worker
  killed by a native crash (a decoder segfault) breaks the pool: the tasks that were
  running are then run again one at a time in a fresh pool, so the one that crashes alone
  is reported through ``on_lost`` and the run goes on.
- :class:`InlineExecutor`: this process, in order; a two-phase task function
  (:class:`TwoPhase`) has its next task's first phase run in a background thread
  meanwhile (prediction: decode the next track while the network scores this one).
- :class:`DaskExecutor` (``dask``): a ``distributed`` client, on a ``LocalCluster`` of
  ``workers`` processes (one thread each) or on the scheduler at ``engine.address``. A
  task whose worker dies is run again elsewhere; one that kills
  :data:`ALLOWED_FAILURES` + 1 workers is given up and reported through ``on_lost``.
  Each worker runs one task at a time with nothing queued behind it
  (``worker-saturation`` 1.0), so a crash takes down no other track. (With
  ``engine.address`` these are the scheduler's own settings: start it with the same
  ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1`` and
  ``DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0``.)
  The workers must see the output folder (a shared file system):
  :meth:`DaskExecutor.check_shared` proves it before any work.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from slapp.errors import StageError

ALLOWED_FAILURES = 1  # a task that kills two workers is a poison track, not bad luck


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the parent dies (kill -9 included), so
    no orphan keeps writing or keeps the inherited output-folder lock."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _init_pool_worker() -> None:
    if sys.platform.startswith("linux"):
        _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the run on Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and on SIGTERM; workers die with it
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@dataclass(frozen=True)
class TwoPhase:
    """A task function in two phases: ``finish(task, prepared)`` where ``prepared()``
    returns (or raises) ``prepare(task)``; calling it runs both. :class:`InlineExecutor`
    overlaps the next task's ``prepare`` with this one's ``finish``. Both must be
    module-level functions (picklable for other processes)."""

    prepare: Callable
    finish: Callable

    def __call__(self, task):
        return self.finish(task, lambda: self.prepare(task))


class InlineExecutor:
    """This process, tasks in order (see the module docstring)."""

    name = "inline"

    def map_unordered(self, fn: Callable, tasks: list, *, on_lost: Callable) -> Iterator:
        if not isinstance(fn, TwoPhase):
            yield from (fn(task) for task in tasks)
            return
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(fn.prepare, tasks[0]) if tasks else None
            try:
                for i, task in enumerate(tasks):
                    future = pending
                    pending = (pool.submit(fn.prepare, tasks[i + 1])
                               if i + 1 < len(tasks) else None)
                    yield fn.finish(task, future.result)
            finally:
                if pending is not None:
                    pending.cancel()

    def check_shared(self, folder: Path) -> None:
        """Nothing to check: the work runs in this process."""

    def close(self) -> None:
        pass


class LocalExecutor:
    """This machine's process pool (``workers`` processes; 1: in this process)."""

    name = "local"

    def __init__(self, n_workers: int, warm_up: Callable[[], None] | None = None):
        self.n_workers, self.warm_up = max(1, n_workers), warm_up

    def _pool(self, n: int) -> ProcessPoolExecutor:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        return ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_pool_worker)

    def map_unordered(self, fn: Callable, tasks: list, *, on_lost: Callable) -> Iterator:
        if self.n_workers == 1 or len(tasks) <= 1:
            yield from (fn(task) for task in tasks)
            return
        if self.warm_up is not None:  # import once in the parent: forked workers share it
            self.warm_up()
        queue = deque(tasks)
        while queue:
            suspects: list = []
            yield from self._run(fn, queue, min(self.n_workers, len(queue)), suspects)
            for task in suspects:  # a worker died: each task that was running, alone
                alone: list = []
                yield from self._run(fn, deque([task]), 1, alone)
                if alone:
                    yield on_lost(task, ALLOWED_FAILURES + 1)

    def _run(self, fn: Callable, queue: deque, n: int, suspects: list) -> Iterator:
        """Run ``queue``'s tasks on ``n`` processes, at most ``n`` at a time (so a crash
        can be pinned on the running ones); on a broken pool, the tasks that were running
        go to ``suspects`` and the rest stay queued."""
        pool = self._pool(n)
        running: dict = {}
        try:
            while queue or running:
                while queue and len(running) < n:
                    task = queue.popleft()
                    running[pool.submit(fn, task)] = task
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        suspects += running.values()
                        return
                    del running[future]
                    yield result
        finally:
            pool.shutdown(wait=not running, cancel_futures=True)

    def check_shared(self, folder: Path) -> None:
        """Nothing to check: the workers are this machine's processes."""

    def close(self) -> None:
        pass


def _read_marker(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"


def batch_size(n_tasks: int, n_workers: int) -> int:
    """Tasks per Dask future: about 8 batches per worker, at most 16 tasks a batch (a
    crash costs its batch a retry), at least 1."""
    return max(1, min(16, math.ceil(n_tasks / (8 * max(1, n_workers)))))


def run_batch(fn: Callable, batch: list) -> list:
    """``[fn(task) for task in batch]`` on a worker."""
    return [fn(task) for task in batch]


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class DaskExecutor:
    """A Dask ``distributed`` client (see the module docstring)."""

    name = "dask"

    def __init__(self, n_workers: int, address: str | None = None):
        import dask
        from distributed import Client, LocalCluster

        self.cluster, self.n_workers = None, max(1, n_workers)
        try:
            # one task per worker thread at a time (no queue on the workers): a worker that
            # dies then takes only its own track down, not a bystander queued behind it
            with dask.config.set({"distributed.scheduler.allowed-failures":
                                  ALLOWED_FAILURES,
                                  "distributed.scheduler.worker-saturation": 1.0,
                                  # the stack sampler feeds a dashboard slapp never
                                  # opens; on 2 cores it costs a build ~15 %
                                  "distributed.worker.profile.enabled": False}):
                if address is None:
                    self.cluster = LocalCluster(n_workers=max(1, n_workers),
                                                threads_per_worker=1, processes=True,
                                                dashboard_address=None)
                    self.client = Client(self.cluster)
                else:
                    self.client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            where = address or "a LocalCluster"
            raise StageError(f"Cannot reach the Dask scheduler at '{where}' "
                             f"(engine.address): {exc}. Start it (dask scheduler) or fix "
                             "the address.") from None
        self.client.run(_one_thread)

    def check_shared(self, folder: Path) -> None:
        """Refuse (:class:`StageError`) unless every worker reads a marker this process
        just wrote in ``folder``: the cache files the workers write must land where this
        process and later stages read them."""
        token = uuid.uuid4().hex
        marker = folder / f".slapp-shared-check-{token}"
        marker.write_text(token)
        try:
            seen = self.client.run(_read_marker, str(marker.resolve()))
        finally:
            marker.unlink()
        blind = {worker: text for worker, text in seen.items() if text != token}
        if not seen or blind:
            worker, text = next(iter(blind.items())) if blind else ("none", "no workers")
            raise StageError(
                f"Dask worker {worker} cannot see the output folder '{folder.resolve()}' "
                f"({text}). With engine.kind 'dask' the output folder must be on a file "
                "system shared by this machine and every worker (NFS, SMB, a cluster "
                "file system), at the same path.")

    def map_unordered(self, fn: Callable, tasks: list, *, on_lost: Callable) -> Iterator:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        size = batch_size(len(tasks), self.n_workers)
        batches = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        futures = {self._submit(fn, batch): batch for batch in batches}
        queue = as_completed(futures)
        try:
            for future in queue:
                batch = futures[future]
                try:
                    yield from future.result()
                except KilledWorker:
                    if len(batch) == 1:
                        yield on_lost(batch[0], ALLOWED_FAILURES + 1)
                        continue
                    for task in batch:  # find the poison task: one task per future
                        single = self._submit(fn, [task])
                        futures[single] = [task]
                        queue.add(single)
        finally:
            self.client.cancel(list(futures))

    def _submit(self, fn: Callable, batch: list):
        return self.client.submit(run_batch, fn, batch, pure=False,
                                  key=f"slapp-{uuid.uuid4().hex}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


@contextlib.contextmanager
def open_executor(params, warm_up: Callable[[], None] | None = None, *,
                  in_process: bool = False):
    """The executor ``params.engine`` asks for, closed at the end of the block. With the
    local engine, ``in_process`` gives the :class:`InlineExecutor` (work whose heavy part
    already uses every core, such as a network) instead of the process pool."""
    engine = params.engine
    if engine.kind == "dask":
        executor = DaskExecutor(params.n_workers, engine.address)
    elif in_process:
        executor = InlineExecutor()
    else:
        executor = LocalExecutor(params.n_workers, warm_up)
    try:
        yield executor
    finally:
        executor.close()
