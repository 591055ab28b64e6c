"""Shortcuts: facts about the files (encoding, sample rate and channels, length,
bandwidth, loudness) that alone tell a class from the rest, so that a model can learn them
instead of the music (the collection audit's third finding)."""

from __future__ import annotations

import math
from collections import Counter

SEPARATES = 0.95        # a numeric fact separates a class when its AUC reaches this
SHORTCUT_MIN_TRACKS = 3  # a value in most of a class's tracks, at least this many ...
SHORTCUT_OTHERS = 0.05   # ... in at most this share of the other tracks ...
SHORTCUT_P = 1e-3        # ... and this unlikely by chance (one-sided exact test)


def tail_probability(hits: int, draws: int, marked: int, total: int) -> float:
    """P(X >= ``hits``) for X ~ Hypergeometric: ``draws`` tracks taken at random from
    ``total`` of which ``marked`` carry a value (Fisher's exact test, one-sided): how
    likely a class this size holds that many of them by chance."""
    denominator = math.comb(total, draws)
    return sum(math.comb(marked, k) * math.comb(total - marked, draws - k)
               for k in range(hits, min(draws, marked) + 1)) / denominator


def categorical(tracks: dict[str, dict], fact: str, name: str) -> list[str]:
    """A value that only (or almost only) one class has, in most of its tracks: decided by
    the counts (an exact test), so a small class with a few exceptions is caught too."""
    lines = []
    classes = sorted({t["class"] for t in tracks.values()})
    for c in classes:
        mine = Counter(t[fact] for t in tracks.values() if t["class"] == c and fact in t)
        rest = Counter(t[fact] for t in tracks.values() if t["class"] != c and fact in t)
        if not mine:
            continue
        value, n = mine.most_common(1)[0]
        n_mine, n_rest, total_rest = sum(mine.values()), rest.get(value, 0), sum(rest.values())
        p = tail_probability(n, n_mine, n + n_rest, n_mine + total_rest)
        if (n >= SHORTCUT_MIN_TRACKS and n / n_mine > 0.5
                and n_rest <= SHORTCUT_OTHERS * total_rest and p < SHORTCUT_P):
            others = ("no other track is" if not n_rest else
                      f"{n_rest} of the {total_rest} other tracks are")
            lines.append(f"{c}: {n} of {n_mine} {c} tracks are {value}; {others} (p = "
                         f"{p:.0e} by chance): a model can tell {c} by its {name}")
    return lines


def numeric(tracks: dict[str, dict], fact: str, name: str, unit: str, scale: float
             ) -> list[str]:
    from sklearn.metrics import roc_auc_score

    lines = []
    values = {k: t[fact] for k, t in tracks.items() if t.get(fact) is not None}
    for c in sorted({t["class"] for t in tracks.values()}):
        y = [tracks[k]["class"] == c for k in values]
        if all(y) or not any(y):
            continue
        auc = roc_auc_score(y, list(values.values()))
        if max(auc, 1 - auc) >= SEPARATES:
            mine = [v for k, v in values.items() if tracks[k]["class"] == c]
            rest = [v for k, v in values.items() if tracks[k]["class"] != c]
            lines.append(f"{c}: {name} {min(mine) / scale:.1f}–{max(mine) / scale:.1f} "
                         f"{unit}, other classes {min(rest) / scale:.1f}–"
                         f"{max(rest) / scale:.1f} {unit}: a model can tell {c} by its "
                         f"{name} alone")
    return lines
