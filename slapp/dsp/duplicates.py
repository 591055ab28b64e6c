"""The same recording twice, by content: one-second spectral shapes of cached snippets
and a locality-sensitive-hashing search for tracks that share many of them (pure numpy;
the collection audit's duplicate search)."""

from __future__ import annotations

import numpy as np

MATCH_DISTANCE = 0.01   # cosine distance of two seconds that are the same recording
MATCH_SHARE = 0.3       # share of the shorter track's seconds that must match
LOW_BAND_SHARE = 0.6    # mel bands kept (the lower 60 %: ~2.8 kHz with the CRNN's
                        # settings, ~2.3 kHz with musicnn's)
HASH_BITS = 20          # random projections per hash table (duplicate search)
HASH_TABLES = 8         # hash tables: a matching second is missed by all with p ~ 0.02
BUCKET_CAP = 2000       # seconds sharing one hash beyond which the sound is too common
COMPARE_CHUNK = 65536   # candidate pairs compared at a time


def seconds_of(mel: np.ndarray, frames_per_second: int) -> np.ndarray:
    """One-second spectral shapes ``(n_windows, n_low_bands)`` of cached snippet features
    ``(n, n_frames, n_mels)`` (log-compressed mel bands: dB for the CRNN,
    log10(1 + 10⁴·mel) for musicnn): the low bands' mean over one second, every quarter of a
    second (so a copy cut at another instant still lines up within an eighth of a
    second), mean removed (gain-free), unit length."""
    low = max(1, int(mel.shape[2] * LOW_BAND_SHARE))
    step = max(1, frames_per_second // 4)
    x = mel[:, :, :low].astype(np.float32)
    sums = np.cumsum(np.pad(x, ((0, 0), (1, 0), (0, 0))), axis=1)
    starts = np.arange(0, mel.shape[1] - frames_per_second + 1, step)
    x = ((sums[:, starts + frames_per_second] - sums[:, starts]) / frames_per_second
         ).reshape(-1, low)
    x -= x.mean(axis=1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def find_duplicates(shapes: dict[str, np.ndarray], seconds: dict[str, float],
                    same_file: dict[str, object] | None = None
                    ) -> list[tuple[str, str, float, str]]:
    """``(key a, key b, share, kind)`` for pairs of tracks sharing at least
    :data:`MATCH_SHARE` of the shorter's seconds (see :func:`matching_seconds`). Tracks
    with the same ``same_file`` identity (links to one file) are one file under several
    names: paired as ``"same file"`` with the first of them, which alone is searched."""
    names: dict[object, list[str]] = {}
    for key in shapes:
        names.setdefault((same_file or {}).get(key, key), []).append(key)
    out = [(group[0], other, 1.0, "same file")
           for group in map(sorted, names.values()) for other in group[1:]]
    keys = [min(group) for group in names.values()]
    if len(keys) < 2:
        return out
    x = np.vstack([shapes[k] for k in keys]).astype(np.float32, copy=False)
    owner = np.concatenate([np.full(len(shapes[k]), i) for i, k in enumerate(keys)])
    local = np.concatenate([np.arange(len(shapes[k])) for k in keys])
    i, j = matching_seconds(x, owner)
    swap = owner[i] > owner[j]
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    pair = owner[i].astype(np.int64) * len(keys) + owner[j]
    order = np.argsort(pair, kind="stable")
    pair, la_all, lb_all = pair[order], local[i[order]], local[j[order]]
    bounds = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1], True]) if len(pair) else []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        a, b = divmod(int(pair[lo]), len(keys))
        la, lb = la_all[lo:hi], lb_all[lo:hi]
        share = min(len(np.unique(la)) / len(shapes[keys[a]]),
                    len(np.unique(lb)) / len(shapes[keys[b]]))
        if share < MATCH_SHARE:
            continue
        same_length = abs(seconds[keys[a]] - seconds[keys[b]]) < 0.1
        in_line = len(np.unique(la[la == lb])) >= 0.8 * len(np.unique(la))
        out.append((keys[a], keys[b], float(share),
                    "exact" if same_length and in_line else "different cut"))
    return out


def matching_seconds(x: np.ndarray, owner: np.ndarray, *, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(i, j)`` (``i < j``, of different owners) of the unit vectors ``x``
    ``(n, d)`` within :data:`MATCH_DISTANCE` (cosine) of each other.

    Locality-sensitive hashing, not all pairs: each of :data:`HASH_TABLES` tables hashes
    every row by the signs of :data:`HASH_BITS` random projections; rows that share a
    hash in some table are compared exactly. Two rows at the matching distance share a
    table's hash with probability 0.4, some table's with 0.98 (a duplicate shares dozens
    of seconds); unrelated rows almost never. Flat rows (silence: no shape) and hashes
    shared by more than :data:`BUCKET_CAP` rows (a sound too common to tell tracks
    apart) are left out. Time and memory grow with ``n``, not ``n²``."""
    rng = np.random.default_rng(seed)
    usable = np.flatnonzero(np.einsum("ij,ij->i", x, x) > 0.25)
    xs = x if len(usable) == len(x) else x[usable]
    found = []
    for _ in range(HASH_TABLES):
        planes = rng.standard_normal((x.shape[1], HASH_BITS)).astype(np.float32)
        projected = xs @ planes
        codes = np.zeros(len(xs), np.int64)
        for bit in range(HASH_BITS):
            codes |= (projected[:, bit] > 0).astype(np.int64) << bit
        del projected
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        first = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        size = np.diff(np.r_[first, len(codes)])
        keep = (size >= 2) & (size <= BUCKET_CAP)
        f, n = first[keep], size[keep]
        pos = np.repeat(f, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        end = np.repeat(f + n, n)
        for k in range(1, int(n.max()) if len(n) else 1):
            live = pos + k < end
            pos, end = pos[live], end[live]
            a, b = usable[order[pos]], usable[order[pos + k]]
            differ = owner[a] != owner[b]
            a, b = a[differ], b[differ]
            for c in range(0, len(a), COMPARE_CHUNK):
                ca, cb = a[c:c + COMPARE_CHUNK], b[c:c + COMPARE_CHUNK]
                close = np.einsum("ij,ij->i", x[ca], x[cb]) >= 1.0 - MATCH_DISTANCE
                found.append(np.stack([np.minimum(ca, cb)[close], np.maximum(ca, cb)[close]]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.concatenate(found, axis=1), axis=1)
    return pairs[0], pairs[1]
