"""The split policy of the build: which tracks go to training, validation and test, from
the ``split`` parameters and the artists, made once and reused (:mod:`slapp.store.split`
does the dealing), and what the summary says of the collection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from slapp.errors import DatasetError, StageError
from slapp.store.artists import (artist_warnings, class_artists, group_key, read_artist,
                                 read_groups_file)
from slapp.store.atomic import read_json, write_json
from slapp.store.cache import changed_settings
from slapp.store.layout import BuildLayout
from slapp.store.split import check_split, make_split, seen_artists
from slapp.store.unlabelled import LABELLED


def split_origin(s) -> dict:
    """What a split was made from (``s``: the ``split`` parameters): recorded in
    ``build_info.json``, so a later change of them is noticed."""
    if s.file is not None:
        return {"file": str(s.file)}
    origin = {"method": s.method, "seed": s.seed, "val_share": s.val_share,
              "test_share": s.test_share}
    if s.groups_file is not None:
        origin["groups_file"] = str(s.groups_file)
    return origin


def collection_artists(files: Mapping[str, Path], groups_file: Path | None
                       ) -> dict[str, str | None]:
    """Track key → artist: ``groups_file``'s (when it names the track), else the tag's
    (``files``: track key → audio file)."""
    artists = {key: read_artist(path) for key, path in files.items()}
    if groups_file is not None:
        if not groups_file.is_file():
            raise DatasetError(f"Groups file '{groups_file}' (split.groups_file) does not "
                               "exist. Expected a CSV with columns path,artist.")
        artists.update(read_groups_file(groups_file, list(files)))
    return artists


def split_method(s, artists: dict[str, str | None]) -> tuple[str, str]:
    """``(method, why)`` for the ``split`` parameters ``s``: ``auto`` becomes ``artist``
    when at least half the tracks have an artist, else ``random``."""
    if s.file is not None:
        return "file", f"from split.file {s.file}"
    known = sum(a is not None for a in artists.values())
    share = f"{known} of {len(artists)} tracks have an artist"
    if s.method != "auto":
        return s.method, f"split.method {s.method!r}; {share}"
    if known * 2 >= len(artists):
        return "artist", f"split.method 'auto': {share}"
    return "random", (f"split.method 'auto': only {share}, too few to keep artists apart; "
                      "add artist tags or split.groups_file")


def collection_lines(split: dict, artists: dict[str, str | None], method: str, why: str,
                     answered: frozenset[str] = frozenset()) -> list[str]:
    """What the summary says of the collection: artists per class, warnings for classes
    of one or two artists, how the split was made and whether its test tracks are by
    artists heard in training (and why: too few artists, or ``answered`` tracks — the
    labels file's, always in training — by artists of the held-out tracks)."""
    per_class = class_artists({c: [k for p in s.values() for k in p] for c, s in split.items()},
                              artists)
    known = any(artists.values())
    lines = ["artists per class: " + ", ".join(
        f"{c} {len(v['artists'])}" + (f" (+{v['tracks'] - v['tagged']} untagged)"
                                      if v["tagged"] < v["tracks"] else "")
        for c, v in per_class.items())] if known else [
        f"artists: none of the {len(artists)} tracks has an artist tag, so slapp cannot "
        "tell whether a class is mostly one artist (add artist tags or split.groups_file)"]
    lines += [f"warning: {line}" for line in artist_warnings(per_class)]
    seen = seen_artists(split, artists)["test"]
    leaked = {c: len(k) for c, k in seen.items() if k}
    dealt = {c: {p: [k for k in keys if k not in answered] for p, keys in s.items()}
             for c, s in split.items()}
    by_split = any(seen_artists(dealt, artists)["test"].values())
    n_test = sum(len(s["test"]) for s in split.values())
    where = {"artist": "by artist",
             "random": "track-wise at random", "blocks": "track-wise in name blocks",
             "file": "as the split file says"}[method]
    lines.append(f"split {where} ({why})" + (": no artist is on two sides" + (
        ", except in classes with too few artists" if by_split else "")
        if method == "artist" else ""))
    if leaked:
        lines.append(f"  {sum(leaked.values())} of {n_test} test tracks are by artists that "
                     "are also in training (" + ", ".join(f"{c} {n}" for c, n in
                                                         leaked.items())
                     + "): accuracy on them says how well the model knows those artists, "
                     "not the genre")
    elif n_test and known:
        lines.append(f"  all {n_test} test tracks are by artists not in training (or "
                     "untagged)")
    return lines + _answered_held_out(split, artists, answered)


def prepare_split(s, tracks: Mapping[str, Sequence[str]], layout: BuildLayout,
                  info: dict | None, resplit: bool, method: str,
                  artists: dict[str, str | None],
                  extra_train: Mapping[str, Sequence[str]] | None = None) -> dict:
    """Reuse, validate or make the split of ``tracks`` (class → keys) as the ``split``
    parameters ``s`` say; write it atomically. Returns the split. ``extra_train`` (class →
    keys, among ``tracks``): tracks that always go to training (the labels file's), added
    to whatever split the others get; a new answer never re-deals validation or test."""
    extra = {k for keys in (extra_train or {}).values() for k in keys}
    tracks = {c: [k for k in keys if k not in extra] for c, keys in tracks.items()}
    split = _split(s, tracks, layout, info, resplit, method, artists, extra)
    for name, keys in (extra_train or {}).items():
        split[name]["train"] = sorted(set(split[name]["train"]) | set(keys))
    write_json(layout.split_file, split, tmp_dir=layout.tmp_dir)
    return split


def _answered_held_out(split: dict, artists: dict[str, str | None],
                       answered: frozenset[str]) -> list[str]:
    """One line per answered track by an artist of the validation or test tracks."""
    held = {artists[k].casefold(): side for s in split.values() for side in ("val", "test")
            for k in s[side] if artists.get(k)}
    return [f"  labels file: '{k}' is by {artists[k]}, an artist of the "
            f"{'validation' if held[artists[k].casefold()] == 'val' else 'test'} tracks: "
            "answered into training, it makes that artist heard"
            for s in split.values() for k in s["train"]
            if k in answered and artists.get(k) and artists[k].casefold() in held]


def _without(raw, extra: set[str]):
    """A split read from JSON without the keys of ``extra`` and of any earlier labels
    file's tracks (they are added afresh, or are gone with the file)."""
    if not isinstance(raw, dict):
        return raw

    def kept(key) -> bool:
        return key not in extra and not (isinstance(key, str) and f"/{LABELLED}/" in key)

    return {c: ({p: [k for k in keys if kept(k)] if isinstance(keys, list) else keys
                 for p, keys in parts.items()} if isinstance(parts, dict) else parts)
            for c, parts in raw.items()}


def _split(s, tracks, layout: BuildLayout, info: dict | None, resplit: bool, method: str,
           artists: dict[str, str | None], extra: set[str]) -> dict:
    origin = split_origin(s)
    if s.file is not None:
        source = s.file
        if not source.is_file():
            raise DatasetError(f"Split file '{source}' (split.file) does not exist. Expected "
                               "a JSON file: class -> {train, val, test} -> track paths.")
        split = check_split(_without(read_json(source), extra), tracks, source=str(source))
    elif layout.split_file.exists() and not resplit:
        old = (info or {}).get("split_origin")
        if old is not None and old != origin:
            changes = "; ".join(changed_settings({"split": old}, {"split": origin}))
            raise StageError(
                f"The split parameters changed since '{layout.split_file}' was made ({changes})."
                " Run with --resplit to make a new split (cached features are kept), or "
                "restore the old values.")
        try:
            split = check_split(_without(read_json(layout.split_file), extra), tracks,
                                source=str(layout.split_file))
        except DatasetError as exc:
            raise DatasetError(f"{exc} If the input folder changed on purpose, run with "
                               "--resplit to split it again (cached features are kept).") from None
    else:
        split = make_split(tracks, val_share=s.val_share, test_share=s.test_share,
                           seed=s.seed, method=method,
                           groups={k: group_key(a, k) for k, a in artists.items()
                                   if k not in extra})
    return split
