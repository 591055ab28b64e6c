"""Stage 4, ``predict_track.py``: label whole tracks of any length with a model bundle.

For each track: :func:`slapp.stages.build.prepare.prepare_track` (the build's decoding, checks
and levelling) → the ``"label"`` snippet plan of the bundle's parameters
(:meth:`~slapp.params.PipelineParams.snippet_plan`: a snippet every slicing hop, 2 s by
default, or ``--hop``, covering the whole track, the last one ending at its end; every one
of them, or at most ``--max-snippets`` spread evenly) → features with the
bundle's settings → the bundle's normalisation → class probabilities in batches (the bundle's portable
copy on onnxruntime: TensorFlow is not imported) → one
label by :func:`slapp.dsp.aggregate.aggregate`. Snippets are featurised
about ``CHUNK_SNIPPETS`` at a time (a whole number of inference batches), so a long track
needs little memory.

One labelling loop runs on the executor of ``engine``: in this process (the next track
decoded in a background thread while the network scores the current one) or on a Dask
cluster (each worker loads the bundle once). With an output file, finished tracks are
also appended to ``<output>.partial.jsonl``; a re-run with the same output, bundle and
options skips them. The output file itself is written atomically at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from slapp import signals
from slapp.errors import AudioError, StageError
from slapp.executor import InlineExecutor, TwoPhase, open_executor
from slapp.params import PipelineParams
from slapp.stages.train.bundle import Bundle, load_bundle
from slapp.stages.label.evaluate import folder_truth, plot_confusion, split_by_artist
from slapp.stages.deliver.deliver import LibraryOptions, use_labels
from slapp.stages.label.outputs import (OUTPUT_FORMATS, PartialFile, PredictReport, TrackResult,
                                  partial_path, plot_name, plot_timeline, run_signature,
                                  write_output)
from slapp.store.discovery import find_inputs
from slapp.store.layout import DEMO_FOLDER, BundleLayout
from slapp.store.lock import file_lock

logger = logging.getLogger(__name__)

from slapp.stages.label.predictor import PredictOptions, Predictor, Prepared  # noqa: F401  (re-exported)


# --- the labelling task: the same function in this process and on a Dask worker ---------

@dataclass(frozen=True)
class LabelTask:
    """One track to label: everything a worker needs, explicitly."""

    name: str
    path: Path
    bundle_dir: Path
    options: PredictOptions
    engine: str = "auto"  # the engine asked for (predict_track.py --engine): each worker
                          # resolves it on its own CPU; "keras": model.keras too


_PREDICTORS: dict[tuple, Predictor] = {}  # this process's loaded bundle, by (folder, options)


def _predictor(task: LabelTask) -> Predictor:
    """The process's predictor for ``task``: the bundle is loaded (and traced) once."""
    key = (task.bundle_dir, task.options)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()
        _PREDICTORS[key] = Predictor(load_bundle(task.bundle_dir, engine=task.engine),
                                     task.options)
    return _PREDICTORS[key]


def _prepare(task: LabelTask) -> Prepared:
    return _predictor(task).prepare(task.path)


def _finish(task: LabelTask, prepared) -> dict:
    """Label ``task`` from ``prepared()``; a bad track becomes a row with its error."""
    try:
        result = _predictor(task).label(task.name, prepared())
    except AudioError as exc:
        result = TrackResult(path=task.name, error=str(exc))
    except MemoryError:
        result = TrackResult(path=task.name, error="not enough memory to decode it")
    return result.to_dict(True)


label_task = TwoPhase(prepare=_prepare, finish=_finish)


def _lost(task: LabelTask, kills: int) -> dict:
    return TrackResult(path=task.name, error=f"it stopped the worker process {kills} "
                                             "times (a decoder crash?)").to_dict(True)


class _Keeper:
    """What a newly labelled track leaves behind: its log line, plot and partial-file row."""

    def __init__(self, classes: list[str], plot_dir: Path | None, partial: PartialFile | None):
        self.classes, self.plot_dir, self.partial = classes, plot_dir, partial
        self.used_names: set[str] = set()

    def keep(self, result: TrackResult) -> None:
        if result.error:
            logger.error("%s: %s", result.path, result.error)
        elif self.plot_dir is not None:
            plot_timeline(self.plot_dir / plot_name(result.path, self.used_names), result,
                          self.classes)
        if self.partial is not None:
            self.partial.append(result)


def label_inputs(inputs: list, bundle: Bundle, options: PredictOptions, executor,
                 keeper: _Keeper, done: dict[str, dict], progress: bool
                 ) -> tuple[list[TrackResult], int]:
    """The one labelling loop: ``(results in input order, how many came from done)``.
    ``inputs`` are :func:`find_inputs` entries; tracks in ``done`` (an interrupted run's
    rows) are not labelled again; ``executor`` decides where the work runs."""
    folder = bundle.folder.resolve()
    executor.check_shared(folder)
    _PREDICTORS.clear()
    _PREDICTORS[(folder, options)] = Predictor(bundle, options)  # this process's copy
    # absolute, links not resolved: a link that loops is one failed track, not a crash
    engine = "keras" if bundle.engine == "keras" else bundle.requested
    tasks = [LabelTask(name, Path(os.path.abspath(path)), folder, options, engine)
             for name, path, error in inputs if not error and name not in done]
    rows: dict[str, TrackResult] = {}
    with _c_stderr_to_devnull(), tqdm(total=len(tasks), unit="track", desc="labelling",
                                      disable=not progress or len(tasks) < 2) as bar:
        for row in executor.map_unordered(label_task, tasks, on_lost=_lost):
            signals.check()  # a Ctrl-C lost in a finaliser: stop at the next track
            result = TrackResult.from_row(row)
            rows[result.path] = result
            keeper.keep(result)
            bar.update(1)
    results, resumed = [], 0
    for name, _, error in inputs:
        if name in done:
            results.append(TrackResult.from_row(done[name]))
            resumed += 1
        else:
            results.append(rows.get(name) or TrackResult(path=name, error=error))
            if error:
                logger.error("%s: %s", name, error)
    return results, resumed


