"""Reading ``pipeline_parameters.json`` once into :class:`~slapp.params.sections.PipelineParams`.

Nothing else in slapp reads the JSON. Every violation is refused with one sentence that
names the key path, what is expected and what was given, e.g.::

    The 'slicing.overlap_seconds' parameter must be a number in the range [0, 3.0).
    Got 3.0 instead.

Relative paths in the file are resolved against the folder that holds the file, so the
scripts work from any current directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from slapp.errors import ParameterError
from slapp.models import backbones
from slapp.params.placement import place
from slapp.params.sections import SECTIONS, PipelineParams
from slapp.params.validate import build, check, check_consistency, describe, unknown

DEFAULT_PARAMS_FILE = "pipeline_parameters.json"


def params_from_dict(raw: Any, *, base: Path = Path("."), source: Path | None = None,
                     backbone_defaults: bool = True) -> PipelineParams:
    """Validate a parsed parameters object; relative paths resolve against ``base``.
    ``backbone_defaults=False`` (a bundle's record, read quietly) leaves keys it lacks at
    the plain defaults: a bundle made before a key existed was trained without it."""
    if not isinstance(raw, dict):
        raise ParameterError(
            f"The parameters must be a JSON object of sections. Got {describe(raw)} instead.")
    top = {f.name for f in dataclasses.fields(PipelineParams)
           if f.name not in ("source", "ignored")}
    for name in raw:
        if name not in top:
            raise unknown(name, name, top)
    if not backbone_defaults and isinstance(raw.get("model"), dict) \
            and "backbone" not in raw["model"]:
        raw = {**raw, "model": {**raw["model"], "backbone": "crnn"}}  # before backbones
    raw, ignored = place(raw, base=base, note=backbone_defaults)
    sections = {}
    for name, cls in SECTIONS.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ParameterError(f"The '{name}' parameter must be an object of parameters. "
                                 f"Got {describe(values)} instead.")
        sections[name] = build(cls, values, name + ".", base)
    workers_spec = next(f for f in dataclasses.fields(PipelineParams)
                        if f.name == "workers").metadata
    workers = check("workers", raw.get("workers"), workers_spec, base)
    backbone = backbones.get(sections["model"].backbone)
    for section, values in (backbone.defaults if backbone_defaults else {}).items():
        unset = {k: v for k, v in values.items() if k not in raw.get(section, {})}
        sections[section] = dataclasses.replace(sections[section], **unset)
    for section, values in backbone.fixed_settings.items():
        sections[section] = dataclasses.replace(sections[section], **values)
    params = PipelineParams(**sections, workers=workers, source=source,
                            ignored=tuple(ignored))
    check_consistency(params)
    return params


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
        return params_from_dict(raw, base=path.resolve().parent, source=path)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
