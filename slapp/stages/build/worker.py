"""The build's per-track work (stage 1 and the library's build): decode and featurize
one track, store it atomically in the cache, and run many on an executor. Runs in worker
processes (or on Dask workers): everything a task needs travels in it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slapp import signals
from slapp.dsp.audio import check_regular_file
from slapp.errors import AudioError, StageError
from slapp.params import PipelineParams
from slapp.stages.build.prepare import build_starts, prepare_track
from slapp.store import cache
from slapp.store.layout import BuildLayout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackTask:
    """Everything one track's build needs (it may run on another machine)."""

    key: str
    path: Path
    params: PipelineParams
    layout: BuildLayout
    fingerprint: str


def build_track(task: TrackTask) -> dict:
    """Featurize one track and store it atomically in the cache; never raises for a bad
    track. Returns the manifest entry with ``key`` and ``status``."""
    key, path, params, layout = task.key, task.path, task.params, task.layout
    try:
        check_regular_file(path)  # before the stat: a link that loops has none
        source = cache.source_stat(path)
        tf = prepare_track(path, params)
        mel, starts = tf.features(build_starts(tf, params, key=key), params)
    except FileNotFoundError:
        return {"key": key, "status": "failed", "reason": "the file disappeared during the run"}
    except AudioError as exc:
        return {"key": key, "status": "failed", "reason": str(exc)}
    except Exception as exc:  # one odd track must not stop a run of thousands
        return {"key": key, "status": "failed",
                "reason": f"unexpected error while decoding ({type(exc).__name__}: {exc})"}
    try:
        cache.write_track(layout, key, mel=mel, starts=starts.astype(np.float32),
                          dtype=params.features.dtype, fingerprint=task.fingerprint,
                          source=tuple(source))
    except OSError as exc:
        return {"key": key, "status": "write_error",
                "reason": f"cannot write '{layout.track_file(key)}': {exc.strerror or exc}"}
    channels = {1: "mono", 2: "stereo"}.get(tf.source_channels, f"{tf.source_channels} ch")
    return {"key": key, "status": "done", "snippets": int(mel.shape[0]),
            "seconds": round(tf.seconds, 3), "source": f"{tf.source_rate} Hz {channels}",
            "source_rate": tf.source_rate, "bandwidth_hz": round(tf.bandwidth_hz, 1),
            "loudness_db": round(tf.loudness_db, 2), "notes": list(tf.notes),
            "file": source}


def lost(task: TrackTask, kills: int) -> dict:
    """The entry of a track whose worker process died every time it was tried."""
    return {"key": task.key, "status": "failed",
            "reason": f"it stopped the worker process {kills} times (a decoder crash?); "
                      "not retried"}


def warm_up(params: PipelineParams) -> None:
    """Import the feature code once in the parent, so forked workers share it."""
    import numpy as np

    from slapp.models.backbones import snippet_features

    snippet_features(np.zeros(params.snippet_samples, np.float32), np.zeros(1, np.int64),
                     params)


def run_tracks(tasks: list[TrackTask], executor, *, progress: bool,
               results: dict[str, dict], desc: str = "build") -> None:
    """Process ``tasks`` on ``executor``, filling ``results`` (key → result) as they
    finish."""
    bar_args = dict(total=len(tasks), unit="track", disable=not progress,
                    desc=desc, dynamic_ncols=True, smoothing=0.1)
    with tqdm(**bar_args) as bar:
        for result in executor.map_unordered(build_track, tasks, on_lost=lost):
            signals.check()  # a Ctrl-C lost in a finaliser: stop at the next track
            if result["status"] == "write_error":
                raise StageError(result["reason"] + ". Free space or fix permissions, then "
                                 "run again: finished tracks are kept.")
            results[result["key"]] = result
            if result["status"] == "failed":
                logger.warning("%s: %s", result["key"], result["reason"])
            bar.update(1)
            bar.set_postfix(failed=sum(r["status"] == "failed" for r in results.values()),
                            refresh=False)
