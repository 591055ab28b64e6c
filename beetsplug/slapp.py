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
their field; ``beet ls slapp_check:1`` lists them. The work is
:mod:`slapp.stages.deliver.beets`.
"""

from __future__ import annotations

import os

from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin


class SlappPlugin(BeetsPlugin):
    item_types = {"slapp_confidence": types.FLOAT, "slapp_check": types.INTEGER}

    def __init__(self) -> None:
        super().__init__()
        from slapp.stages.deliver.beets import default_field

        self.config.add({"model": None, "field": default_field(), "min_confidence": 0.5,
                         "auto": False})
        self._bundle = None
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

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

    def _options(self, write: bool, force: bool = False, pretend: bool = False):
        from slapp.stages.deliver.beets import LabelOptions

        return LabelOptions(field=self.config["field"].as_str(),
                            min_confidence=self.config["min_confidence"].as_number(),
                            write=write, force=force, pretend=pretend)

    def command(self, lib, opts, args) -> None:
        from slapp.stages.deliver.beets import label_items, undo_items

        items = list(lib.items(args))
        options = self._options(ui.should_write(opts.write), opts.force, opts.pretend)
        if opts.undo:
            undo_items(items, options, self._log)
        else:
            label_items(items, self.bundle(), options, self._log)

    def imported(self, session, task) -> None:
        from slapp.stages.deliver.beets import label_items

        label_items(list(task.imported_items()), self.bundle(),
                    self._options(ui.should_write()), self._log)

    def bundle(self):
        """The configured bundle, loaded once; a missing or bad one is a one-line error."""
        if self._bundle is None:
            from slapp.errors import SlappError
            from slapp.stages.train.bundle import load_bundle

            model = self.config["model"].get()
            if not model:
                raise ui.UserError("slapp: set slapp.model in beets' config to a model "
                                   "bundle folder (the one train_crnn.py writes)")
            try:
                self._bundle = load_bundle(os.path.expanduser(str(model)))
            except SlappError as exc:
                raise ui.UserError(f"slapp: {exc}") from None
        return self._bundle
