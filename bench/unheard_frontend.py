#!/usr/bin/env python3
"""A CRNN back end on musicnn's frozen front end, on *unheard artists*: a screen.

Issue 23's first candidate: musicnn-MSD's convolutional front and mid ends (frozen; they
have heard a million songs) give 753 features per frame; a trainable back end over the
snippet's frames turns them into genre scores ("the convolutions find what, the recurrent
layer when"). Measured against the pipeline's own musicnn-msd head on the same patches.

Every track of the training collection (gtzan-mini) and of an unheard-artists set
(gtzan-other-artists) goes once through slapp's musicnn-msd input path (levelled, trimmed,
3 s patches every 1.5 s for training, every 2 s — predict's default — for the unheard
set) and the frozen network up to its mid end: ``(187, 753)`` per patch, averaged over
4 frames (``(46, 753)``, float16, 64 ms a step). Back ends, each trained on all of the
training collection with early stopping on a validation set of whole held-out artists
(jazz, pop, metal, hiphop, country, disco: the multi-artist classes' artists of one
leave-artists-out fold; the one-artist classes contribute clips of their artist):

- ``gru``: per-frame dense 128 (ReLU) → GRU 64 → dropout 0.5 → softmax;
- ``bigru``: the same with a bidirectional GRU 2 × 32;
- ``pool``: max and mean over time → dropout 0.5 → dense 200 → dropout 0.5 → softmax
  (a trainable copy of musicnn's own back end shape, no recurrence);
- ``msd-head``: musicnn's own frozen back end (its 200-d penultimate) → dropout 0.5 →
  softmax with L2 1e-3: what ``model.backbone: musicnn-msd`` trains;
- ``msd-vgg``, ``mtt-vgg``: the same head on the wheel's VGG-like taggers' 256-d "pool5"
  (bench/musicnn_vgg.py); ``msd+msd-vgg``: on both embeddings side by side.

Tracks are labelled by the sum of patch probabilities. Reported: per-genre recall on the
unheard set and their mean, for ``--seeds`` seeds each.

Usage: python bench/unheard_frontend.py [--train ../shared/data/gtzan-mini]
       [--unheard ../shared/data/gtzan-other-artists] [--cache /tmp/slapp-frontend]
       [--seeds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

POOL = 4  # frames averaged per step of the back end


def patches(folder: Path, params, hop_seconds: float):
    """``(class, key, file, model input (n, 187, 96))`` per track of ``folder``: slapp's
    musicnn-msd input path, a patch every ``hop_seconds``."""
    from slapp.dsp.slicing import snippet_starts
    from slapp.models.backbones import snippet_features
    from slapp.stages.build.prepare import prepare_track
    from slapp.store.discovery import find_tracks

    data = find_tracks(folder)
    hop = int(round(hop_seconds * params.audio.sample_rate))
    for name in data.classes:
        for key in data.tracks[name]:
            track = prepare_track(data.files[key], params)
            starts = snippet_starts(len(track.y), snippet_samples=params.snippet_samples,
                                    hop_samples=hop)
            x, _ = snippet_features(track.y, starts, params)
            yield name, key, data.files[key], x.astype(np.float32)


def embed_folder(folder: Path, params, network, hop_seconds: float) -> dict:
    """``{key: {"frames": (n, T, 753) float16, "pen": (n, 200), "class", "artist"}}``."""
    from slapp.store.artists import read_artist

    out = {}
    for name, key, path, x in patches(folder, params, hop_seconds):
        mid, pen = network(x, training=False)
        mid = np.asarray(mid)
        t = mid.shape[1] // POOL * POOL
        frames = mid[:, :t].reshape(len(mid), t // POOL, POOL, -1).mean(axis=2)
        out[key] = {"frames": frames.astype(np.float16), "pen": np.asarray(pen),
                    "class": name, "artist": read_artist(path)}
    return out


def embed_vgg(folder: Path, params, networks: dict, hop_seconds: float) -> dict:
    """``{key: {checkpoint: (n, 256) pool5}}`` of the same patches as :func:`embed_folder`."""
    return {key: {c: np.asarray(net(x, training=False)[1]) for c, net in networks.items()}
            for _, key, _, x in patches(folder, params, hop_seconds)}


def validation_keys(rows: dict) -> set[str]:
    """Fold 0 of the leave-artists-out folds of ``bench/unheard_heads.py``."""
    from bench.unheard_heads import artist_folds

    return artist_folds(rows)[0]


def build(kind: str, shape: tuple, n_classes: int, keras):
    L = keras.layers
    inputs = keras.Input(shape=shape)
    if kind in ("msd-head", "msd-vgg", "mtt-vgg", "msd+msd-vgg"):
        x = L.Dropout(0.5)(inputs)
        out = L.Dense(n_classes, activation="softmax",
                      kernel_regularizer=keras.regularizers.L2(1e-3))(x)
        return keras.Model(inputs, out)
    x = L.BatchNormalization()(inputs)
    if kind == "pool":
        x = L.Concatenate()([L.GlobalMaxPooling1D()(x), L.GlobalAveragePooling1D()(x)])
        x = L.Dropout(0.5)(x)
        x = L.Dense(200, activation="relu")(x)
    else:
        x = L.Dropout(0.3)(x)
        x = L.TimeDistributed(L.Dense(128, activation="relu"))(x)
        rnn = L.GRU(64) if kind == "gru" else L.Bidirectional(L.GRU(32))
        x = rnn(x)
    x = L.Dropout(0.5)(x)
    out = L.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, out)


def stack(rows: dict, keys, field: str, classes: list[str]):
    x = np.concatenate([rows[k][field] for k in keys]).astype(np.float32)
    y = np.concatenate([[classes.index(rows[k]["class"])] * len(rows[k][field])
                        for k in keys])
    return x, y


def run(kind: str, seed: int, train: dict, unheard: dict, classes: list[str]) -> dict:
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    field = {"msd-head": "pen", "msd-vgg": "MSD_vgg", "mtt-vgg": "MTT_vgg",
             "msd+msd-vgg": "pen+MSD_vgg"}.get(kind, "frames")
    val = validation_keys(train)
    xt, yt = stack(train, [k for k in sorted(train) if k not in val], field, classes)
    xv, yv = stack(train, sorted(val), field, classes)
    model = build(kind, xt.shape[1:], len(classes), keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True)
    history = model.fit(xt, yt, validation_data=(xv, yv), epochs=60, batch_size=32,
                        callbacks=[stop], verbose=0)
    per: dict[str, list[int]] = {}
    for key in sorted(unheard):
        p = model.predict(unheard[key][field].astype(np.float32), verbose=0).sum(axis=0)
        truth = unheard[key]["class"]
        per.setdefault(truth, [0, 0])
        per[truth][0] += classes[int(p.argmax())] == truth
        per[truth][1] += 1
    return {"per": per, "epochs": len(history.history["loss"]),
            "val_acc": max(history.history["val_accuracy"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--unheard",
                        default=str(ROOT.parent / "shared" / "data" / "gtzan-other-artists"))
    parser.add_argument("--cache", default="/tmp/slapp-frontend")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--kinds", default="msd-head,pool,gru,bigru")
    args = parser.parse_args()
    import pickle

    from slapp.models.keras_env import import_keras
    from slapp.models.musicnn import load_backbone
    from slapp.params import params_from_dict

    started = time.monotonic()
    params = params_from_dict({"paths": {"input_dir": args.train},
                               "model": {"backbone": "musicnn-msd"}})
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / "frames.pkl"
    if store.exists():
        train, unheard = pickle.loads(store.read_bytes())
    else:
        keras = import_keras()
        backbone = load_backbone()
        network = keras.Model(backbone.input, [backbone.get_layer("midend").output,
                                               backbone.outputs[1]])
        train = embed_folder(Path(args.train), params, network, 1.5)
        unheard = embed_folder(Path(args.unheard), params, network, 2.0)
        store.write_bytes(pickle.dumps((train, unheard), protocol=5))
    if any("vgg" in k for k in args.kinds.split(",")):
        vgg_store = cache / "vgg.pkl"
        if vgg_store.exists():
            vgg_train, vgg_unheard = pickle.loads(vgg_store.read_bytes())
        else:
            from musicnn_vgg import load_vgg

            networks = {c: load_vgg(c) for c in ("MSD_vgg", "MTT_vgg")}
            vgg_train = embed_vgg(Path(args.train), params, networks, 1.5)
            vgg_unheard = embed_vgg(Path(args.unheard), params, networks, 2.0)
            vgg_store.write_bytes(pickle.dumps((vgg_train, vgg_unheard), protocol=5))
        for rows, extra in ((train, vgg_train), (unheard, vgg_unheard)):
            for key, r in rows.items():
                r.update(extra[key])
                r["pen+MSD_vgg"] = np.hstack([r["pen"], r["MSD_vgg"]])
    embedded = time.monotonic() - started
    classes = sorted({r["class"] for r in train.values()})
    genres = sorted({r["class"] for r in unheard.values()})
    print(f"command: python bench/unheard_frontend.py --train {args.train} --unheard "
          f"{args.unheard} --seeds {args.seeds} --kinds {args.kinds}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"{len(train)} training tracks, {len(unheard)} unheard; embedded in "
          f"{embedded:.0f} s")
    print("| back end | seed | epochs | val acc. (held-out artists, patches) | "
          + " | ".join(genres) + " | mean recall (unheard) |")
    print("| --- | --- | --- | --- |" + " --- |" * (len(genres) + 1))
    means: dict[str, list[float]] = {}
    for kind in args.kinds.split(","):
        for seed in range(args.seeds):
            r = run(kind, seed, train, unheard, classes)
            per = r["per"]
            mean = float(np.mean([per[g][0] / per[g][1] for g in genres]))
            means.setdefault(kind, []).append(mean)
            print(f"| {kind} | {seed} | {r['epochs']} | {r['val_acc']:.2f} | "
                  + " | ".join(f"{per[g][0]}/{per[g][1]}" for g in genres)
                  + f" | {mean:.2f} |", flush=True)
    for kind, m in means.items():
        print(f"{kind}: mean recall on unheard artists {np.mean(m):.3f} ± {np.std(m):.3f} "
              f"over {len(m)} seeds")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
