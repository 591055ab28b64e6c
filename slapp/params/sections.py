"""The parameters as frozen dataclasses, one per section of ``pipeline_parameters.json``;
derived sizes are properties. :mod:`slapp.params.load` fills them from the JSON."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from slapp.dsp.slicing import SnippetPlan
from slapp.models import backbones
from slapp.models.backbones.base import InputSpec
from slapp.models.backbones.crnn import CrnnParams
from slapp.models.backbones.musicnn_msd import MusicnnParams
from slapp.spec import param, section


@dataclass(frozen=True)
class PathsParams:
    """Where the labelled music is and where every stage writes."""

    input_dir: Path = param(None, "path", doc="one sub-folder per class")
    output_dir: Path = param(Path("output"), "path", doc="all stage outputs")
    model_dir: Path | None = param(None, "path", nullable=True,
                                    doc="the model bundle; null: <output_dir>/model")
    unlabelled_dir: Path | None = param(
        None, "path", nullable=True,
        doc="your library: unlabelled tracks (any folders) that training also learns from "
            "(training.library); never in validation or test")
    labels_file: Path | None = param(
        None, "path", nullable=True,
        doc="CSV path,label: tracks you labelled outside the class folders (the "
            "to-label.csv of predict_track.py --suggest, filled in); they join training")


@dataclass(frozen=True)
class AudioParams:
    """Decoding: every track becomes a mono float32 waveform at ``sample_rate``."""

    sample_rate: int = param(22050, "int", lo=8000, hi=192000)
    mixdown: str = param("mean", "str", choices=("mean", "first"))
    silence_threshold_db: float = param(-60.0, "float", lo=-120.0, hi=0.0)
    trim_silence: bool = param(False, "bool")
    loudness_db: float | None = param(None, "float", lo=-60.0, hi=0.0, nullable=True)


@dataclass(frozen=True)
class SlicingParams:
    """How a track is cut into overlapping fixed-length snippets."""

    snippet_seconds: float = param(3.0, "float", lo=0.1, hi=60.0)
    overlap_seconds: float = param(1.0, "float", lo=0.0)
    max_snippets_per_track: int | None = param(14, "int", lo=1, nullable=True)
    selection: str = param("even", "str", choices=("even", "random"))
    seed: int = param(0, "int", lo=0)
    min_track_seconds: float = param(1.0, "float", lo=0.0)


@dataclass(frozen=True)
class FeatureParams:
    """Log-mel spectrogram of each snippet, stored as ``(n_frames, n_mels)``."""

    n_fft: int = param(2048, "int", lo=16, hi=65536)
    hop_length: int = param(512, "int", lo=1)
    n_mels: int = param(100, "int", lo=1, hi=1024)
    fmin: float = param(0.0, "float", lo=0.0)
    fmax: float | None = param(None, "float", lo=0.0, lo_open=True, nullable=True)
    log_reference: float = param(1.0, "float", lo=0.0, lo_open=True)
    log_amin: float = param(1e-10, "float", lo=0.0, lo_open=True)
    dtype: str = param("float32", "str", choices=("float32", "float16"))


@dataclass(frozen=True)
class SplitParams:
    """Track-wise train/validation/test split, stratified per class."""

    val_share: float = param(0.1, "float", lo=0.0, hi=1.0, hi_open=True)
    test_share: float = param(0.1, "float", lo=0.0, hi=1.0, hi_open=True)
    seed: int = param(42, "int", lo=0)
    method: str = param("auto", "str", choices=("auto", "artist", "random", "blocks"),
                         doc="auto: by artist when most tracks carry one, else random")
    file: Path | None = param(None, "path", nullable=True)
    groups_file: Path | None = param(None, "path", nullable=True,
                                      doc="CSV path,artist for tracks without artist tags")


@dataclass(frozen=True)
class ProcessParams:
    """Stage 2: normalisation of the training arrays and their shuffling."""

    normalization: str = param("standard", "str",
                                choices=("standard", "minmax", "nonzero_minmax", "none"))
    seed: int = param(0, "int", lo=0)


@dataclass(frozen=True)
class ModelParams:
    """The network: ``backbone`` names it; each backbone's own settings are its section
    (``model.crnn``: the CRNN of Choi et al. 2017 trained from scratch on the log-mels;
    ``model.musicnn``: the classifier head on the frozen, pretrained musicnn network)."""

    # pretrained: 0.81 against the CRNN's 0.57 on artists never heard (BENCHMARKS.md)
    backbone: str = param("musicnn-msd", "str", choices=backbones.NAMES)
    crnn: CrnnParams = section(CrnnParams)
    musicnn: MusicnnParams = section(MusicnnParams)


@dataclass(frozen=True)
class LibraryParams:
    """``training.library``: what stage 3 does with ``paths.unlabelled_dir``
    (:mod:`slapp.models.self_training`; BENCHMARKS.md, "Learning from the library")."""

    suggest: int = param(10, "int", lo=0, hi=10000,
                         doc="keep this many library tracks to label in the labels file "
                             "(paths.labels_file, else <output_dir>/to-label.csv); 0: none")
    # off: on gtzan-mini's artist folds neither method labelled the held-out artists
    # better (a small labelled collection: worse); BENCHMARKS.md
    method: str = param("off", "str", choices=("off", "self-train", "propagate"),
                        doc="self-train: a second round adds the library tracks the first "
                            "model labels confidently; propagate: their scores are first "
                            "smoothed over each track's nearest neighbours; off: no round")
    min_confidence: float = param(0.8, "float", lo=0.0, hi=1.0, lo_open=True,
                                  doc="a library track joins training with this score or more")
    neighbours: int = param(10, "int", lo=1, hi=1000)
    alpha: float = param(0.8, "float", lo=0.0, hi=1.0, hi_open=True,
                         doc="weight of the neighbours against the track's own score")


@dataclass(frozen=True)
class TrainingParams:
    """Stage 3: Adam on categorical cross-entropy with the usual Keras callbacks."""

    batch_size: int = param(32, "int", lo=1, hi=65536)
    learning_rate: float = param(1e-3, "float", lo=0.0, hi=1.0, lo_open=True)
    epochs: int = param(30, "int", lo=1, hi=100000)
    early_stopping_patience: int = param(6, "int", lo=1)
    reduce_lr_patience: int = param(3, "int", lo=1)
    reduce_lr_factor: float = param(0.5, "float", lo=0.0, hi=1.0, lo_open=True,
                                     hi_open=True)
    class_weights: str = param("none", "str", choices=("none", "balanced"))
    augment_gain_db: float = param(6.0, "float", lo=0.0, hi=40.0)
    augment_time_masks: int = param(0, "int", lo=0, hi=10)
    augment_freq_masks: int = param(0, "int", lo=0, hi=10)
    augment_mixup_alpha: float = param(0.0, "float", lo=0.0, hi=10.0)
    augment_lowpass: float = param(0.0, "float", lo=0.0, hi=1.0)
    augment_lowpass_min_hz: float = param(3500.0, "float", lo=0.0, lo_open=True)
    precision: str = param("float32", "str", choices=("float32", "mixed_bfloat16"))
    seed: int = param(0, "int", lo=0)
    none_below: float = param(0.2, "float", lo=0.0, hi=1.0)
    library: LibraryParams = section(LibraryParams)


@dataclass(frozen=True)
class EngineParams:
    """Where per-track work runs (the build's and prediction's): this machine (``local``), or a
    Dask cluster (``dask``): a LocalCluster of ``workers`` processes when ``address`` is
    null, else the running scheduler at ``address`` (e.g. ``tcp://10.0.0.5:8786``)."""

    kind: str = param("local", "str", choices=("local", "dask"))
    address: str | None = param(None, "str", nullable=True)
    runtime: str = param("auto", "str", choices=("auto", "onnxruntime", "openvino",
                                                 "openvino-f32", "openvino-bf16"))


@dataclass(frozen=True)
class PipelineParams:
    """Everything in ``pipeline_parameters.json``; derived sizes are properties."""

    paths: PathsParams
    audio: AudioParams = field(default_factory=AudioParams)
    slicing: SlicingParams = field(default_factory=SlicingParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    split: SplitParams = field(default_factory=SplitParams)
    process: ProcessParams = field(default_factory=ProcessParams)
    model: ModelParams = field(default_factory=ModelParams)
    training: TrainingParams = field(default_factory=TrainingParams)
    engine: EngineParams = field(default_factory=EngineParams)
    workers: int | None = param(None, "int", lo=1, hi=1024, nullable=True)
    source: Path | None = field(default=None, compare=False)
    # "features.n_mels 128"...: what the file sets that the chosen backbone ignores
    ignored: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def snippet_samples(self) -> int:
        """Samples in one snippet."""
        return int(round(self.slicing.snippet_seconds * self.audio.sample_rate))

    @property
    def hop_samples(self) -> int:
        """Samples between the starts of two consecutive snippets."""
        hop = self.slicing.snippet_seconds - self.slicing.overlap_seconds
        return int(round(hop * self.audio.sample_rate))

    def snippet_plan(self, purpose: str, *, hop_seconds: float | None = None,
                     max_snippets: int | None = None) -> SnippetPlan:
        """The snippets used of each track (:class:`~slapp.dsp.slicing.SnippetPlan`),
        every ``slicing`` hop (or ``hop_seconds``):

        - ``"train"``: the build's cached snippets: whole hops only, at most
          ``slicing.max_snippets_per_track`` chosen by ``slicing.selection``;
        - ``"label"``: prediction's and stage 3's track figures: the whole track, its
          tail included, every snippet unless ``max_snippets`` (``--max-snippets``);
          the audit takes its few per track the same way.
        """
        hop = (self.hop_samples if hop_seconds is None
               else max(1, int(round(hop_seconds * self.audio.sample_rate))))
        if purpose == "train":
            s = self.slicing
            return SnippetPlan(self.snippet_samples, hop, tail=False,
                               max_snippets=s.max_snippets_per_track, selection=s.selection)
        if purpose == "label":
            return SnippetPlan(self.snippet_samples, hop, tail=True,
                               max_snippets=max_snippets or None)
        raise ValueError(f"purpose={purpose!r} must be 'train' or 'label'")

    @property
    def n_frames(self) -> int:
        """Spectrogram frames per snippet, as the backbone computes them: 130 for 3 s at
        22050/512 (centred STFT); 187 for musicnn (its 3-second patch)."""
        return self.backbone.n_frames(self.input_spec)

    @property
    def input_spec(self) -> InputSpec:
        """The audio and feature settings in force, as plain values: what a backbone's
        input is computed from (the backbones read nothing else of the parameters for it)."""
        f = self.features
        return InputSpec(sample_rate=self.audio.sample_rate,
                         snippet_samples=self.snippet_samples, n_fft=f.n_fft,
                         hop_length=f.hop_length, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax,
                         log_reference=f.log_reference, log_amin=f.log_amin)

    @property
    def backbone(self) -> backbones.Backbone:
        """The backbone ``model.backbone`` names (:mod:`slapp.models.backbones`)."""
        return backbones.get(self.model.backbone)

    @property
    def model_dir(self) -> Path:
        """The model bundle folder: ``paths.model_dir`` or ``<output_dir>/model``."""
        return self.paths.model_dir or Path(self.paths.output_dir) / "model"

    @property
    def n_workers(self) -> int:
        """Worker processes: ``workers`` or every core this process may use."""
        if self.workers is not None:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # macOS, Windows
            return max(1, os.cpu_count() or 1)

    def to_dict(self) -> dict:
        """Every parameter as the JSON object ``params_from_dict`` accepts."""
        out = {name: to_json(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}
        out["workers"] = self.workers
        return out

    def feature_settings(self) -> dict:
        """The parameters that shape the cached features (JSON-ready)."""
        out = {name: to_json(dataclasses.asdict(getattr(self, name)))
               for name in ("audio", "slicing", "features")}
        for key, off in LEVELLING_OFF.items():  # off: caches made before these keys match
            if out["audio"][key] == off:
                del out["audio"][key]
        if self.backbone.separate_cache:  # other input scaling: another cache
            out["backbone"] = self.model.backbone
        out["framing"] = "track"  # cache.FRAMING: caches cut per snippet do not match
        return out


LEVELLING_OFF = {"trim_silence": False, "loudness_db": None}

SECTIONS = {"paths": PathsParams, "audio": AudioParams, "slicing": SlicingParams,
             "features": FeatureParams, "split": SplitParams, "process": ProcessParams,
             "model": ModelParams, "training": TrainingParams, "engine": EngineParams}


def to_json(value):
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    return value
