"""Cutting a waveform into fixed-length, overlapping snippets (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def snippet_starts(n_samples: int, *, snippet_samples: int, hop_samples: int) -> np.ndarray:
    """Start offsets (samples) of every whole snippet, ``(n_snippets,)`` int64.

    Snippets start at 0, hop, 2·hop... and end inside the track; the tail shorter than a
    snippet is not used. A track shorter than one snippet yields one start, 0 (the
    snippet's features are zero-padded past the track's end).
    """
    if snippet_samples < 1 or hop_samples < 1:
        raise ValueError(f"snippet_samples={snippet_samples} and hop_samples={hop_samples} "
                         "must be positive")
    if n_samples <= snippet_samples:
        return np.zeros(1, dtype=np.int64)
    return np.arange(0, n_samples - snippet_samples + 1, hop_samples, dtype=np.int64)


def track_starts(n_samples: int, *, snippet_samples: int, hop_samples: int) -> np.ndarray:
    """Snippet starts covering the whole track: every ``hop_samples`` from 0, plus one
    ending exactly at the end when the hops miss the tail; ``[0]`` for a short track."""
    if n_samples <= snippet_samples:
        return np.zeros(1, np.int64)
    starts = np.arange(0, n_samples - snippet_samples + 1, hop_samples, dtype=np.int64)
    if starts[-1] + snippet_samples < n_samples:
        starts = np.append(starts, n_samples - snippet_samples)
    return starts


def select_snippets(n_snippets: int, *, max_snippets: int | None, selection: str = "even",
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices (sorted, ``(k,)`` int64) of at most ``max_snippets`` of ``n_snippets``.

    ``even`` spreads them evenly from the first to the last snippet; ``random`` draws them
    without replacement from ``rng``. All are kept when ``max_snippets`` is None or large.
    """
    if max_snippets is None or n_snippets <= max_snippets:
        return np.arange(n_snippets, dtype=np.int64)
    if selection == "even":
        return np.unique(np.round(np.linspace(0, n_snippets - 1, max_snippets)).astype(np.int64))
    if selection == "random":
        if rng is None:
            raise ValueError("selection='random' needs an rng")
        return np.sort(rng.choice(n_snippets, size=max_snippets, replace=False)).astype(np.int64)
    raise ValueError(f"selection={selection!r} must be 'even' or 'random'")


@dataclass(frozen=True)
class SnippetPlan:
    """Which snippets of a track are used, in one place for the build, prediction, stage
    3's evaluation and the audit (:meth:`slapp.params.PipelineParams.snippet_plan` makes
    them): a snippet every ``hop_samples`` from 0; with ``tail``, one more ending at the
    track's end when the hops miss it (labelling covers the whole track); at most
    ``max_snippets`` of them (None: all) chosen by ``selection`` (``even`` or seeded
    ``random``). A track shorter than one snippet has one, at 0 (zero-padded)."""

    snippet_samples: int
    hop_samples: int
    tail: bool = True
    max_snippets: int | None = None
    selection: str = "even"

    def starts(self, n_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Start offsets ``(k,)`` int64 (samples) of the planned snippets of a track of
        ``n_samples``; ``rng`` for ``selection="random"``."""
        cut = track_starts if self.tail else snippet_starts
        starts = cut(n_samples, snippet_samples=self.snippet_samples,
                     hop_samples=self.hop_samples)
        return starts[select_snippets(len(starts), max_snippets=self.max_snippets,
                                      selection=self.selection, rng=rng)]
