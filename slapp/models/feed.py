"""Batches of training snippets read from the memory-mapped arrays of stage 2.

Only the labels (one int per snippet) are held in memory; each batch reads its rows from
the ``.npy`` memory map, so datasets larger than RAM train. The order is a seeded
permutation per epoch, a function of ``(seed, epoch)`` only, so a resumed run sees the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from slapp.dsp.augment import Augmentation, augment_batch
from slapp.models.keras_env import import_keras

keras = import_keras()


class SnippetFeed(keras.utils.PyDataset):
    """``(x, one_hot_y[, sample_weight])`` batches: x ``(batch, n_frames, n_mels)`` float32.

    ``shuffle_seed=None`` keeps the file order (validation); ``class_weights`` (per class
    index) adds sample weights; ``first_epoch`` is where a resumed run starts;
    ``augmentation`` (with ``db_scale``, see :mod:`slapp.dsp.augment`) changes each batch with
    a generator seeded by ``(shuffle_seed, epoch, batch)``, so a resumed run repeats it.
    """

    def __init__(self, x_file: str | Path, labels: np.ndarray, n_classes: int,
                 batch_size: int, *, shuffle_seed: int | None = None,
                 class_weights: np.ndarray | None = None, first_epoch: int = 0,
                 augmentation: Augmentation | None = None, db_scale: np.ndarray | None = None,
                 lowpass_bins: tuple[np.ndarray, np.ndarray] | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = np.load(x_file, mmap_mode="r")
        self.labels = np.asarray(labels, np.int64)
        if len(self.x) != len(self.labels):
            raise ValueError(f"{x_file}: {len(self.x)} rows but {len(self.labels)} labels")
        self.n_classes = n_classes
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.class_weights = (None if class_weights is None
                              else np.asarray(class_weights, np.float32))
        self.epoch = first_epoch
        self.augmentation = augmentation if augmentation and augmentation.active else None
        self.db_scale = db_scale
        self.lowpass_bins = lowpass_bins
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if self.shuffle_seed is None:
            return np.arange(len(self.labels))
        return np.random.default_rng([self.shuffle_seed, self.epoch]).permutation(
            len(self.labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index: int):
        rows = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        x = np.asarray(self.x[rows], dtype=np.float32)
        labels = self.labels[rows]
        y = np.eye(self.n_classes, dtype=np.float32)[labels]
        if self.augmentation is not None:
            rng = np.random.default_rng([self.shuffle_seed or 0, self.epoch, index])
            x, y = augment_batch(x, y, rng, self.augmentation, self.db_scale,
                                 self.lowpass_bins)
        if self.class_weights is None:
            return x, y
        return x, y, self.class_weights[labels]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._epoch_order()


def class_weights(labels: np.ndarray, n_classes: int, how: str) -> np.ndarray | None:
    """Per-class weights ``(n_classes,)`` for ``how`` = ``"balanced"`` (inverse frequency
    of ``labels``), or None (``"none"``)."""
    if how == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)
