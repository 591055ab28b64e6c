"""slapp: folders of labelled music → a divide & conquer CRNN genre classifier."""

__version__ = "0.5.0"  # the one version number (pyproject.toml reads it)
