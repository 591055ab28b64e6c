"""Stage 4, ``predict_track.py``: label whole tracks of any length with a model bundle.

For each track: decode once → snippets every ``hop_seconds`` covering the whole track (the
last one ends at the track's end; a track shorter than a snippet is zero-padded) →
log-mel with the bundle's settings (:func:`slapp.backbones.snippet_features`, the build's function)
→ the bundle's normalisation → class probabilities in batches → one label by
:func:`slapp.aggregate.aggregate`. Snippets are processed ``batch_size`` at a time, so a
long track needs little memory; the next track is decoded in a background thread while
the current one is predicted.

With an output file, finished tracks are also appended to ``<output>.partial.jsonl``; a
re-run with the same output, bundle and options skips them, so an interrupted run over a
large folder continues where it stopped. The output file itself is written atomically at
the end.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .aggregate import RULES, aggregate
from .atomic import atomic_write
from .audio import AUDIO_EXTENSIONS, decode
from .bundle import Bundle, load_bundle
from .coverage import range_notes
from .dataset import is_system_entry, readable_name
from .demo import DEMO_FOLDER
from .errors import AudioError, StageError
from .evaluate import confusion_lines, folder_truth, plot_confusion
from .inference import Scorer
from .backbones import snippet_features
from .levels import bandwidth_hz, loudness_db, prepare_waveform
from .normalization import apply
from .params import PipelineParams
from .slicing import track_starts
from .track import check_waveform

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = (".csv", ".json")
# seconds between snippet starts: 2 s labels as well as 1 s (the article's) at half the cost
# (BENCHMARKS.md, "Prediction hop": 5 artist-keeping folds, CRNN and musicnn)
DEFAULT_HOP_SECONDS = 2.0


@dataclass
class TrackResult:
    """The outcome for one input: ``label`` and ``scores`` or an ``error``."""

    path: str
    label: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    seconds: float | None = None
    snippets: int = 0
    notes: list[str] = field(default_factory=list)
    timeline: list[dict] | None = None
    error: str | None = None
    outside_training: bool = False

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k] if self.scores else []

    @classmethod
    def from_row(cls, row: dict) -> TrackResult:
        """A result saved by :meth:`to_dict` (the partial file of an interrupted run)."""
        return cls(**{k: row.get(k) for k in ("path", "label", "confidence", "scores",
                                              "seconds", "snippets", "timeline", "error")},
                   outside_training=bool(row.get("outside_training")),
                   notes=row.get("notes", []))

    def to_dict(self, timeline: bool) -> dict:
        out = {"path": self.path, "label": self.label, "confidence": self.confidence,
               "scores": self.scores, "seconds": self.seconds, "snippets": self.snippets,
               "notes": self.notes, "outside_training": self.outside_training,
               "error": self.error}
        if timeline:
            out["timeline"] = self.timeline
        return out


@dataclass
class PredictReport:
    results: list[TrackResult]
    classes: list[str]
    bundle: Path
    seconds: float = 0.0
    resumed: int = 0
    truth: dict | None = None     # --evaluate: evaluate.folder_truth
    look_at: list[str] = field(default_factory=list)  # files written for the user
    next_steps: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TrackResult]:
        return [r for r in self.results if r.error]

    def table(self) -> str:
        """One line per track: path, label, confidence, top 3 (or the failure)."""
        width = min(60, max([len(r.path) for r in self.results] + [5]))
        lines = [f"{'track':<{width}}  {'label':<12} {'conf':>5}  top 3"]
        for r in self.results:
            name = r.path if len(r.path) <= width else "…" + r.path[-(width - 1):]
            if r.error:
                lines.append(f"{name:<{width}}  FAILED: {r.error}")
            else:
                top = ", ".join(f"{c} {s:.2f}" for c, s in r.top(3))
                lines.append(f"{name:<{width}}  {r.label:<12} {r.confidence:5.2f}  {top}")
                lines += [f"{'':<{width}}  note: {note}" for note in r.notes]
        return "\n".join(lines)

    def summary(self) -> list[str]:
        done = len(self.results) - len(self.failed)
        resumed = f" ({self.resumed} from the interrupted run)" if self.resumed else ""
        lines = [f"labelled {done} track(s){resumed}, failed {len(self.failed)}, in "
                 f"{self.seconds:.1f} s with bundle {self.bundle}"]
        outside = [r for r in self.results if r.outside_training]
        if outside:
            lines.append(f"  {len(outside)} track(s) unlike the training audio (see their "
                         "notes): their labels are less reliable")
        for r in self.failed:
            lines.append(f"  failed: {r.path}: {r.error}")
        if self.truth is not None:
            t = self.truth
            if t["count"]:
                mistakes = confusion_lines(t["confusion"], self.classes)
                lines.append(f"evaluated against folder names: {t['right']} of {t['count']} "
                             f"right ({t['right'] / t['count']:.2f})"
                             + (f"; mistakes: {', '.join(mistakes)}" if mistakes else ""))
            if t["skipped"]:
                lines.append(f"  not evaluated ({len(t['skipped'])}): failed, or the folder "
                             f"is not a class of the model ({', '.join(self.classes)})")
        lines += [f"look at: {item}" for item in self.look_at]
        lines += [f"next: {item}" for item in self.next_steps]
        return lines


def find_inputs(paths: list[str]) -> list[tuple[str, Path | None, str | None]]:
    """``(shown name, path or None, error or None)`` per track: files as given, folders
    searched recursively for audio extensions (sorted); a missing path is an error entry."""
    out = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                           and not p.name.startswith(".")
                           and not any(is_system_entry(part)
                                       for part in p.relative_to(path).parts))
            if not found:
                out.append((readable_name(raw), None, "folder holds no audio files "
                            f"(expected {', '.join(sorted(AUDIO_EXTENSIONS))})"))
            out += [(readable_name(str(p)), p, None) for p in found]
        elif path.exists():
            out.append((readable_name(raw), path, None))
        else:
            out.append((readable_name(raw), None, "not found"))
    return out


CHUNK_SNIPPETS = 256  # features computed at a time (~13 MB by default): a 4-minute
                     # track at hop 1 s is one chunk; a long track never holds them all


@dataclass(frozen=True)
class Prepared:
    """One track ready for the network: its prepared waveform, snippet starts, and the
    first chunk's model input (computed in the background thread)."""

    seconds: float
    notes: tuple[str, ...]
    unlike: tuple[str, ...]  # how the audio lies outside what the model was trained on
    y: np.ndarray            # (n_samples,) the waveform the features come from
    offset: int              # sample of the file where y starts
    starts: np.ndarray       # (n,) snippet starts in y, samples
    first: np.ndarray        # (min(n, CHUNK_SNIPPETS), n_frames, n_mels) model input


