import json

import pytest

from slapp.errors import DatasetError
from slapp.store.split import check_split, make_split, split_counts

TRACKS = {c: [f"{c}/{c}.{i:05d}.mp3" for i in range(10)] for c in ("rock", "jazz", "pop")}


@pytest.mark.parametrize("n, val, test, expected", [
    (10, 0.1, 0.1, (8, 1, 1)),
    (10, 0.2, 0.1, (7, 2, 1)),
    (10, 0.3, 0.0, (7, 3, 0)),   # 0.3 * 10 = 3.0000000000000004 in floats
    (4, 0.1, 0.1, (2, 1, 1)),    # a non-zero share gets at least one track
    (5, 0.1, 0.1, (3, 1, 1)),
    (100, 0.15, 0.15, (70, 15, 15)),
])
def test_counts(n, val, test, expected):
    assert split_counts(n, val_share=val, test_share=test) == expected


def test_split_is_stratified_complete_and_disjoint():
    split = make_split(TRACKS, val_share=0.2, test_share=0.1, seed=7)
    for c, parts in split.items():
        assert [len(parts[p]) for p in ("train", "val", "test")] == [7, 2, 1]
        listed = parts["train"] + parts["val"] + parts["test"]
        assert sorted(listed) == TRACKS[c] and len(set(listed)) == 10
        assert all(k.startswith(c + "/") for k in listed)


def test_split_is_reproducible_and_seeded():
    a = make_split(TRACKS, val_share=0.1, test_share=0.1, seed=7)
    b = make_split({c: list(reversed(t)) for c, t in TRACKS.items()}, val_share=0.1,
                   test_share=0.1, seed=7)
    c = make_split(TRACKS, val_share=0.1, test_share=0.1, seed=8)
    assert json.dumps(a) == json.dumps(b)  # input order does not matter
    assert a != c


def test_golden_split_is_identical_on_every_machine():
    # PCG64 streams are stable across NumPy versions and platforms: pin one result.
    split = make_split({"rock": [f"rock/{i}.mp3" for i in range(10)]}, val_share=0.1,
                       test_share=0.1, seed=42)
    assert split["rock"]["val"] + split["rock"]["test"] == GOLDEN


GOLDEN = ["rock/3.mp3", "rock/6.mp3"]


def test_blocks_keep_neighbours_together():
    split = make_split(TRACKS, val_share=0.2, test_share=0.2, seed=3, method="blocks")
    for c, parts in split.items():
        held_out = {TRACKS[c].index(k) for k in parts["val"] + parts["test"]}
        runs = [{(o + j) % 10 for j in range(4)} for o in range(10)]
        assert held_out in runs  # one contiguous (cyclic) run of neighbours


def test_class_too_small_is_refused():
    with pytest.raises(DatasetError, match=r"Class 'tiny' has 2 track\(s\), too few .* needs "
                                           r"at least 3"):
        make_split({"tiny": ["tiny/a.mp3", "tiny/b.mp3"]}, val_share=0.1, test_share=0.1,
                   seed=0)


def _valid():
    return make_split(TRACKS, val_share=0.1, test_share=0.1, seed=0)


def test_user_split_round_trips():
    assert check_split(_valid(), TRACKS, source="s.json") == _valid()


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s["rock"]["train"].append("rock/ghost.mp3"),
     r"lists track 'rock/ghost.mp3' \(rock/train\), which is not in the input folder"),
    (lambda s: s["rock"]["val"].append(s["rock"]["train"][0]),
     r"lists track 'rock/rock.\d+.mp3' in both 'train' and 'val'"),
    (lambda s: s["rock"]["train"].pop(), r"leaves out 1 track\(s\) of the input folder: 'rock/"),
    (lambda s: s["pop"]["train"].append(s["jazz"]["train"].pop()),
     r"lists track 'jazz/.*' under class 'pop', but it lies in folder 'jazz'"),
    (lambda s: s.update(metal={"train": []}), r"names class\(es\) 'metal'"),
    (lambda s: s.pop("pop"), r"has no entry for class 'pop'"),
    (lambda s: s["pop"].update(dev=[]), r"class 'pop' must map to an object with keys among"),
    (lambda s: s["pop"].update(val="pop/x.mp3"), r"'pop.val' must be a list"),
    (lambda s: s["pop"]["val"].extend(s["pop"].pop("train")), r"class 'pop' has no training"),
])
def test_user_split_errors(mutate, match):
    split = _valid()
    mutate(split)
    with pytest.raises(DatasetError, match=r"Split file 's.json'.*" + match):
        check_split(split, TRACKS, source="s.json")


def test_an_answer_by_a_held_out_artist_is_named_not_blamed_on_the_split():
    """Answered tracks always go to training: one by an artist of the test tracks makes
    that artist heard; the summary names it instead of blaming 'too few artists'."""
    from slapp.store.split_policy import collection_lines

    split = {"rock": {"train": ["rock/a1", "rock/b1", "rock/+labels/x"], "val": ["rock/c1"],
                      "test": ["rock/d1"]}}
    artists = {"rock/a1": "A", "rock/b1": "B", "rock/c1": "C", "rock/d1": "D",
               "rock/+labels/x": "d"}
    lines = collection_lines(split, artists, "artist", "artists known",
                             frozenset({"rock/+labels/x"}))
    assert "split by artist (artists known): no artist is on two sides" in lines
    assert ("  labels file: 'rock/+labels/x' is by d, an artist of the test tracks: "
            "answered into training, it makes that artist heard") in lines
    assert lines[-2].startswith("  1 of 1 test tracks are by artists that are also in training")
