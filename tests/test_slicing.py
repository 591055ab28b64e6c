import numpy as np
import pytest

from slapp.dsp.slicing import select_snippets, snippet_starts


def test_thirty_seconds_gives_fourteen_overlapping_snippets():
    sr = 22050
    starts = snippet_starts(30 * sr + 100, snippet_samples=3 * sr, hop_samples=2 * sr)
    assert len(starts) == 14
    assert starts[0] == 0 and starts[1] == 2 * sr
    assert starts[-1] + 3 * sr <= 30 * sr + 100  # whole snippets only


def test_short_track_is_one_snippet_at_zero():
    starts = snippet_starts(1000, snippet_samples=3000, hop_samples=2000)
    assert starts.tolist() == [0]


def test_even_selection_spans_the_track():
    idx = select_snippets(100, max_snippets=14, selection="even")
    assert len(idx) == 14 and idx[0] == 0 and idx[-1] == 99
    assert np.all(np.diff(idx) > 0)


def test_all_kept_when_fewer_than_max_or_none():
    assert select_snippets(5, max_snippets=14).tolist() == [0, 1, 2, 3, 4]
    assert len(select_snippets(300, max_snippets=None)) == 300


def test_random_selection_is_seeded():
    a = select_snippets(100, max_snippets=10, selection="random", rng=np.random.default_rng(1))
    b = select_snippets(100, max_snippets=10, selection="random", rng=np.random.default_rng(1))
    c = select_snippets(100, max_snippets=10, selection="random", rng=np.random.default_rng(2))
    assert a.tolist() == b.tolist() != c.tolist()
    assert len(set(a.tolist())) == 10 and a.tolist() == sorted(a.tolist())


def test_bad_arguments():
    with pytest.raises(ValueError, match="hop_samples=0"):
        snippet_starts(100, snippet_samples=10, hop_samples=0)
    with pytest.raises(ValueError, match="needs an rng"):
        select_snippets(100, max_snippets=3, selection="random")