@dataclass(frozen=True)
class Predictor:
    """The bundle's model and settings, and the per-run options."""

    bundle: Bundle
    hop_seconds: float = DEFAULT_HOP_SECONDS
    rule: str = "sum"
    min_seconds: float = 1.0
    batch_size: int | None = None  # None: inference.batch_for_memory
    timeline: bool = False

    @property
    def params(self) -> PipelineParams:
        return self.bundle.params

    @property
    def scorer(self) -> Scorer:
        return self.bundle.scorer(self.batch_size)

    def decode(self, path: Path):
        a = self.params.audio
        decoded = decode(path, sample_rate=a.sample_rate, mixdown=a.mixdown)
        check_waveform(decoded.y, sample_rate=a.sample_rate, min_seconds=self.min_seconds,
                       silence_threshold_db=a.silence_threshold_db)
        return decoded

    def prepare(self, path: Path) -> Prepared:
        """Decode, check, profile and level ``path``, cut its snippets and compute the first
        chunk's model input (runs in the background thread, beside the network)."""
        p = self.params
        rate = p.audio.sample_rate
        decoded = self.decode(path)
        seconds = len(decoded.y) / rate
        notes = ((f"{seconds:.2f} s is shorter than one snippet: zero-padded",)
                 if seconds < p.slicing.snippet_seconds else ())
        unlike = range_notes(
            bandwidth_hz=bandwidth_hz(decoded.y, sample_rate=rate),
            loudness_db=loudness_db(decoded.y, sample_rate=rate),
            trained=self.bundle.info.get("training_audio"), params=p)
        y, offset = prepare_waveform(decoded.y, p.audio)
        del decoded
        starts = track_starts(len(y), snippet_samples=p.snippet_samples,
                              hop_samples=max(1, int(round(self.hop_seconds * rate))))
        return Prepared(seconds=seconds, notes=notes, unlike=tuple(unlike), y=y,
                        offset=offset, starts=starts,
                        first=self.model_input(y, starts[:CHUNK_SNIPPETS])[0])

    def model_input(self, y: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 model input of the snippets at ``starts`` and their starts
        on whole frames (samples)."""
        x, first = self.features(y, starts)
        return apply(x, self.bundle.stats).astype(np.float32, copy=False), first

    def features(self, y: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The snippets of ``y`` starting at ``starts`` (samples) as the build caches them:
        ``(n, n_frames, n_mels)`` in the build's dtype, before normalisation, and their
        starts moved to whole frames (samples)."""
        p = self.params
        x, first = snippet_features(y, starts, p)
        return x.astype(p.features.dtype, copy=False), first

    def label(self, name: str, prepared: Prepared) -> TrackResult:
        """Score ``prepared``'s snippets with the network, chunk by chunk, and aggregate."""
        p, hop = self.params, self.params.features.hop_length
        chunks = [self.scorer(prepared.first)]
        for i in range(CHUNK_SNIPPETS, len(prepared.starts), CHUNK_SNIPPETS):
            x, _ = self.model_input(prepared.y, prepared.starts[i:i + CHUNK_SNIPPETS])
            chunks.append(self.scorer(x))
        probs = np.concatenate(chunks)
        times = ((prepared.starts // hop) * hop + prepared.offset) / p.audio.sample_rate
        scores = aggregate(probs, self.rule)
        classes = self.bundle.classes
        best = int(np.argmax(scores))
        result = TrackResult(path=name, label=classes[best], confidence=float(scores[best]),
                             scores={c: round(float(s), 6) for c, s in zip(classes, scores)},
                             seconds=round(prepared.seconds, 3), snippets=len(probs))
        result.notes += [*prepared.notes, *prepared.unlike]
        result.outside_training = bool(prepared.unlike)
        if self.timeline:
            result.timeline = [
                {"start": round(float(t), 3), "label": classes[int(np.argmax(row))],
                 "scores": {c: round(float(v), 6) for c, v in zip(classes, row)}}
                for t, row in zip(times, probs)]
        return result


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


def _partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial.jsonl")


def _run_signature(bundle: Bundle, options: dict) -> str:
    text = json.dumps({"bundle": bundle.info.get("trained"),
                       "signature": bundle.info.get("signature"), **options}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _load_partial(path: Path, signature: str) -> dict[str, dict]:
    """Finished tracks of an interrupted run with the same signature (a torn last line
    from a kill is ignored)."""
    done: dict[str, dict] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return done
    if not lines:
        return done
    try:
        if json.loads(lines[0]).get("signature") != signature:
            return done
    except (ValueError, AttributeError):
        return done
    for line in lines[1:]:
        try:
            row = json.loads(line)
            done[row["path"]] = row
        except (ValueError, KeyError, TypeError):
            continue
    return done


def write_output(path: Path, results: list[TrackResult], classes: list[str],
                 timeline: bool) -> None:
    """CSV (one row per track, or per snippet with ``timeline``) or JSON, atomically."""
    if path.suffix.lower() == ".json":
        data = json.dumps({"classes": classes,
                           "tracks": [r.to_dict(timeline) for r in results]},
                          indent=2, ensure_ascii=False).encode("utf-8")
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        head = ["path", "label", "confidence", "seconds", "snippets", "error", "notes"]
        if timeline:
            writer.writerow(head[:2] + ["start", "snippet_label"] + classes)
            for r in results:
                for row in r.timeline or []:
                    writer.writerow([r.path, r.label, row["start"], row["label"],
                                     *(row["scores"][c] for c in classes)])
        else:
            writer.writerow(head + classes)
            for r in results:
                writer.writerow([r.path, r.label or "", "" if r.confidence is None
                                 else f"{r.confidence:.6f}", r.seconds or "", r.snippets,
                                 r.error or "", "; ".join(r.notes),
                                 *((r.scores or {}).get(c, "") for c in classes)])
        data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def plot_timeline(path: Path, result: TrackResult, classes: list[str]) -> None:
    """Per-snippet class probabilities over time (stacked areas) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = np.array([row["start"] for row in result.timeline])
    probs = np.array([[row["scores"][c] for c in classes] for row in result.timeline])
    fig, ax = plt.subplots(figsize=(10, 4))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    colors = [cmap(i % cmap.N) for i in range(len(classes))]
    if len(starts) == 1:
        starts, probs = np.array([starts[0], starts[0] + 1]), np.repeat(probs, 2, axis=0)
    ax.stackplot(starts, probs.T, labels=classes, colors=colors, alpha=0.85)
    ax.set_xlim(starts[0], starts[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("snippet start (s)")
    ax.set_ylabel("probability")
    ax.set_title(f"{Path(result.path).name}: {result.label} ({result.confidence:.2f})")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))


def _plot_name(name: str, used: set[str]) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)
    candidate, i = stem + ".png", 1
    while candidate in used:
        i += 1
        candidate = f"{stem}-{i}.png"
    used.add(candidate)
    return candidate


def predict_tracks(paths: list[str], *, model_dir: Path | None = None,
                   bundle: Bundle | None = None, current: PipelineParams | None = None,
                   hop_seconds: float = DEFAULT_HOP_SECONDS, rule: str = "sum", min_seconds: float | None = None,
                   output: Path | None = None, timeline: bool = False,
                   plot_dir: Path | None = None, evaluate: bool = False,
                   progress: bool = True) -> PredictReport:
    """Label every track in ``paths`` (see the module docstring).

    Pass a loaded ``bundle`` or its ``model_dir``. A failed track is a
    :class:`TrackResult` with ``error`` set; the run goes on.
    """
    started = time.monotonic()
    _check_options(rule, hop_seconds, output)
    if bundle is None:
        bundle = load_bundle(model_dir, current=current)
    predictor = Predictor(bundle, hop_seconds=hop_seconds, rule=rule,
                          min_seconds=(bundle.params.slicing.min_track_seconds
                                       if min_seconds is None else min_seconds),
                          timeline=timeline or plot_dir is not None)
    inputs = find_inputs(paths)
    report = PredictReport(results=[], classes=bundle.classes, bundle=bundle.folder)
    done, partial = _open_partial(output, predictor) if output is not None else ({}, None)
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
    engine = current.engine if current is not None else None
    try:
        if engine is not None and engine.kind == "dask":
            _label_on_dask(inputs, predictor, done, partial, plot_dir, report, progress,
                           current)
        else:
            _label_all(inputs, predictor, done, partial, plot_dir, report, progress)
    finally:
        if partial is not None:
            os.fsync(partial.fileno())
            partial.close()
    if output is not None:
        write_output(output, report.results, bundle.classes, timeline)
        _partial_path(output).unlink()
    if evaluate:
        report.truth = folder_truth(report.results, bundle.classes)
    _closing_lines(report, bundle, plot_dir)
    report.seconds = time.monotonic() - started
    return report


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
    curves = bundle.folder / "curves.png"
    if curves.exists():
        report.look_at.append(f"{curves}: the training curves; the validation and test "
                              f"confusion matrices are beside it")
    trained_on = Path(str(bundle.params.paths.input_dir))
    if trained_on.parts[-2:] == (DEMO_FOLDER, "labelled"):
        report.next_steps += [
            "your own music: set paths.input_dir in pipeline_parameters.json to a folder "
            "with one sub-folder per class, then run the four scripts again",
            "a small collection (tens of tracks per class): add \"backbone\": "
            "\"musicnn-msd\" to the model section (a pretrained network; see README)"]


def _check_options(rule: str, hop_seconds: float, output: Path | None) -> None:
    if rule not in RULES:
        raise StageError(f"Unknown aggregation '{rule}'. Expected one of {', '.join(RULES)}.")
    if not hop_seconds > 0:
        raise StageError(f"The --hop value must be a positive number of seconds. Got "
                         f"{hop_seconds} instead.")
    if output is not None and output.suffix.lower() not in OUTPUT_FORMATS:
        raise StageError(f"Output file '{output}' must end in .csv or .json.")
    if output is not None and not output.parent.is_dir():
        raise StageError(f"Cannot write '{output}': folder '{output.parent}' does not exist.")


def _open_partial(output: Path, predictor: Predictor):
    """``(finished rows of an interrupted run with the same options, the partial file
    opened for appending)``; the file is first rewritten with just those rows."""
    signature = _run_signature(predictor.bundle, {
        "hop": predictor.hop_seconds, "rule": predictor.rule, "min": predictor.min_seconds,
        "timeline": predictor.timeline})
    partial_path = _partial_path(output)
    done = _load_partial(partial_path, signature)
    lines = [json.dumps({"signature": signature})] + [
        json.dumps(row, ensure_ascii=False) for row in done.values()]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    atomic_write(partial_path, lambda f: f.write(data))
    return done, open(partial_path, "a", encoding="utf-8")


def _label_all(inputs: list, predictor: Predictor, done: dict[str, dict], partial,
               plot_dir: Path | None, report: PredictReport, progress: bool) -> None:
    """Label ``inputs`` in order into ``report``, decoding the next track in a
    background thread meanwhile; each new result is appended to ``partial``."""
    classes = predictor.bundle.classes
    used_names: set[str] = set()

    def start_decode(item):
        name, path, error = item
        if error or name in done:
            return None
        return pool.submit(predictor.prepare, path)

    with _c_stderr_to_devnull(), ThreadPoolExecutor(1) as pool:
        bar = tqdm(total=len(inputs), unit="track", desc="labelling",
                   disable=not progress or len(inputs) < 2)
        pending = start_decode(inputs[0]) if inputs else None
        try:
            for i, (name, path, error) in enumerate(inputs):
                future = pending
                pending = start_decode(inputs[i + 1]) if i + 1 < len(inputs) else None
                if name in done:
                    result = TrackResult.from_row(done[name])
                    report.resumed += 1
                elif error:
                    result = TrackResult(path=name, error=error)
                else:
                    result = _label_one(predictor, name, future.result)
                    _keep_new(result, plot_dir, used_names, classes, partial)
                report.results.append(result)
                if result.error:
                    logger.error("%s: %s", name, result.error)
                bar.update(1)
        finally:
            bar.close()
            if pending is not None:
                pending.cancel()


@dataclass(frozen=True)
class LabelTask:
    """One track to label on a Dask worker: everything it needs, explicitly."""

    name: str
    path: Path
    bundle_dir: Path
    options: tuple  # (hop_seconds, rule, min_seconds, timeline)


@functools.lru_cache(maxsize=2)
def _worker_predictor(bundle_dir: Path, options: tuple) -> Predictor:
    """The worker process's predictor: the bundle is loaded (and traced) once per worker."""
    hop, rule, min_seconds, timeline = options
    return Predictor(load_bundle(bundle_dir), hop_seconds=hop, rule=rule,
                     min_seconds=min_seconds, timeline=timeline)


def label_task(task: LabelTask) -> dict:
    """Label one track on a worker; the row :meth:`TrackResult.from_row` reads."""
    predictor = _worker_predictor(task.bundle_dir, task.options)
    return _label_one(predictor, task.name,
                      lambda: predictor.prepare(task.path)).to_dict(True)


def _label_on_dask(inputs: list, predictor: Predictor, done: dict[str, dict], partial,
                   plot_dir: Path | None, report: PredictReport, progress: bool,
                   params: PipelineParams) -> None:
    """:func:`_label_all` on the Dask cluster of ``params.engine``: each worker loads the
    bundle once; results stream back here, where the partial file, plots and report are
    written as they arrive; the report keeps the input order."""
    from .executor import DaskExecutor

    p = predictor
    options = (p.hop_seconds, p.rule, p.min_seconds, p.timeline)
    tasks = [LabelTask(name, path.resolve(), p.bundle.folder.resolve(), options)
             for name, path, error in inputs if not error and name not in done]
    rows: dict[str, TrackResult] = {}

    def lost(task: LabelTask, kills: int) -> dict:
        return TrackResult(path=task.name, error=f"it stopped the worker process {kills} "
                                                 "times (a decoder crash?)").to_dict(True)

    used_names: set[str] = set()
    executor = DaskExecutor(params.n_workers, params.engine.address)
    try:
        bar = tqdm(total=len(tasks), unit="track", desc="labelling", disable=not progress)
        for row in executor.map_unordered(label_task, tasks, on_lost=lost):
            result = TrackResult.from_row(row)
            rows[result.path] = result
            _keep_new(result, plot_dir, used_names, report.classes, partial)
            bar.update(1)
        bar.close()
    finally:
        executor.close()
    for name, _, error in inputs:
        if name in done:
            report.results.append(TrackResult.from_row(done[name]))
            report.resumed += 1
        else:
            report.results.append(rows.get(name) or TrackResult(path=name, error=error))
        if report.results[-1].error:
            logger.error("%s: %s", name, report.results[-1].error)


def _keep_new(result: TrackResult, plot_dir: Path | None, used_names: set[str],
              classes: list[str], partial) -> None:
    """What a newly labelled track leaves behind: its plot and its partial-file line."""
    if plot_dir is not None and not result.error:
        plot_timeline(plot_dir / _plot_name(result.path, used_names), result, classes)
    if partial is not None:
        partial.write(json.dumps(result.to_dict(True), ensure_ascii=False) + "\n")
        partial.flush()


def _label_one(predictor: Predictor, name: str, prepared) -> TrackResult:
    """Label ``name`` from ``prepared()`` (a :class:`Prepared`); a bad track becomes a
    result with its error."""
    try:
        return predictor.label(name, prepared())
    except AudioError as exc:
        return TrackResult(path=name, error=str(exc))
    except MemoryError:
        return TrackResult(path=name, error="not enough memory to decode it")