@contextlib.contextmanager
def _c_stderr_to_devnull():
    """Send C-level stderr (decoder and TensorFlow chatter) to /dev/null for the run while
    Python's ``sys.stderr`` (messages, progress bars) keeps the terminal; thread-safe, unlike
    swapping fd 2 around each decode."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    old = sys.stderr
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=old.encoding or "utf-8",
                           errors="replace")
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr.close()
        sys.stderr = old


def predict_tracks(paths: list[str], bundle: Bundle, options: PredictOptions = PredictOptions(),
                   *, output: Path | None = None, plot_dir: Path | None = None,
                   evaluate: bool = False, params: PipelineParams | None = None,
                   library: LibraryOptions | None = None, progress: bool = True
                   ) -> PredictReport:
    """Label every track in ``paths`` (files or folders) with ``bundle``.

    ``params`` (the current parameters file) chooses the engine (local or Dask);
    ``library`` asks for genre tags, playlists and the HTML page. A failed track is a
    :class:`TrackResult` with ``error`` set, and the run goes on.
    """
    _check_output(output)
    with file_lock(output, "predict_track.py") if output else contextlib.nullcontext():
        report = _predict(paths, bundle, options, output, plot_dir, evaluate, params,
                          progress, drawn=plot_dir is not None or bool(library and library.html))
    if library is not None:
        report.library = use_labels(report, library)
    return report


def _predict(paths, bundle, options, output, plot_dir, evaluate, params, progress, drawn
             ) -> PredictReport:
    started = time.monotonic()
    if drawn:  # plots and the page draw the timeline
        options = dataclasses.replace(options, timeline=True)
    partial = (PartialFile(output, run_signature(bundle.info, options.signature()))
               if output is not None else None)
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
    keeper = _Keeper(bundle.classes, plot_dir, partial)
    report = PredictReport(results=[], classes=bundle.classes, bundle=bundle.folder,
                           engine=bundle.engine)
    try:
        local = contextlib.nullcontext(InlineExecutor())
        with open_executor(params, in_process=True) if params else local as executor:
            report.results, report.resumed = label_inputs(
                find_inputs(paths), bundle, options, executor, keeper,
                partial.done if partial else {}, progress)
    finally:
        if partial is not None:
            partial.close()
    if output is not None:
        write_output(output, report.results, bundle.classes, options.timeline)
        partial_path(output).unlink()
    if evaluate:
        report.truth = folder_truth(report.results, bundle.classes)
        heard = bundle.info.get("training_artists")  # absent: a bundle older than the record
        report.truth["artists"] = (split_by_artist(report.results, bundle.classes, heard)
                                   if heard else heard)
    _closing_lines(report, bundle, plot_dir)
    report.seconds = time.monotonic() - started
    return report


def _check_output(output: Path | None) -> None:
    if output is not None and output.suffix.lower() not in OUTPUT_FORMATS:
        raise StageError(f"Output file '{output}' must end in .csv or .json.")
    if output is not None and not output.parent.is_dir():
        raise StageError(f"Cannot write '{output}': folder '{output.parent}' does not exist.")


def _closing_lines(report: PredictReport, bundle: Bundle, plot_dir: Path | None) -> None:
    """What to look at (plots, confusion matrices) and, after the demo, what to try next."""
    if plot_dir is not None:
        if any(not r.error for r in report.results):
            report.look_at.append(f"{plot_dir}/<track>.png: each track's class "
                                  "probabilities over time")
        if report.truth is not None and report.truth["count"]:
            plot_confusion(plot_dir / "confusion.png", report.truth["confusion"],
                           bundle.classes, f"{report.truth['count']} tracks, labelled by "
                           "predict_track.py (rows: folder name)")
            report.look_at.append(f"{plot_dir / 'confusion.png'}: confusion matrix of "
                                  "these tracks")
    curves = BundleLayout(bundle.folder).curves_file
    if curves.exists():
        report.look_at.append(f"{curves}: the training curves; the validation and test "
                              f"confusion matrices are beside it")
    trained_on = Path(str(bundle.params.paths.input_dir))
    if trained_on.parts[-2:] == (DEMO_FOLDER, "labelled"):
        report.next_steps += [
            "your own music: set paths.input_dir in pipeline_parameters.json to a folder "
            "with one sub-folder per class, then run the four scripts again",
            "a small collection (tens of tracks per class, few artists): keep the default "
            "\"backbone\": \"musicnn-msd\" (pretrained); with hundreds of tracks by many "
            "artists per class, try \"crnn\" (trained from scratch; README: 'which model "
            "to pick')" if bundle.params.backbone.pretrained else
            "a small collection (tens of tracks per class): set \"backbone\": "
            "\"musicnn-msd\" in the model section (a pretrained network; see README)"]


