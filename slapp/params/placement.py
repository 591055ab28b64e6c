"""Where a setting lives in the parameters file.

Settings that shape only one backbone's input live with that backbone, so the file shows
what the chosen backbone uses: ``model.crnn.features.n_mels``, ``model.crnn.audio.sample_rate``,
``model.crnn.process.normalization``, ``model.crnn.training.augment_gain_db``;
``model.musicnn.audio.loudness_db``. :func:`place` puts the chosen backbone's values into
the sections they fill and names what the file sets that the chosen backbone ignores
(musicnn fixes its input: 16 kHz, 96 mels...). Older files still load: their CRNN
settings in the top-level sections are read as before (with a note to move them), and
the flat ``model`` keys of older releases move into their backbone's section.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from slapp.errors import ParameterError
from slapp.models import backbones
from slapp.params.sections import SECTIONS, ModelParams
from slapp.params.validate import check, describe

logger = logging.getLogger("slapp.params")

# keys of the flat ``model`` section before the backbones owned their settings
LEGACY_MODEL_KEYS = {"conv_filters": ("crnn", "conv_filters"),
                     "pool_sizes": ("crnn", "pool_sizes"),
                     "recurrent": ("crnn", "recurrent"),
                     "gru_units": ("crnn", "recurrent_units"),
                     "conv_dropout": ("crnn", "conv_dropout"),
                     "gru_dropout": ("crnn", "recurrent_dropout"),
                     "fine_tune": ("musicnn", "fine_tune")}


def move_legacy_model_keys(model: dict, *, note: bool) -> dict:
    """``model`` with the keys of :data:`LEGACY_MODEL_KEYS` moved into their backbone's
    section (``model.gru_units`` → ``model.crnn.recurrent_units``); ``note``: say so once
    (a bundle's own record is read quietly)."""
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
        logger.warning("deprecated: %s; read as such, please move them in the parameters "
                       "file", ", ".join(f"model.{k} is now model.{'.'.join(LEGACY_MODEL_KEYS[k])}"
                                         for k in old))
    return out


def _spec(section: str, key: str) -> dict:
    return next(f.metadata for f in dataclasses.fields(SECTIONS[section]) if f.name == key)


def _own_settings(model: dict, base) -> dict[str, dict]:
    """Take every backbone's sub-sections out of ``model`` (in place), checked:
    ``{backbone section: {section: {key: value}}}``."""
    found: dict[str, dict] = {}
    for name in backbones.NAMES:
        bb = backbones.get(name)
        values = model.get(bb.section)
        if bb.section in found or not isinstance(values, dict):
            continue
        inner = {k: v for k, v in values.items() if k in SECTIONS}
        model[bb.section] = {k: v for k, v in values.items() if k not in SECTIONS}
        found[bb.section] = inner
        for section, sub in inner.items():
            where = f"model.{bb.section}.{section}"
            if not isinstance(sub, dict):
                raise ParameterError(f"The '{where}' parameter must be an object of "
                                     f"parameters. Got {describe(sub)} instead.")
            owned = bb.owns.get(section, ())
            for key, value in sub.items():
                if key not in owned:
                    raise ParameterError(
                        f"Unknown parameter '{where}.{key}'. Expected one of: "
                        f"{', '.join(owned) or 'none'}"
                        + (f" (set '{section}.{key}' instead: it is not the {bb.section}'s "
                           "alone)" if key in {f.name for f in dataclasses.fields(SECTIONS[section])}
                           else "") + ".")
                check(f"{where}.{key}", value, _spec(section, key), base)
    return found


def place(raw: dict, *, base, note: bool) -> tuple[dict, list[str]]:
    """``(raw with the chosen backbone's own settings put in their sections, the
    "section.key value" the file sets that the chosen backbone ignores)``. ``note``:
    log one line for what is ignored and one for settings in their old place."""
    model = raw.get("model", {})
    if not isinstance(model, dict):
        return raw, []
    model = move_legacy_model_keys(dict(model), note=note)
    name = model.get("backbone", ModelParams.backbone)
    own = _own_settings(model, base)
    out = {**raw, "model": model}
    if name not in backbones.NAMES:
        return out, []  # refused when the model section is read
    chosen = backbones.get(name)
    lifted = own.get(chosen.section, {})
    ignored, moved, uses = [], [], {}
    for section, values in raw.items():
        if section not in SECTIONS or section == "model" or not isinstance(values, dict):
            continue
        fixed = chosen.fixed_settings.get(section, {})
        for key, value in values.items():
            shown = f"{section}.{key} {json.dumps(value)}"
            if key in fixed and key in {f.name for f in dataclasses.fields(SECTIONS[section])}:
                check(f"{section}.{key}", value, _spec(section, key), base)  # bad: the error alone
            if key in lifted.get(section, {}):
                ignored.append(f"{shown} (model.{chosen.section}.{section}.{key} is used)")
            elif key in chosen.unused.get(section, ()) or (
                    key in fixed and (value != fixed[key] or _owned(section, key))):
                ignored.append(shown)
                if key in fixed and value != fixed[key]:
                    uses[shown] = f" (it uses {json.dumps(fixed[key])})"
            elif key in chosen.owns.get(section, ()) and chosen.name == "crnn":
                moved.append(f"{section}.{key}")
    for section, values in lifted.items():
        out[section] = {**(raw.get(section) or {}), **values}
    if note and ignored:
        logger.warning("model.backbone '%s' ignores %s: a backbone's own settings go under "
                       "model.<backbone>", name, ", ".join(i + uses.get(i, "") for i in ignored))
    if note and moved:
        logger.info("the parameters file keeps the CRNN's own settings in their old place "
                    "(%s): read as model.crnn.<section>.<key>; move them there (see "
                    "pipeline_parameters.json)", ", ".join(moved))
    return out, ignored


def _owned(section: str, key: str) -> bool:
    """Whether ``section.key`` is some backbone's own setting (not a general one)."""
    return any(key in backbones.get(n).owns.get(section, ()) for n in backbones.NAMES)
