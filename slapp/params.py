"""``pipeline_parameters.json``: read once into frozen, validated dataclasses.

Nothing else in slapp reads the JSON. Every violation is refused with one sentence that
names the key path, what is expected and what was given, e.g.::

    The 'slicing.overlap_seconds' parameter must be a number in the range [0, 3.0).
    Got 3.0 instead.

Relative paths in the file are resolved against the folder that holds the file, so the
scripts work from any current directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slapp.errors import ParameterError
from slapp.models import backbones
from slapp.models.backbones.crnn import CrnnParams
from slapp.models.backbones.musicnn_msd import MusicnnParams
from slapp.spec import param, section


DEFAULT_PARAMS_FILE = "pipeline_parameters.json"


_param = param


@dataclass(frozen=True)
class PathsParams:
    """Where the labelled music is and where every stage writes."""

    input_dir: Path = _param(None, "path", doc="one sub-folder per class")
    output_dir: Path = _param(Path("output"), "path", doc="all stage outputs")
    model_dir: Path | None = _param(None, "path", nullable=True,
                                    doc="the model bundle; null: <output_dir>/model")


@dataclass(frozen=True)
class AudioParams:
    """Decoding: every track becomes a mono float32 waveform at ``sample_rate``."""

    sample_rate: int = _param(22050, "int", lo=8000, hi=192000)
    mixdown: str = _param("mean", "str", choices=("mean", "first"))
    silence_threshold_db: float = _param(-60.0, "float", lo=-120.0, hi=0.0)
    trim_silence: bool = _param(False, "bool")
    loudness_db: float | None = _param(None, "float", lo=-60.0, hi=0.0, nullable=True)


@dataclass(frozen=True)
class SlicingParams:
    """How a track is cut into overlapping fixed-length snippets."""

    snippet_seconds: float = _param(3.0, "float", lo=0.1, hi=60.0)
    overlap_seconds: float = _param(1.0, "float", lo=0.0)
    max_snippets_per_track: int | None = _param(14, "int", lo=1, nullable=True)
    selection: str = _param("even", "str", choices=("even", "random"))
    seed: int = _param(0, "int", lo=0)
    min_track_seconds: float = _param(1.0, "float", lo=0.0)


@dataclass(frozen=True)
class FeatureParams:
    """Log-mel spectrogram of each snippet, stored as ``(n_frames, n_mels)``."""

    n_fft: int = _param(2048, "int", lo=16, hi=65536)
    hop_length: int = _param(512, "int", lo=1)
    n_mels: int = _param(100, "int", lo=1, hi=1024)
    fmin: float = _param(0.0, "float", lo=0.0)
    fmax: float | None = _param(None, "float", lo=0.0, lo_open=True, nullable=True)
    log_reference: float = _param(1.0, "float", lo=0.0, lo_open=True)
    log_amin: float = _param(1e-10, "float", lo=0.0, lo_open=True)
    dtype: str = _param("float32", "str", choices=("float32", "float16"))


@dataclass(frozen=True)
class SplitParams:
    """Track-wise train/validation/test split, stratified per class."""

    val_share: float = _param(0.1, "float", lo=0.0, hi=1.0, hi_open=True)
    test_share: float = _param(0.1, "float", lo=0.0, hi=1.0, hi_open=True)
    seed: int = _param(42, "int", lo=0)
    method: str = _param("auto", "str", choices=("auto", "artist", "random", "blocks"),
                         doc="auto: by artist when most tracks carry one, else random")
    file: Path | None = _param(None, "path", nullable=True)
    groups_file: Path | None = _param(None, "path", nullable=True,
                                      doc="CSV path,artist for tracks without artist tags")


@dataclass(frozen=True)
class ProcessParams:
    """Stage 2: normalisation of the training arrays and their shuffling."""

    normalization: str = _param("standard", "str",
                                choices=("standard", "minmax", "nonzero_minmax", "none"))
    seed: int = _param(0, "int", lo=0)


@dataclass(frozen=True)
class ModelParams:
    """The network: ``backbone`` names it; each backbone's own settings are its section
    (``model.crnn``: the CRNN of Choi et al. 2017 trained from scratch on the log-mels;
    ``model.musicnn``: the classifier head on the frozen, pretrained musicnn network)."""

    # pretrained: 0.81 against the CRNN's 0.57 on artists never heard (BENCHMARKS.md)
    backbone: str = _param("musicnn-msd", "str", choices=backbones.NAMES)
    crnn: CrnnParams = section(CrnnParams)
    musicnn: MusicnnParams = section(MusicnnParams)


# keys of the flat ``model`` section before the backbones owned their settings
LEGACY_MODEL_KEYS = {"conv_filters": ("crnn", "conv_filters"),
                     "pool_sizes": ("crnn", "pool_sizes"),
                     "recurrent": ("crnn", "recurrent"),
                     "gru_units": ("crnn", "recurrent_units"),
                     "conv_dropout": ("crnn", "conv_dropout"),
                     "gru_dropout": ("crnn", "recurrent_dropout"),
                     "fine_tune": ("musicnn", "fine_tune")}


@dataclass(frozen=True)
class TrainingParams:
    """Stage 3: Adam on categorical cross-entropy with the usual Keras callbacks."""

    batch_size: int = _param(32, "int", lo=1, hi=65536)
    learning_rate: float = _param(1e-3, "float", lo=0.0, hi=1.0, lo_open=True)
    epochs: int = _param(30, "int", lo=1, hi=100000)
    early_stopping_patience: int = _param(6, "int", lo=1)
    reduce_lr_patience: int = _param(3, "int", lo=1)
    reduce_lr_factor: float = _param(0.5, "float", lo=0.0, hi=1.0, lo_open=True,
                                     hi_open=True)
    class_weights: str = _param("none", "str", choices=("none", "balanced"))
    augment_gain_db: float = _param(6.0, "float", lo=0.0, hi=40.0)
    augment_time_masks: int = _param(0, "int", lo=0, hi=10)
    augment_freq_masks: int = _param(0, "int", lo=0, hi=10)
    augment_mixup_alpha: float = _param(0.0, "float", lo=0.0, hi=10.0)
    augment_lowpass: float = _param(0.0, "float", lo=0.0, hi=1.0)
    augment_lowpass_min_hz: float = _param(3500.0, "float", lo=0.0, lo_open=True)
    precision: str = _param("float32", "str", choices=("float32", "mixed_bfloat16"))
    seed: int = _param(0, "int", lo=0)


@dataclass(frozen=True)
class EngineParams:
    """Where per-track work runs (the build's and prediction's): this machine (``local``), or a
    Dask cluster (``dask``): a LocalCluster of ``workers`` processes when ``address`` is
    null, else the running scheduler at ``address`` (e.g. ``tcp://10.0.0.5:8786``)."""

    kind: str = _param("local", "str", choices=("local", "dask"))
    address: str | None = _param(None, "str", nullable=True)


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
    workers: int | None = _param(None, "int", lo=1, hi=1024, nullable=True)
    source: Path | None = field(default=None, compare=False)
    _overrides: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def snippet_samples(self) -> int:
        """Samples in one snippet."""
        return int(round(self.slicing.snippet_seconds * self.audio.sample_rate))

    @property
    def hop_samples(self) -> int:
        """Samples between the starts of two consecutive snippets."""
        hop = self.slicing.snippet_seconds - self.slicing.overlap_seconds
        return int(round(hop * self.audio.sample_rate))

    @property
    def n_frames(self) -> int:
        """Spectrogram frames per snippet, as the backbone computes them: 130 for 3 s at
        22050/512 (centred STFT); 187 for musicnn (its 3-second patch)."""
        return self.backbone.n_frames(self)

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
        out = {name: _to_json(dataclasses.asdict(getattr(self, name))) for name in _SECTIONS}
        out["workers"] = self.workers
        return out

    def feature_settings(self) -> dict:
        """The parameters that shape the cached features (JSON-ready)."""
        out = {name: _to_json(dataclasses.asdict(getattr(self, name)))
               for name in ("audio", "slicing", "features")}
        for key, off in _LEVELLING_OFF.items():  # off: caches made before these keys match
            if out["audio"][key] == off:
                del out["audio"][key]
        if self.backbone.separate_cache:  # other input scaling: another cache
            out["backbone"] = self.model.backbone
        out["framing"] = "track"  # cache.FRAMING: caches cut per snippet do not match
        return out

    @property
    def backbone_overrides(self) -> list[str]:
        """``["audio.sample_rate: 44100 -> 16000", ...]``: JSON values the backbone
        replaced (its ``fixed_settings``), where the JSON had changed them from the plain
        defaults (the CRNN's input settings, kept in the file for that backbone)."""
        return list(self._overrides)


_LEVELLING_OFF = {"trim_silence": False, "loudness_db": None}

_SECTIONS = {"paths": PathsParams, "audio": AudioParams, "slicing": SlicingParams,
             "features": FeatureParams, "split": SplitParams, "process": ProcessParams,
             "model": ModelParams, "training": TrainingParams, "engine": EngineParams}


def _to_json(value):
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, (list, dict)):
        return f"{json.dumps(value)[:60]} (a {'list' if isinstance(value, list) else 'object'})"
    return repr(value)


