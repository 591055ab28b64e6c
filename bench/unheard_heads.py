#!/usr/bin/env python3
"""Which musicnn-MSD features and head label *unheard artists* best: a quick screen.

Every snippet of the training collection (gtzan-mini) and of an unheard-artists set
(gtzan-other-artists) goes once through slapp's own musicnn-msd input path (levelled,
trimmed, 3 s patches every 3 s) and the frozen network, keeping its 50 MSD tag scores and
its 200-d "penultimate" embedding. Then, with scikit-learn logistic regression at
snippet level and tracks labelled by the sum of snippet probabilities (the divide &
conquer rule):

- heads on ``penultimate`` (what ``model.backbone: musicnn-msd`` trains), ``tags``,
  ``penultimate+tags``, each with C chosen by leave-artists-out folds on the training
  collection (never on the unheard set);
- ``+aug``: the training snippets also embedded after cheap audio augmentations (tape
  pitch shift of ±1 semitone, a high-shelf EQ tilt of ±6 dB, band limit to 5 kHz);
- a zero-shot reading of the tag vocabulary (``tags->genre``): a class named like an MSD
  tag (blues, jazz, rock, pop, country, metal, hip-hop...) scores that tag;
  ``penultimate+prior`` multiplies the head's probabilities by the tags' prior.

Reported: per-genre recall on the unheard set, their mean, and the leave-artists-out
track accuracy on the training collection (classes of one artist fall back to their
own tracks there, so that figure still includes heard artists for those classes).

Usage: python bench/unheard_heads.py [--train ../shared/data/gtzan-mini]
       [--unheard ../shared/data/gtzan-other-artists] [--cache /tmp/slapp-heads]
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

AUGMENTS = ("pitch+1", "pitch-1", "bright", "dark", "band5k")


def _augment(y: np.ndarray, sr: int, kind: str) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    from slapp.dsp.audio import resample

    if kind.startswith("pitch"):  # tape speed: pitch and tempo by one semitone
        ratio = 2 ** ((1 if kind.endswith("+1") else -1) / 12)
        return resample(y, orig_sr=int(round(sr * ratio)), target_sr=sr)
    if kind == "band5k":
        return sosfilt(butter(8, 5000, fs=sr, output="sos"), y).astype(np.float32)
    high = sosfilt(butter(2, 2000, btype="high", fs=sr, output="sos"), y)
    gain = 10 ** ((6 if kind == "bright" else -6) / 20) - 1
    return (y + gain * high).astype(np.float32)


def embed_folder(folder: Path, params, backbone, augments=()) -> dict:
    """``{key: {"tags": (n, 50), "pen": (n, 200), "class": str, "artist": str|None}}``
    per track (and per augmentation ``key#kind``)."""
    from slapp.models.backbones import snippet_features
    from slapp.store.artists import read_artist
    from slapp.store.discovery import find_tracks
    from slapp.dsp.slicing import select_snippets, snippet_starts
    from slapp.stages.build.prepare import prepare_track

    data = find_tracks(folder)
    out = {}
    for name in data.classes:
        for key in data.tracks[name]:
            track = prepare_track(data.files[key], params)
            artist = read_artist(data.files[key])
            for kind in ("",) + tuple(augments):
                y = track.y if not kind else _augment(track.y, params.audio.sample_rate, kind)
                starts = snippet_starts(len(y), snippet_samples=params.snippet_samples,
                                        hop_samples=params.hop_samples)
                starts = starts[select_snippets(len(starts), max_snippets=10)]
                x, _ = snippet_features(y, starts, params)
                tags, pen, _ = backbone(x.astype(np.float32), training=False)
                out[key + (f"#{kind}" if kind else "")] = {
                    "tags": np.asarray(tags), "pen": np.asarray(pen), "class": name,
                    "artist": artist}
    return out


def features(rows: dict, kind: str) -> dict:
    pick = {"penultimate": lambda r: r["pen"], "tags": lambda r: r["tags"],
            "penultimate+tags": lambda r: np.hstack([r["pen"], 10 * r["tags"]])}[kind]
    return {k: pick(r) for k, r in rows.items()}


def fit(train: dict, feats: dict, classes: list[str], c: float, keys: list[str]):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([feats[k] for k in keys])
    y = np.concatenate([[classes.index(train[k]["class"])] * len(feats[k]) for k in keys])
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)


def track_probs(model, feats: dict, keys: list[str]) -> dict:
    return {k: model.predict_proba(feats[k]).sum(axis=0) for k in keys}


def artist_folds(rows: dict, k: int = 5) -> list[set[str]]:
    """Test keys per fold: whole artists per fold within each class (untagged: alone)."""
    folds = [set() for _ in range(k)]
    by_class: dict[str, dict[str, list[str]]] = {}
    for key, r in rows.items():
        if "#" in key:
            continue
        group = r["artist"] or key
        by_class.setdefault(r["class"], {}).setdefault(group, []).append(key)
    for groups in by_class.values():
        sizes = [0] * k
        ordered = sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))
        if len(groups) < 2:  # one artist: spread its tracks (heard artist, as in the study)
            ordered = [(key, [key]) for key in ordered[0][1]]
        for _, keys in ordered:
            f = sizes.index(min(sizes))
            folds[f].update(keys)
            sizes[f] += len(keys)
    return folds


