"""slapp: folders of labelled music → a divide & conquer CRNN genre classifier."""

__version__ = "0.1.0"