def _expected(spec) -> str:
    kind = spec["kind"]
    if spec["choices"]:
        text = "one of " + ", ".join(repr(c) for c in spec["choices"])
    else:
        text = {"int": "an int", "float": "a number", "bool": "true or false",
                "str": "a string", "path": "a path string",
                "ints": "a non-empty list of ints",
                "pairs": "a non-empty list of [time, frequency] int pairs"}[kind]
        if spec["lo"] is not None or spec["hi"] is not None:
            lo = "-inf" if spec["lo"] is None else spec["lo"]
            hi = "inf" if spec["hi"] is None else spec["hi"]
            left = "(" if spec["lo_open"] or spec["lo"] is None else "["
            right = ")" if spec["hi_open"] or spec["hi"] is None else "]"
            text += f" in the range {left}{lo}, {hi}{right}"
    if spec["nullable"]:
        text += " or null"
    return text


def _fail(key: str, expected: str, value) -> ParameterError:
    return ParameterError(
        f"The '{key}' parameter must be {expected}. Got {_describe(value)} instead.")


def _check(key: str, value, spec, base: Path):
    """Return ``value`` converted to its Python type, or raise ParameterError."""
    if value is None:
        if spec["nullable"]:
            return None
        raise _fail(key, _expected(spec), value)
    kind = spec["kind"]
    if kind in ("ints", "pairs"):
        return _check_list(key, value, spec)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "str": isinstance(value, str),
          "path": isinstance(value, str) and value.strip() != ""}[kind]
    if kind == "float" and ok and not math.isfinite(value):
        ok = False
    if not ok or (spec["choices"] and value not in spec["choices"]):
        raise _fail(key, _expected(spec), value)
    if spec["lo"] is not None and (value < spec["lo"] or (spec["lo_open"] and value == spec["lo"])):
        raise _fail(key, _expected(spec), value)
    if spec["hi"] is not None and (value > spec["hi"] or (spec["hi_open"] and value == spec["hi"])):
        raise _fail(key, _expected(spec), value)
    if kind == "float":
        return float(value)
    if kind == "path":
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else (base / path)
    return value


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_list(key: str, value, spec):
    """A list of ints (``ints``) or of ``[int, int]`` pairs (``pairs``) as tuples."""
    def in_range(v):
        return _is_int(v) and spec["lo"] <= v <= spec["hi"]

    if spec["kind"] == "ints":
        ok = isinstance(value, list) and value and all(in_range(v) for v in value)
    else:
        ok = isinstance(value, list) and value and all(
            isinstance(v, list) and len(v) == 2 and all(in_range(x) for x in v)
            for v in value)
    if not ok:
        raise _fail(key, _expected(spec), value)
    return tuple(tuple(v) if isinstance(v, list) else v for v in value)


