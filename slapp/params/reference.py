"""The parameters page, ``docs/parameters.md``, generated from the code: every key the
file may hold (where a backbone owns a setting, under ``model.<backbone>``), its default,
what values it takes (the same words as the error messages) and what it means
(:data:`slapp.params.meanings.MEANINGS`). ``python -m slapp.params.reference`` rewrites the
page; ``tests/test_params.py`` fails when the page and the code disagree."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from slapp.models import backbones
from slapp.params.meanings import MEANINGS
from slapp.params.sections import SECTIONS, ModelParams, PipelineParams, to_json
from slapp.params.validate import expected

PAGE = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"

HEADER = """# `pipeline_parameters.json`: every key

Generated from the code by `python -m slapp.params.reference` (do not edit by hand: a test
compares this page with the code). The file is read once at start into frozen, validated
objects; nothing else reads it. Unknown keys, wrong types and out-of-range values are
refused with one sentence naming the key path, for example `The 'slicing.overlap_seconds'
parameter must be a number in the range [0, 3.0) (smaller than slicing.snippet_seconds).
Got 3.0 instead.` Relative paths are resolved against the folder of the parameters file.
Every script takes `--params PATH` (default `./pipeline_parameters.json`).

**The file shows the settings in force**: a setting that shapes only one backbone's input
lives in that backbone's section (`model.crnn.features.n_mels`,
`model.musicnn.audio.loudness_db`), and only the chosen backbone's section is read. A
musicnn backbone fixes its input (16 kHz, 3 s, 96 mels, n_fft 512, hop 256, no
normalisation).

| key | default | values | meaning |
| --- | --- | --- | --- |
"""


def _owners(section: str, key: str) -> dict[str, object]:
    """``{backbone section: its default}`` for the backbones that own ``section.key``
    (empty: the key stays top-level)."""
    out = {}
    for bb in map(backbones.get, backbones.NAMES):
        if key in bb.owns.get(section, ()):
            out.setdefault(bb.section, getattr(bb, "defaults", {}).get(section, {}).get(key))
    return out


def _fields(cls, prefix: str):
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("kind") == "section":
            yield from _fields(meta["cls"], f"{prefix}{f.name}.")
        elif meta:
            yield f"{prefix}{f.name}", f, meta


def keys() -> list[tuple[str, object, dict]]:
    """``(key path, default, spec)`` of every key the parameters file may hold."""
    out = []
    for section, cls in SECTIONS.items():
        if cls is ModelParams:
            out += [(k, f.default if f.default is not dataclasses.MISSING else None, m)
                    for k, f, m in _fields(cls, "model.")]
            continue
        for key, f, meta in _fields(cls, f"{section}."):
            name = key.split(".", 1)[1]
            owners = _owners(section, name)
            if not owners:
                out.append((key, f.default, meta))
            for place, default in owners.items():
                out.append((f"model.{place}.{key}", f.default if default is None else default,
                            meta))
    for f in dataclasses.fields(PipelineParams):
        if f.metadata.get("kind") and f.metadata["kind"] != "section":
            out.append((f.name, f.default, f.metadata))
    return out


def page() -> str:
    """The text of ``docs/parameters.md``."""
    lines = []
    for path, default, spec in keys():
        meaning = MEANINGS.get(path) or spec.get("doc") or ""
        shown = json.dumps(to_json(default)).replace("|", "\\|")
        allowed = expected(spec).replace("|", "\\|")
        lines.append(f"| `{path}` | `{shown}` | {allowed} | {meaning} |")
    return HEADER + "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    """Keys without a meaning, and meanings of keys the code does not have."""
    have = {p: (MEANINGS.get(p) or s.get("doc")) for p, _, s in keys()}
    return ([f"no meaning: {p}" for p, m in have.items() if not m]
            + [f"no such key: {p}" for p in MEANINGS if p not in have])


if __name__ == "__main__":
    PAGE.write_text(page(), encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE}\n")
