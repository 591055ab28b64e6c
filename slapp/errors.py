"""The few exceptions slapp raises for problems a user can fix.

Scripts catch :class:`SlappError`, print ``error: <message>`` on stderr and exit 1.
Anything else escaping is a bug and keeps its traceback.
"""


class SlappError(Exception):
    """Base class: a problem with the user's input, parameters or files."""


class ParameterError(SlappError):
    """``pipeline_parameters.json`` (or a command-line option) is malformed or invalid."""


class AudioError(SlappError):
    """One track cannot be used (unreadable, empty, silent, too short...)."""


class DatasetError(SlappError):
    """The input folder or the split file does not describe a usable dataset."""


class StageError(SlappError):
    """A stage's output is missing, incomplete, locked or made with other parameters."""