def _unknown(key: str, name: str, known) -> ParameterError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ParameterError(
        f"Unknown parameter '{key}'.{hint} Expected one of: {', '.join(sorted(known))}.")


def _build(cls, raw: dict, prefix: str, base: Path):
    """Instantiate dataclass ``cls`` from ``raw`` after checking every key."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata}
    for name in raw:
        if name not in fields:
            raise _unknown(prefix + name, name, list(fields))
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if f.metadata["kind"] == "section":
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise ParameterError(f"The '{key}' parameter must be an object of "
                                     f"parameters. Got {_describe(value)} instead.")
            kwargs[name] = _build(f.metadata["cls"], value, key + ".", base)
        elif name in raw:
            kwargs[name] = _check(key, raw[name], f.metadata, base)
        elif isinstance(f.default, Path):
            kwargs[name] = base / f.default
        elif f.default is None and not f.metadata["nullable"]:
            raise ParameterError(
                f"The '{key}' parameter is missing. Expected {_expected(f.metadata)}.")
    return cls(**kwargs)


def params_from_dict(raw: Any, *, base: Path = Path("."), source: Path | None = None,
                     backbone_defaults: bool = True) -> PipelineParams:
    """Validate a parsed parameters object; relative paths resolve against ``base``.
    ``backbone_defaults=False`` (a bundle's record) leaves keys it lacks at the plain
    defaults: a bundle made before a key existed was trained without it."""
    if not isinstance(raw, dict):
        raise ParameterError(
            f"The parameters must be a JSON object of sections. Got {_describe(raw)} instead.")
    top = {f.name for f in dataclasses.fields(PipelineParams) if f.name not in ("source", "_overrides")}
    for name in raw:
        if name not in top:
            raise _unknown(name, name, top)
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ParameterError(f"The '{name}' parameter must be an object of parameters. "
                                 f"Got {_describe(values)} instead.")
        if name == "model":
            values = _move_legacy_model_keys(values, note=backbone_defaults)
            if not backbone_defaults and "backbone" not in values:
                values = {**values, "backbone": "crnn"}  # a bundle from before backbones
        sections[name] = _build(cls, values, name + ".", base)
    workers_spec = next(f for f in dataclasses.fields(PipelineParams)
                        if f.name == "workers").metadata
    workers = _check("workers", raw.get("workers"), workers_spec, base)
    backbone = backbones.get(sections["model"].backbone)
    for section, values in (backbone.defaults if backbone_defaults else {}).items():
        unset = {k: v for k, v in values.items() if k not in raw.get(section, {})}
        sections[section] = dataclasses.replace(sections[section], **unset)
    overrides = []  # what the JSON set to other than the plain default, and is replaced
    for section, values in backbone.fixed_settings.items():
        current = sections[section]
        plain = {f.name: f.default for f in dataclasses.fields(current)}
        for key, value in values.items():
            if getattr(current, key) not in (value, plain[key]):
                overrides.append(f"{section}.{key}: {getattr(current, key)} -> {value}")
        sections[section] = dataclasses.replace(current, **values)
    params = PipelineParams(**sections, workers=workers, source=source,
                            _overrides=tuple(overrides))
    _check_consistency(params)
    return params


def _move_legacy_model_keys(model: dict, *, note: bool) -> dict:
    """``model`` with the keys of :data:`LEGACY_MODEL_KEYS` moved into their backbone's
    section (``model.gru_units`` → ``model.crnn.recurrent_units``); ``note``: say so once
    per key (a bundle's own record is read quietly)."""
    old = [k for k in model if k in LEGACY_MODEL_KEYS]
    if not old:
        return model
    out = {k: v for k, v in model.items() if k not in LEGACY_MODEL_KEYS}
    for key in old:
        where, name = LEGACY_MODEL_KEYS[key]
        values = out.get(where, {})
        if isinstance(values, dict) and name not in values:
            out[where] = {**values, name: model[key]}
    if note:
        logging.getLogger(__name__).warning(
            "deprecated: %s; read as such, please move them in the parameters file",
            ", ".join(f"model.{k} is now model.{'.'.join(LEGACY_MODEL_KEYS[k])}"
                      for k in old))
    return out


def _check_consistency(p: PipelineParams) -> None:
    """Rules that involve more than one parameter."""
    s, f, a = p.slicing, p.features, p.audio
    if s.overlap_seconds >= s.snippet_seconds:
        raise _fail("slicing.overlap_seconds",
                    f"a number in the range [0, {s.snippet_seconds}) "
                    "(smaller than slicing.snippet_seconds)", s.overlap_seconds)
    if p.hop_samples < 1:
        raise _fail("slicing.overlap_seconds", "at least one sample shorter than "
                    "slicing.snippet_seconds", s.overlap_seconds)
    if f.n_fft > p.snippet_samples:
        raise _fail("features.n_fft", f"at most the samples in one snippet "
                    f"({p.snippet_samples} = {s.snippet_seconds} s x {a.sample_rate} Hz)",
                    f.n_fft)
    if f.hop_length > f.n_fft:
        raise _fail("features.hop_length", f"at most features.n_fft ({f.n_fft})",
                    f.hop_length)
    nyquist = a.sample_rate / 2
    fmax = nyquist if f.fmax is None else f.fmax
    if f.fmax is not None and f.fmax > nyquist:
        raise _fail("features.fmax", f"at most half of audio.sample_rate ({nyquist:g} Hz) "
                    "or null", f.fmax)
    if f.fmin >= fmax:
        raise _fail("features.fmin", f"below features.fmax ({fmax:g} Hz)", f.fmin)
    p.backbone.check(p)
    e = p.engine
    if e.address is not None and (e.kind != "dask" or "://" not in e.address):
        raise _fail("engine.address", "null, or a Dask scheduler address such as "
                    "'tcp://host:8786' with engine.kind 'dask'", e.address)
    total = p.split.val_share + p.split.test_share
    if total >= 1.0 - 1e-9:
        raise ParameterError(
            "The 'split.val_share' and 'split.test_share' parameters must sum to less "
            f"than 1 so that training keeps some tracks. Got {p.split.val_share:g} + "
            f"{p.split.test_share:g} = {total:g} instead.")


def load_params(path: str | os.PathLike = DEFAULT_PARAMS_FILE) -> PipelineParams:
    """Read and validate ``pipeline_parameters.json`` (path relative to the cwd)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(
            f"Parameters file '{path}' not found. Expected a JSON file like the "
            "project's pipeline_parameters.json (pass it with --params).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"Cannot read parameters file '{path}': {exc}.") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(
            f"Parameters file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}.") from None
    try:
        params = params_from_dict(raw, base=path.resolve().parent, source=path)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    if params.backbone_overrides:
        logging.getLogger(__name__).info(
            "model.backbone '%s' fixes its input; ignoring %s", params.model.backbone,
            "; ".join(params.backbone_overrides))
    return params
