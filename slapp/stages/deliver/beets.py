"""Labels into a beets library (the plug-in ``beetsplug/slapp.py`` is the door; this is the
work): which items to label, the fields they get, what ``--undo`` puts back.

An item labelled at or above ``min_confidence`` gets the label in ``field`` and the value
it replaced in ``slapp_previous`` (kept from the first run); every labelled item gets
``slapp_label``, ``slapp_confidence``, ``slapp_model`` (the bundle's id) and
``slapp_check`` (1: below ``min_confidence``, its field left as it was). The file's tags
are written first (when beets writes), then the database, so an item whose file cannot
be written keeps its old values in both.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from slapp.stages.label.predict import predict_tracks
from slapp.store.discovery import shown

FIELDS = ("slapp_confidence", "slapp_model", "slapp_previous", "slapp_check", "slapp_label",
          "slapp_written")
SEPARATOR = "; "  # how beets shows a multi-valued field as one string


def default_field() -> str:
    """``genres`` (a list field, beets 2.14) where beets has it, else ``genre``."""
    from beets.library import Item

    return "genres" if "genres" in Item._fields else "genre"


def get_value(item, field: str) -> str:
    """The field as one string (a list joined by ``"; "``; empty: ``""``)."""
    value = item.get(field)
    if isinstance(value, (list, tuple)):
        return SEPARATOR.join(str(v) for v in value)
    return str(value or "")


def set_value(item, field: str, value: str) -> None:
    """Set the field from one string: a list field gets its parts."""
    if isinstance(item.get(field), (list, tuple)) or field == "genres":
        item[field] = [v for v in value.split(SEPARATOR) if v]
    else:
        item[field] = value


def bundle_id(folder: Path) -> str:
    """A short id of a bundle: its ``bundle.json`` (written last, dated) hashed."""
    return hashlib.sha256((Path(folder) / "bundle.json").read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class LabelOptions:
    field: str
    min_confidence: float
    write: bool
    force: bool = False
    pretend: bool = False


def commit(item, write: bool) -> None:
    """Write the file's tags (when beets writes) and then the database, or neither."""
    if write and not item.try_write():
        item.load()  # the file kept its tags: so does the database
        return
    item.store()


def label_items(items, bundle, options: LabelOptions, log) -> None:
    """Label ``items`` (beets ``Item``) with ``bundle`` as ``predict_track.py`` would, and
    store the results (see the module docstring); ``log``: the plug-in's logger."""
    ident = bundle_id(bundle.folder)
    todo = [i for i in items if options.force or i.get("slapp_model") != ident]
    log.info("{} item(s) to label, {} already labelled by bundle {}", len(todo),
             len(items) - len(todo), ident)
    if not todo:
        return
    own = logging.getLogger("slapp.stages.label.predict")  # its error lines: said below, once
    own.disabled = True
    try:
        results = predict_tracks([os.fsdecode(i.path) for i in todo], bundle,
                                 progress=False).results
    finally:
        own.disabled = False
    counts = {"changed": 0, "unsure": 0, "none": 0, "failed": 0}
    for item, result in zip(todo, results):
        _store(item, result, ident, options, log, counts)
    log.info("{} {} item(s), {} below min_confidence (beet ls slapp_check:1), {} none of "
             "the classes (beet ls slapp_label:none), {} failed",
             "would change" if options.pretend else "changed", counts["changed"],
             counts["unsure"], counts["none"], counts["failed"])


def _store(item, result, ident: str, options: LabelOptions, log, counts: dict) -> None:
    name = shown(os.fsdecode(item.path))
    if result.error:
        counts["failed"] += 1
        log.error("{}: {}", name, shown(result.error))
        return
    field, old = options.field, get_value(item, options.field)
    sure = result.labelled and result.confidence >= options.min_confidence
    if not result.labelled:
        counts["none"] += 1
        log.info("{}: none of the model's classes (known {}): {} left as it is", name,
                 result.known, field)
    elif not sure:
        counts["unsure"] += 1
        log.info("{}: {} {:.2f} is below min_confidence {}: {} left as it is", name,
                 result.label, result.confidence, options.min_confidence, field)
    else:
        counts["changed"] += old != result.label
        log.info("{}: {} {} -> {} ({:.2f})", name, "would set" if options.pretend else "set",
                 old or "(none)", result.label, result.confidence)
    if options.pretend:
        return
    if sure:
        if item.get("slapp_previous") is None:  # the value before slapp's first write, kept once
            item["slapp_previous"] = old
        set_value(item, field, result.label)
        item["slapp_written"] = result.label  # what the field holds from slapp
    item["slapp_label"] = result.label
    item["slapp_confidence"] = round(result.confidence, 4)
    item["slapp_model"] = ident
    item["slapp_check"] = 0 if sure else 1
    commit(item, options.write and sure)


def undo_items(items, options: LabelOptions, log) -> None:
    """Put back the value from before slapp's first write (``slapp_previous``) wherever the
    field still holds what slapp wrote (``slapp_written``), whatever slapp did in between,
    and remove the slapp fields; a field changed since is left, and named."""
    field = options.field
    restored = left = 0
    for item in [i for i in items if i.get("slapp_model")]:
        name = shown(os.fsdecode(item.path))
        current = get_value(item, field)
        written = item.get("slapp_written")
        if written is None and item.get("slapp_check") == 0:  # labelled by an older slapp
            written = item.get("slapp_label")
        if written is not None and current != written:
            left += 1
            log.warning("{}: {} is {!r}, not slapp's {!r}: changed since; left as it is",
                        name, field, current, written)
            continue
        previous = item.get("slapp_previous") or ""
        back = previous if written is not None else current
        log.info("{}: {} {} -> {}", name, "would put back" if options.pretend else "put back",
                 current or "(none)", back or "(none)")
        if options.pretend:
            continue
        if written is not None:
            set_value(item, field, previous)
        for key in FIELDS:
            if key in item:
                del item[key]
        commit(item, options.write)
        restored += 1
    log.info("undone {} item(s), left {} changed since", restored, left)
