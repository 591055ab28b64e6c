"""Checking values against their declared spec (:mod:`slapp.spec`), and the rules that
involve several parameters. Every violation is one sentence that names the key path, what
is expected and what was given."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from pathlib import Path

from slapp.errors import ParameterError


def describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, (list, dict)):
        return f"{json.dumps(value)[:60]} (a {'list' if isinstance(value, list) else 'object'})"
    return repr(value)


def expected(spec) -> str:
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


def fail(key: str, expected: str, value) -> ParameterError:
    return ParameterError(
        f"The '{key}' parameter must be {expected}. Got {describe(value)} instead.")


def check(key: str, value, spec, base: Path):
    """Return ``value`` converted to its Python type, or raise ParameterError."""
    if value is None:
        if spec["nullable"]:
            return None
        raise fail(key, expected(spec), value)
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
        raise fail(key, expected(spec), value)
    if spec["lo"] is not None and (value < spec["lo"] or (spec["lo_open"] and value == spec["lo"])):
        raise fail(key, expected(spec), value)
    if spec["hi"] is not None and (value > spec["hi"] or (spec["hi_open"] and value == spec["hi"])):
        raise fail(key, expected(spec), value)
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
        raise fail(key, expected(spec), value)
    return tuple(tuple(v) if isinstance(v, list) else v for v in value)


def unknown(key: str, name: str, known) -> ParameterError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ParameterError(
        f"Unknown parameter '{key}'.{hint} Expected one of: {', '.join(sorted(known))}.")


def build(cls, raw: dict, prefix: str, base: Path):
    """Instantiate dataclass ``cls`` from ``raw`` after checking every key."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata}
    for name in raw:
        if name not in fields:
            raise unknown(prefix + name, name, list(fields))
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if f.metadata["kind"] == "section":
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise ParameterError(f"The '{key}' parameter must be an object of "
                                     f"parameters. Got {describe(value)} instead.")
            kwargs[name] = build(f.metadata["cls"], value, key + ".", base)
        elif name in raw:
            kwargs[name] = check(key, raw[name], f.metadata, base)
        elif isinstance(f.default, Path):
            kwargs[name] = base / f.default
        elif f.default is None and not f.metadata["nullable"]:
            raise ParameterError(
                f"The '{key}' parameter is missing. Expected {expected(f.metadata)}.")
    return cls(**kwargs)


def check_consistency(p) -> None:
    """Rules that involve more than one parameter of ``p`` (a
    :class:`~slapp.params.sections.PipelineParams`)."""
    s, f, a = p.slicing, p.features, p.audio
    if s.overlap_seconds >= s.snippet_seconds:
        raise fail("slicing.overlap_seconds",
                    f"a number in the range [0, {s.snippet_seconds}) "
                    "(smaller than slicing.snippet_seconds)", s.overlap_seconds)
    if p.hop_samples < 1:
        raise fail("slicing.overlap_seconds", "at least one sample shorter than "
                    "slicing.snippet_seconds", s.overlap_seconds)
    if f.n_fft > p.snippet_samples:
        raise fail("features.n_fft", f"at most the samples in one snippet "
                    f"({p.snippet_samples} = {s.snippet_seconds} s x {a.sample_rate} Hz)",
                    f.n_fft)
    if f.hop_length > f.n_fft:
        raise fail("features.hop_length", f"at most features.n_fft ({f.n_fft})",
                    f.hop_length)
    nyquist = a.sample_rate / 2
    fmax = nyquist if f.fmax is None else f.fmax
    if f.fmax is not None and f.fmax > nyquist:
        raise fail("features.fmax", f"at most half of audio.sample_rate ({nyquist:g} Hz) "
                    "or null", f.fmax)
    if f.fmin >= fmax:
        raise fail("features.fmin", f"below features.fmax ({fmax:g} Hz)", f.fmin)
    p.backbone.check(p)
    e = p.engine
    if e.address is not None and (e.kind != "dask" or "://" not in e.address):
        raise fail("engine.address", "null, or a Dask scheduler address such as "
                    "'tcp://host:8786' with engine.kind 'dask'", e.address)
    total = p.split.val_share + p.split.test_share
    if total >= 1.0 - 1e-9:
        raise ParameterError(
            "The 'split.val_share' and 'split.test_share' parameters must sum to less "
            f"than 1 so that training keeps some tracks. Got {p.split.val_share:g} + "
            f"{p.split.test_share:g} = {total:g} instead.")