def cv_accuracy(rows: dict, feats: dict, classes: list[str], c: float, aug: bool) -> float:
    right = total = 0
    for test in artist_folds(rows):
        keys = [k for k in rows if k.split("#")[0] not in test and (aug or "#" not in k)]
        model = fit(rows, feats, classes, c, keys)
        for key, p in track_probs(model, feats, sorted(test)).items():
            right += classes[int(p.argmax())] == rows[key]["class"]
            total += 1
    return right / total


def unheard_recall(model_probs: dict, rows: dict, classes: list[str]) -> dict:
    per: dict[str, list[int]] = {}
    for key, p in model_probs.items():
        truth = rows[key]["class"]
        per.setdefault(truth, [0, 0])
        per[truth][0] += classes[int(p.argmax())] == truth
        per[truth][1] += 1
    return per


TAG_OF = {"blues": "blues", "jazz": "jazz", "rock": "rock", "pop": "pop",
          "country": "country", "metal": "metal", "hiphop": "Hip-Hop", "disco": "dance",
          "classical": "instrumental", "reggae": None}


def prior(rows: dict, classes: list[str], keys: list[str]) -> dict:
    """Zero-shot class scores from the MSD tags (mean over snippets); a class without a
    matching tag gets the mean of the others."""
    from slapp.models.musicnn import TAGS

    out = {}
    for key in keys:
        mean = rows[key]["tags"].mean(axis=0)
        scores = np.array([mean[TAGS.index(TAG_OF[c])] if TAG_OF.get(c) else np.nan
                           for c in classes])
        scores[np.isnan(scores)] = np.nanmean(scores)
        out[key] = scores / scores.sum()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=str(ROOT.parent / "shared" / "data" / "gtzan-mini"))
    parser.add_argument("--unheard",
                        default=str(ROOT.parent / "shared" / "data" / "gtzan-other-artists"))
    parser.add_argument("--cache", default="/tmp/slapp-heads")
    args = parser.parse_args()
    import pickle

    from slapp.models.musicnn import load_backbone
    from slapp.params import params_from_dict

    started = time.monotonic()
    params = params_from_dict({"paths": {"input_dir": args.train},
                               "model": {"backbone": "musicnn-msd"},
                               "slicing": {"overlap_seconds": 0.0}})
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / "embeddings.pkl"
    if store.exists():
        train, unheard = pickle.loads(store.read_bytes())
    else:
        backbone = load_backbone()
        train = embed_folder(Path(args.train), params, backbone, AUGMENTS)
        unheard = embed_folder(Path(args.unheard), params, backbone)
        store.write_bytes(pickle.dumps((train, unheard)))
    classes = sorted({r["class"] for r in train.values()})
    print(f"command: python bench/unheard_heads.py --train {args.train} --unheard "
          f"{args.unheard}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"{sum('#' not in k for k in train)} training tracks, {len(unheard)} unheard; "
          f"embedded in {time.monotonic() - started:.0f} s")
    genres = sorted({r["class"] for r in unheard.values()})
    print("| head | C (chosen on artist folds) | artist-folds track acc. (gtzan-mini) | "
          + " | ".join(genres) + " | mean recall (unheard) |")
    print("| --- | --- | --- |" + " --- |" * (len(genres) + 1))
    base = [k for k in train if "#" not in k]
    for kind in ("penultimate", "tags", "penultimate+tags"):
        feats, ufeats = features(train, kind), features(unheard, kind)
        for aug in (False, True):
            scores = {c: cv_accuracy(train, feats, classes, c, aug) for c in (0.01, 0.1, 1.0)}
            c = max(scores, key=scores.get)
            keys = [k for k in train if aug or "#" not in k]
            model = fit(train, feats, classes, c, keys)
            probs = track_probs(model, ufeats, sorted(unheard))
            rows = [(f"{kind}{' +aug' if aug else ''}", probs)]
            if kind == "penultimate" and not aug:
                pri = prior(unheard, classes, sorted(unheard))
                rows.append(("penultimate+prior", {k: p * pri[k] for k, p in probs.items()}))
            for name, pr in rows:
                per = unheard_recall(pr, unheard, classes)
                mean = np.mean([per[g][0] / per[g][1] for g in genres])
                print(f"| {name} | {c:g} | {scores[c]:.2f} | "
                      + " | ".join(f"{per[g][0]}/{per[g][1]}" for g in genres)
                      + f" | {mean:.2f} |", flush=True)
    zero = prior(unheard, classes, sorted(unheard))
    per = unheard_recall(zero, unheard, classes)
    print(f"| tags->genre (zero-shot, no training) | - | - | "
          + " | ".join(f"{per[g][0]}/{per[g][1]}" for g in genres)
          + f" | {np.mean([per[g][0] / per[g][1] for g in genres]):.2f} |")
    print(f"total {time.monotonic() - started:.0f} s")
    del base
    return 0


if __name__ == "__main__":
    sys.exit(main())
