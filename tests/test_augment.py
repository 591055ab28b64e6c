"""Snippet augmentation: each transform does what it says, and is reproducible."""

from __future__ import annotations

import numpy as np

from slapp.dsp.augment import Augmentation, augment_batch, db_scale


def _batch(n=6, frames=40, mels=16, classes=3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, frames, mels)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
    return x, y


def test_gain_moves_each_snippet_by_one_offset_in_db():
    x, y = _batch()
    stats = {"method": "standard", "std": [2.0] * 16}
    out, out_y = augment_batch(x, y, np.random.default_rng(1), Augmentation(gain_db=6.0),
                               db_scale(stats, 16))
    shift = out - x
    per_snippet = shift[:, 0, 0]
    assert np.allclose(shift, per_snippet[:, None, None], atol=1e-5)  # one offset each
    assert np.all(np.abs(per_snippet) <= 6.0 / 2.0 + 1e-6) and per_snippet.std() > 0
    assert np.array_equal(out_y, y)


def test_masks_zero_whole_bands():
    x, y = _batch()
    out, _ = augment_batch(x, y, np.random.default_rng(2),
                           Augmentation(time_masks=2, freq_masks=2), np.ones(16, np.float32))
    zero_frames = (out == 0).all(axis=2).sum()
    zero_bins = (out == 0).all(axis=1).sum()
    assert zero_frames > 0 and zero_bins > 0
    assert zero_frames <= 6 * 2 * (40 // 8) and zero_bins <= 6 * 2 * (16 // 8)
    changed = out != x
    assert np.all(out[changed] == 0)  # masking only zeroes


def test_mixup_mixes_inputs_and_labels_alike():
    """Each output row is lam·x[i] + (1-lam)·x[j], and its label lam·y[i] + (1-lam)·y[j]
    with the same lam and the same partner j."""
    x, y = _batch(n=8, classes=8)  # one class per snippet: a label names its partner
    out, out_y = augment_batch(x, y, np.random.default_rng(3), Augmentation(mixup_alpha=0.4),
                               np.ones(16, np.float32))
    mixed = 0
    for i in range(len(x)):
        lam = out_y[i, i]
        assert lam >= 0.5 - 1e-6  # each snippet keeps most of itself
        others = [j for j in range(len(x)) if j != i and out_y[i, j] > 0]
        partner = others[0] if others else i
        assert len(others) <= 1
        np.testing.assert_allclose(out_y[i, partner] if others else 1.0 - lam, 1.0 - lam,
                                   atol=1e-6)
        np.testing.assert_allclose(out[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-5)
        mixed += bool(others)
    assert mixed >= 4  # most rows did mix


def test_same_generator_same_batch_and_off_is_identity():
    x, y = _batch()
    aug = Augmentation(gain_db=3.0, time_masks=1, freq_masks=1, mixup_alpha=0.2)
    a = augment_batch(x, y, np.random.default_rng([0, 4, 2]), aug, np.ones(16, np.float32))
    b = augment_batch(x, y, np.random.default_rng([0, 4, 2]), aug, np.ones(16, np.float32))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = augment_batch(x, y, np.random.default_rng([0, 4, 3]), aug, np.ones(16, np.float32))
    assert not np.array_equal(a[0], c[0])  # another generator: another batch
    off = augment_batch(x, y, np.random.default_rng(5), Augmentation(), np.ones(16, np.float32))
    assert not Augmentation().active
    assert np.array_equal(off[0], x) and np.array_equal(off[1], y)


def test_feed_gives_the_same_augmented_batches_after_a_resume(tmp_path):
    """A run resumed at epoch 2 sees exactly the batches an uninterrupted run sees there
    (order and augmentation), and every epoch differs from the previous one."""
    from slapp.models.feed import SnippetFeed

    x, _ = _batch(n=20)
    np.save(tmp_path / "train_X.npy", x)
    labels = np.arange(20) % 3
    aug = Augmentation(gain_db=6.0, time_masks=1, freq_masks=1, mixup_alpha=0.3)

    def feed(first_epoch):
        return SnippetFeed(tmp_path / "train_X.npy", labels, 3, 8, shuffle_seed=7,
                           first_epoch=first_epoch, augmentation=aug,
                           db_scale=np.ones(16, np.float32))

    straight = feed(0)
    epochs = []
    for _ in range(3):
        epochs.append([straight[i] for i in range(len(straight))])
        straight.on_epoch_end()
    resumed = feed(2)
    for i in range(len(resumed)):
        for a, b in zip(resumed[i], epochs[2][i]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epochs[1][0][0], epochs[2][0][0])
    assert not np.array_equal(epochs[2][0][0], x[:8])  # augmented, not the raw rows


def test_lowpass_floors_the_bins_above_a_random_cutoff_and_keeps_the_rest():
    from slapp.dsp.augment import lowpass_bins

    x, y = _batch(n=40, mels=32)
    stats = {"method": "standard", "mean": [-30.0] * 32, "std": [10.0] * 32,
             "floor_db": -100.0}
    centres, floor = lowpass_bins(stats, sample_rate=22050, n_mels=32, fmin=0.0, fmax=8000.0)
    assert centres[-1] < 8000 and np.allclose(floor, -7.0)  # (-100 - -30) / 10
    out, out_y = augment_batch(x, y, np.random.default_rng(3),
                               Augmentation(lowpass=0.5, lowpass_min_hz=3500.0),
                               np.ones(32, np.float32), (centres, floor))
    hit = [i for i in range(40) if not np.array_equal(out[i], x[i])]
    assert 10 <= len(hit) <= 30  # about half of the snippets
    for i in hit:
        floored = np.all(out[i] == -7.0, axis=0)  # whole bins at the floor
        first = int(np.argmax(floored))
        assert floored[first:].all() and not floored[:first].any()  # one cut-off
        assert centres[first] >= 3500.0 - 1e-3
        assert np.array_equal(out[i][:, :first], x[i][:, :first])
    assert np.array_equal(out_y, y)
