"""slapp inside beets: label the library's items with a slapp model bundle.

Configuration (beets' ``config.yaml``)::

    plugins: slapp
    slapp:
      model: ~/music-model/model     # a bundle made by train_crnn.py (required)
      field: genres                  # the field the label goes to (default: genres on
                                     # beets that has it, else genre)
      min_confidence: 0.5            # below it: left unchanged, marked slapp_check=1
      auto: no                       # label new items as `beet import` adds them

Commands: ``beet slapp [QUERY]`` labels the matching items (the same engine and
aggregation as ``predict_track.py``: every snippet, sum of snippet scores), stores the label
in ``field`` with ``slapp_confidence`` and ``slapp_model`` (the bundle's id) and the
value it replaced in ``slapp_previous``, and writes the files' tags through beets when
beets writes (``import.write``; ``-w``/``-W``). Items already labelled by the same bundle
are skipped (``--force`` labels them again). ``--pretend`` shows what would change;
``--undo`` puts the previous values back, except where the field no longer holds slapp's
label (you changed it since: it is left and listed). Items below ``min_confidence`` keep
their field; ``beet ls slapp_check:1`` lists them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin

FIELDS = ("slapp_confidence", "slapp_model", "slapp_previous", "slapp_check", "slapp_label")
SEPARATOR = "; "  # how beets shows a multi-valued field as one string


def default_field() -> str:
    """``genres`` (a list, beets >= 2.?) where beets has it, else ``genre``."""
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
    return hashlib.sha256((folder / "bundle.json").read_bytes()).hexdigest()[:12]


class SlappPlugin(BeetsPlugin):
    item_types = {"slapp_confidence": types.FLOAT, "slapp_check": types.INTEGER}

    def __init__(self) -> None:
        super().__init__()
        self.config.add({"model": None, "field": default_field(), "min_confidence": 0.5,
                         "auto": False})
        self._bundle = None
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    # --- commands ------------------------------------------------------------------------

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("slapp", help="label items with a slapp model bundle")
        cmd.parser.add_option("-f", "--force", action="store_true", default=False,
                              help="label items already labelled by this bundle again")
        cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                              help="show what would change; change nothing")
        cmd.parser.add_option("-u", "--undo", action="store_true", default=False,
                              help="put back the values slapp replaced")
        cmd.parser.add_option("-w", "--write", action="store_true", default=None,
                              help="write new metadata to files' tags (default: import.write)")
        cmd.parser.add_option("-W", "--nowrite", action="store_false", dest="write",
                              help="don't write metadata (opposite of -w)")
        cmd.func = self.command
        return [cmd]

    def command(self, lib, opts, args) -> None:
        items = list(lib.items(args))
        write = ui.should_write(opts.write)
        if opts.undo:
            self.undo(items, write=write, pretend=opts.pretend)
        else:
            self.label(items, write=write, force=opts.force, pretend=opts.pretend)

    def imported(self, session, task) -> None:
        self.label(list(task.imported_items()), write=ui.should_write(), force=False,
                   pretend=False)

    # --- labelling -----------------------------------------------------------------------

    def bundle(self):
        """The configured bundle, loaded once; a missing or bad one is a one-line error."""
        if self._bundle is None:
            from slapp.errors import SlappError
            from slapp.stages.bundle import load_bundle

            model = self.config["model"].get()
            if not model:
                raise ui.UserError("slapp: set slapp.model in beets' config to a model "
                                   "bundle folder (the one train_crnn.py writes)")
            try:
                self._bundle = load_bundle(os.path.expanduser(str(model)))
            except SlappError as exc:
                raise ui.UserError(f"slapp: {exc}") from None
        return self._bundle

    def label(self, items, *, write: bool, force: bool, pretend: bool) -> None:
        from slapp.stages.predict import predict_tracks
        from slapp.store.discovery import shown

        bundle = self.bundle()
        ident = bundle_id(bundle.folder)
        field = self.config["field"].as_str()
        floor = self.config["min_confidence"].as_number()
        todo = [i for i in items if force or i.get("slapp_model") != ident]
        self._log.info("{} item(s) to label, {} already labelled by bundle {}", len(todo),
                       len(items) - len(todo), ident)
        if not todo:
            return
        paths = [os.fsdecode(i.path) for i in todo]
        own = logging.getLogger("slapp.stages.predict")  # its error lines: said below, once
        own.disabled = True
        try:
            report = predict_tracks(paths, bundle, progress=False)
        finally:
            own.disabled = False
        changed = unsure = failed = 0
        for item, result in zip(todo, report.results):
            name = shown(os.fsdecode(item.path))
            if result.error:
                failed += 1
                self._log.error("{}: {}", name, shown(result.error))
                continue
            old = get_value(item, field)
            sure = result.confidence >= floor
            verb = "would set" if pretend else "set"
            if not sure:
                unsure += 1
                self._log.info("{}: {} {:.2f} is below min_confidence {}: {} left as it is",
                               name, result.label, result.confidence, floor, field)
            else:
                changed += old != result.label
                self._log.info("{}: {} {} -> {} ({:.2f})", name, verb, old or "(none)",
                               result.label, result.confidence)
            if pretend:
                continue
            if sure:
                if not item.get("slapp_model"):
                    item["slapp_previous"] = old  # the value before slapp, kept once
                set_value(item, field, result.label)
            item["slapp_label"] = result.label
            item["slapp_confidence"] = round(result.confidence, 4)
            item["slapp_model"] = ident
            item["slapp_check"] = 0 if sure else 1
            self._commit(item, write and sure)
        self._log.info("{} {} item(s), {} below min_confidence (beet ls slapp_check:1),"
                       " {} failed", "would change" if pretend else "changed", changed,
                       unsure, failed)

    def _commit(self, item, write: bool) -> None:
        """Write the file's tags (when beets writes) and then the database, or neither."""
        if write and not item.try_write():
            item.load()  # the file kept its tags: so does the database
            return
        item.store()

    def undo(self, items, *, write: bool, pretend: bool) -> None:
        from slapp.store.discovery import shown

        field = self.config["field"].as_str()
        labelled = [i for i in items if i.get("slapp_model")]
        restored = left = 0
        for item in labelled:
            name = shown(os.fsdecode(item.path))
            current = get_value(item, field)
            if item.get("slapp_check") == 0 and current != item.get("slapp_label"):
                left += 1
                self._log.warning("{}: {} is {!r}, not slapp's {!r}: changed since; left as "
                                  "it is", name, field, current, item.get("slapp_label"))
                continue
            previous = item.get("slapp_previous", "")
            self._log.info("{}: {} {} -> {}", name, "would put back" if pretend else
                           "put back", current or "(none)", previous or "(none)")
            if pretend:
                continue
            if item.get("slapp_check") == 0:
                set_value(item, field, previous)
            for key in FIELDS:
                if key in item:
                    del item[key]
            self._commit(item, write)
            restored += 1
        self._log.info("undone {} item(s), left {} changed since", restored, left)
