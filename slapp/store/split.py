"""Track-wise train/validation/test split, stratified per class and identical everywhere.

The split is a plain mapping ``class → {"train": [...], "val": [...], "test": [...]}`` of
track keys (paths relative to the input folder), the format of
``train_val_test_dict.json`` and of a user-supplied split file.

Counting rule per class of ``n`` tracks: ``n_test = round(test_share · n)`` and
``n_val = round(val_share · n)`` (halves round up), but a non-zero share always gets at
least one track, so every class is present in every split that was asked for; training
keeps the rest and must keep at least one. A class too small for that is refused.

``artist``: the same counts as targets, but whole artist groups move together, so no
artist is on two sides (within a class, and across classes where it can). A class with too
few artists for that (fewer than one per split asked for) is split track-wise instead;
:func:`seen_artists` then tells which evaluation tracks share an artist with training.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from slapp.errors import DatasetError

SPLITS = ("train", "val", "test")


def split_counts(n: int, *, val_share: float, test_share: float) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)`` for a class of ``n`` tracks (see the module rule)."""

    def count(share: float) -> int:
        if share <= 0:
            return 0
        return max(1, math.floor(share * n + 0.5 + 1e-9))

    n_val, n_test = count(val_share), count(test_share)
    return n - n_val - n_test, n_val, n_test


def _rng(seed: int, name: str) -> np.random.Generator:
    # Seeded per class by name, so adding a class leaves the other classes' splits alone.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def make_split(tracks: Mapping[str, Sequence[str]], *, val_share: float, test_share: float,
               seed: int, method: str = "random", groups: Mapping[str, str] | None = None
               ) -> dict[str, dict[str, list[str]]]:
    """Split every class's tracks; ``tracks`` maps class → track keys.

    ``random`` shuffles each class with its seed. ``blocks`` keeps the tracks in name
    order and cuts contiguous runs (from a seeded starting point), so neighbours — often
    the same artist or album — stay on the same side. ``artist`` keeps each group of
    ``groups`` (track key → group, see :func:`slapp.store.artists.group_key`) on one
    side (module docstring). Lists come out sorted.
    """
    split: dict[str, dict[str, list[str]]] = {}
    pinned: dict[str, str] = {}  # group → side, so an artist in two classes stays on one
    for name in sorted(tracks):
        keys = sorted(tracks[name])
        n_train, n_val, n_test = split_counts(len(keys), val_share=val_share,
                                              test_share=test_share)
        if n_train < 1:
            need = 1 + (val_share > 0) + (test_share > 0)
            raise DatasetError(
                f"Class '{name}' has {len(keys)} track(s), too few for split.val_share="
                f"{val_share:g} and split.test_share={test_share:g}: each class needs at "
                f"least {need} (one for training and one per non-zero share). Add tracks "
                "or lower the shares.")
        rng = _rng(seed, name)
        if method == "artist":
            if groups is None:
                raise ValueError("method='artist' needs groups")
            sides = _group_sides(keys, groups, {"train": n_train, "val": n_val,
                                                "test": n_test}, rng, pinned)
            if sides is not None:
                split[name] = sides
                continue
            method_here = "random"  # too few artists: track-wise (seen_artists says so)
        else:
            method_here = method
        if method_here == "random":
            order = [keys[i] for i in rng.permutation(len(keys))]
        elif method_here == "blocks":
            offset = int(rng.integers(len(keys)))
            order = keys[offset:] + keys[:offset]
        else:
            raise ValueError(f"method={method!r} must be 'random', 'blocks' or 'artist'")
        split[name] = {"train": sorted(order[n_val + n_test:]),
                       "val": sorted(order[n_test:n_test + n_val]),
                       "test": sorted(order[:n_test])}
    return split


