"""One track labelled by a bundle: :class:`PredictOptions` (how), :class:`Predictor`
(decode → snippet plan → features → the bundle's network → one label by
:func:`slapp.dsp.aggregate.aggregate`). The loop over many tracks is
:mod:`slapp.stages.label.predict`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slapp.dsp.aggregate import RULES, aggregate
from slapp.dsp.coverage import model_band_hz, range_notes
from slapp.dsp.normalization import apply
from slapp.errors import StageError
from slapp.spec import NONE
from slapp.params import PipelineParams
from slapp.stages.build.prepare import PreparedTrack, prepare_track
from slapp.stages.label.outputs import TrackResult
from slapp.stages.train.bundle import Bundle

CHUNK_SNIPPETS = 64  # about this many snippets featurised and scored at a time (~3 MB):
                     # rounded down to whole inference batches (the bundle's batch)


@dataclass(frozen=True)
class PredictOptions:
    """How tracks are labelled; validated here, used by the script, the loop and the
    resume signature alike."""

    hop_seconds: float | None = None          # None: the bundle's slicing hop (2 s)
    rule: str = "sum"                         # one of dsp.aggregate.RULES
    min_seconds: float | None = None          # None: the bundle's slicing.min_track_seconds
    timeline: bool = False                    # keep per-snippet scores
    max_snippets: int | None = None           # None or 0: every snippet
    batch_size: int | None = None             # None: the engine's (Bundle.batch_size)
    embed: bool = False                       # keep each track's mean embedding (--suggest)
    none_below: float | None = None           # None: the bundle's; 0: never "none"

    def __post_init__(self):
        if self.rule not in RULES:
            raise StageError(f"Unknown aggregation '{self.rule}'. Expected one of "
                             f"{', '.join(RULES)}.")
        if self.hop_seconds is not None and not (isinstance(self.hop_seconds, (int, float))
                                                 and self.hop_seconds > 0):
            raise StageError("The --hop value must be a positive number of seconds. Got "
                             f"{self.hop_seconds} instead.")
        if self.min_seconds is not None and not self.min_seconds >= 0:
            raise StageError("The --min-seconds value must be a number of seconds >= 0. "
                             f"Got {self.min_seconds} instead.")
        if self.max_snippets is not None and not (isinstance(self.max_snippets, int)
                                                  and self.max_snippets >= 0):
            raise StageError("The --max-snippets value must be a whole number >= 0 (0: "
                             f"every snippet). Got {self.max_snippets} instead.")
        if self.none_below is not None and not (isinstance(self.none_below, (int, float))
                                                and 0 <= self.none_below <= 1):
            raise StageError("The --none-below value must be a number from 0 to 1 (0: never "
                             f"none). Got {self.none_below} instead.")
        if self.batch_size is not None and not self.batch_size >= 1:
            raise StageError(f"The batch size must be >= 1. Got {self.batch_size} instead.")

    def signature(self) -> dict:
        """The options an interrupted run must share to be continued."""
        out = dataclasses.asdict(self)
        del out["batch_size"]  # changes speed, not results
        return out


@dataclass(frozen=True)
class Prepared:
    """One track ready for the network: the prepared track, how its audio lies outside
    what the model was trained on, its snippet starts (samples of ``track.y``) and the
    first chunk's model input and start times (computed in the background)."""

    track: PreparedTrack
    unlike: tuple[str, ...]
    starts: np.ndarray
    first: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Predictor:
    """The bundle's model and settings, and the run's :class:`PredictOptions`."""

    bundle: Bundle
    options: PredictOptions = PredictOptions()

    @property
    def params(self) -> PipelineParams:
        return self.bundle.params

    @property
    def chunk(self) -> int:
        """Snippets featurised and scored at a time: whole inference batches, about
        :data:`CHUNK_SNIPPETS` (no batch but a track's last is padded)."""
        batch = self.bundle.batch_size(self.options.batch_size)
        return batch * max(1, CHUNK_SNIPPETS // batch)

    @property
    def min_seconds(self) -> float:
        o = self.options
        return self.params.slicing.min_track_seconds if o.min_seconds is None else o.min_seconds

    @property
    def max_snippets(self) -> int | None:
        """At most this many snippets per track, spread evenly over it (``--max-snippets``;
        None: every snippet, as the method says)."""
        return self.options.max_snippets or None

    def prepare(self, path: Path) -> Prepared:
        """Decode, check, profile and level ``path``, choose its snippets and compute the
        first chunk's model input (runs in the background thread, beside the network)."""
        p = self.params
        track = prepare_track(path, p, min_seconds=self.min_seconds)
        unlike = range_notes(bandwidth_hz=track.bandwidth_hz, loudness_db=track.loudness_db,
                             trained=self.bundle.info.get("training_audio"),
                             band_hz=model_band_hz(p.audio.sample_rate, p.features.fmax),
                             levelled=p.audio.loudness_db is not None)
        plan = p.snippet_plan("label", hop_seconds=self.options.hop_seconds,
                              max_snippets=self.max_snippets)
        starts = plan.starts(len(track.y))
        return Prepared(track=track, unlike=tuple(unlike), starts=starts,
                        first=self.model_input(track, starts[:self.chunk]))

    def model_input(self, track: PreparedTrack, starts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 model input ``(n, n_frames, n_mels)`` of the snippets at
        ``starts`` and their start times (s) in the file."""
        x, times = track.features(starts, self.params)
        return apply(x, self.bundle.stats).astype(np.float32, copy=False), times

    def label(self, name: str, prepared: Prepared) -> TrackResult:
        """Score ``prepared``'s snippets with the network, chunk by chunk, and aggregate."""
        scorer = self.bundle.scorer(self.options.batch_size)
        known = self.bundle.known
        embed = ((self.options.embed or known is not None and known.reference is not None)
                 and getattr(scorer, "has_embedding", False))
        score = scorer.with_embedding if embed else (lambda rows: (scorer(rows), None))
        near_tie = scorer.near_tie if getattr(scorer, "tie_margin", 0) else None
        x, times = prepared.first
        chunks, embs, all_times, inputs = [], [], [], []
        for i in range(0, len(prepared.starts), self.chunk):
            if i:
                x, times = self.model_input(prepared.track, prepared.starts[i:i + self.chunk])
            p, e = score(x)
            chunks.append(p)
            embs.append(e)
            all_times.append(times)
            if near_tie:
                inputs.append(x)  # kept for a full-precision re-score (~6 MB a 3-min track)
        probs, times = np.concatenate(chunks), np.concatenate(all_times)
        scores = aggregate(probs, self.options.rule)
        rescored = bool(near_tie and near_tie(scores))
        if rescored:  # bf16 could flip this label: the f32 path decides
            probs = scorer.exact()(np.concatenate(inputs))
            scores = aggregate(probs, self.options.rule)
        classes = self.bundle.classes
        best = int(np.argmax(scores))
        result = TrackResult(path=name, label=classes[best], confidence=float(scores[best]),
                             scores={c: round(float(s), 6) for c, s in zip(classes, scores)},
                             seconds=round(prepared.track.seconds, 3), snippets=len(probs),
                             notes=[*prepared.track.notes, *prepared.unlike],
                             outside_training=bool(prepared.unlike), rescored=rescored)
        if known is not None:
            self._judge(result, known, np.concatenate(embs) if embed else None)
        if embed and self.options.embed:
            result.embedding = [round(float(v), 5)
                                for v in np.concatenate(embs).mean(axis=0)]
        if self.options.timeline:
            result.timeline = [
                {"start": round(float(t), 3), "label": classes[int(np.argmax(row))],
                 "scores": {c: round(float(v), 6) for c, v in zip(classes, row)}}
                for t, row in zip(times, probs)]
        return result

    def _judge(self, result: TrackResult, known, embeddings: np.ndarray | None) -> None:
        """Set ``result.known`` and, below the threshold, the label ``none`` (the model's
        best class stays in ``result.guess``)."""
        score = known.score(result.confidence, embeddings)
        if score is None:
            return
        result.known = round(score, 4)
        threshold = known.threshold if self.options.none_below is None else self.options.none_below
        if score < threshold:
            result.guess, result.label = result.label, NONE
