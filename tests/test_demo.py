"""The synthetic demo collection: deterministic, one folder per style, real MP3s."""

from __future__ import annotations

import numpy as np

from slapp.audio import decode
from slapp.demo import SAMPLE_RATE, STYLES, make_demo, synthesize


def test_synthesis_is_deterministic_and_styles_differ():
    a, b = synthesize("funk", 3), synthesize("funk", 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:SAMPLE_RATE * 5], synthesize("funk", 4)[:SAMPLE_RATE * 5])
    for style in STYLES:
        y = synthesize(style, 1)
        assert 10 <= len(y) / SAMPLE_RATE <= 60
        assert 0.5 < np.max(np.abs(y)) <= 0.9 and np.isfinite(y).all()


def test_make_demo_writes_mp3s_and_keeps_existing_files(tmp_path):
    counts = make_demo(tmp_path, per_style=1, unseen_per_style=1)
    assert counts == {"written": 10, "kept": 0, "total": 10}
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.mp3"))
    assert files[:5] == [f"labelled/{s}/{s}_00.mp3" for s in sorted(STYLES)]
    decoded = decode(tmp_path / "labelled" / "rock" / "rock_00.mp3", sample_rate=SAMPLE_RATE)
    assert abs(len(decoded.y) / SAMPLE_RATE - len(synthesize("rock", 0)) / SAMPLE_RATE) < 0.2
    assert make_demo(tmp_path, per_style=1, unseen_per_style=1)["kept"] == 10