def _group_sides(keys: list[str], groups: Mapping[str, str], targets: dict[str, int],
                 rng: np.random.Generator, pinned: dict[str, str]
                 ) -> dict[str, list[str]] | None:
    """One class's split with whole groups; None when it has too few groups. Each
    evaluation side asked for first gets one of the smallest free groups, then the rest
    go, largest first, to the side furthest below its target (``pinned`` sides of groups
    already placed in other classes are kept and updated)."""
    members: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        members[groups[key]].append(key)
    names = sorted(members)
    names = [names[i] for i in rng.permutation(len(names))]
    names.sort(key=lambda g: len(members[g]))  # smallest first, seeded among equals
    required = [s for s in ("test", "val") if targets[s] > 0]
    if len(names) < 1 + len(required):
        return None
    side = {g: pinned[g] for g in names if g in pinned}
    free = [g for g in names if g not in side]
    for s in required:
        if s not in side.values() and len(free) > 1:
            side[free.pop(0)] = s
    count = {s: sum(len(members[g]) for g in side if side[g] == s) for s in SPLITS}
    for g in sorted(free, key=lambda g: -len(members[g])):
        s = max(SPLITS, key=lambda s: (targets[s] - count[s], s == "train"))
        side[g] = s
        count[s] += len(members[g])
    if any(count[s] == 0 for s in ["train", *required]):
        return None
    pinned.update(side)
    return {s: sorted(k for g in names if side[g] == s for k in members[g]) for s in SPLITS}


def seen_artists(split: Mapping[str, Mapping[str, Sequence[str]]],
                 artists: Mapping[str, str | None]) -> dict[str, dict[str, list[str]]]:
    """Per evaluation side (``val``, ``test``) and class: the tracks whose artist also has
    a track in training (so their accuracy is measured on a heard artist). Tracks without
    an artist are not counted as seen."""
    heard = {artists[k].casefold() for parts in split.values() for k in parts["train"]
             if artists.get(k)}
    return {side: {name: [k for k in parts[side]
                          if artists.get(k) and artists[k].casefold() in heard]
                   for name, parts in split.items()}
            for side in ("val", "test")}


def _listing(keys: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in list(keys)[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_split(raw: object, tracks: Mapping[str, Sequence[str]], *, source: str
                ) -> dict[str, dict[str, list[str]]]:
    """Validate a split read from JSON against the tracks found on disk.

    Returns it in canonical form (every class, every split, sorted lists). Raises
    :class:`DatasetError` naming ``source`` for unknown classes or tracks, tracks listed
    twice, tracks left out, or a class without training tracks.
    """
    if not isinstance(raw, dict):
        raise DatasetError(f"Split file '{source}' must hold a JSON object mapping each "
                           f"class to {{\"train\": [...], \"val\": [...], \"test\": [...]}}.")
    unknown_classes = sorted(set(raw) - set(tracks))
    if unknown_classes:
        raise DatasetError(f"Split file '{source}' names class(es) {_listing(unknown_classes)}"
                           " that have no folder in the input folder.")
    known = {key for keys in tracks.values() for key in keys}
    seen: dict[str, str] = {}
    out: dict[str, dict[str, list[str]]] = {}
    for name in sorted(tracks):
        parts = raw.get(name)
        if parts is None:
            raise DatasetError(f"Split file '{source}' has no entry for class '{name}'; "
                               "every class folder must be split.")
        if not isinstance(parts, dict) or set(parts) - set(SPLITS):
            raise DatasetError(f"Split file '{source}': class '{name}' must map to an "
                               "object with keys among 'train', 'val', 'test'. Got "
                               f"{sorted(parts) if isinstance(parts, dict) else parts!r}.")
        out[name] = {}
        for part in SPLITS:
            keys = parts.get(part, [])
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise DatasetError(f"Split file '{source}': '{name}.{part}' must be a list "
                                   "of track paths relative to the input folder.")
            for key in keys:
                if key not in known:
                    raise DatasetError(
                        f"Split file '{source}' lists track '{key}' ({name}/{part}), which is"
                        " not in the input folder. Expected paths relative to the input "
                        "folder, like 'blues/track.mp3'.")
                if not key.startswith(name + "/"):
                    raise DatasetError(
                        f"Split file '{source}' lists track '{key}' under class '{name}', "
                        f"but it lies in folder '{key.split('/', 1)[0]}'.")
                if key in seen:
                    raise DatasetError(f"Split file '{source}' lists track '{key}' in both "
                                       f"'{seen[key]}' and '{part}'; each track belongs to "
                                       "one split.")
                seen[key] = part
            out[name][part] = sorted(keys)
        if not out[name]["train"]:
            raise DatasetError(f"Split file '{source}': class '{name}' has no training "
                               "tracks. Expected at least one.")
    missing = sorted(known - set(seen))
    if missing:
        raise DatasetError(f"Split file '{source}' leaves out {len(missing)} track(s) of the "
                           f"input folder: {_listing(missing)}. Every track must be in one "
                           "split.")
    return out


def split_of(split: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, str]:
    """Track key → split name."""
    return {key: part for parts in split.values() for part, keys in parts.items()
            for key in keys}
