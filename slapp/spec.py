"""How a parameter is declared: a dataclass field whose metadata states the constraint its
JSON value must meet. :mod:`slapp.params` checks every value against it; backbones declare
their own settings with it (the lowest layer, so any layer may declare parameters)."""

from __future__ import annotations

from dataclasses import field


def spec(kind: str, *, lo=None, hi=None, lo_open=False, hi_open=False, choices=None,
         nullable=False, doc="", cls=None) -> dict:
    """Field metadata: the constraint a JSON value must meet (kind: int | float | bool | str
    | path | ints | pairs, or section: an object read into dataclass ``cls``)."""
    return {"kind": kind, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
            "choices": choices, "nullable": nullable, "doc": doc, "cls": cls}


def param(default, kind: str, **kw):
    """A dataclass field with a default and a :func:`spec`."""
    return field(default=default, metadata=spec(kind, **kw))


def section(cls):
    """A dataclass field holding a nested parameter object of dataclass ``cls``."""
    return field(default_factory=cls, metadata=spec("section", cls=cls))


NONE = "none"  # the label of a track that is none of the classes (predicted, or answered)
