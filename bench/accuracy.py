#!/usr/bin/env python3
"""Accuracy study on real music: what a model labels right on artists it has not heard.

Two protocols, both measured on artists kept out of training:

- ``--unheard DIR`` (the headline): train on the whole collection (a validation set of
  whole artists for early stopping), then label every track of DIR — other artists of
  some of the same genres, e.g. ``../shared/data/gtzan-other-artists`` — with
  ``predict_track.py``'s own path, and report per-genre recall and their mean.
- ``--protocol artist`` (default) k-fold cross-validation with whole artists per fold (the
  artist tags of the files): fold f tests on group f of every class, validates on group
  f+1 and trains on the rest. A class with fewer than two artists (gtzan-mini's blues,
  classical, reggae, rock: one artist each) cannot be kept apart; it is cut into blocks
  instead, and its test tracks are counted as *heard* — the study reports test accuracy
  on unheard artists (pooled over folds) beside the overall figure. ``--protocol blocks``
  is the older study: contiguous blocks of clip numbers per class (clips 0-1 | 2-3 | ...),
  which still tests artists heard in training.

Every model sees exactly the same folds. Rows, as mean ± sd over the folds:

1. CRNN snippet accuracy (the pipeline: build → process → train with the parameters
   file, the split given through ``split.file``);
2. CRNN track accuracy, divide & conquer (sum of snippet scores);
3. a CRNN of the same architecture trained on whole clips: the same pipeline with
   ``slicing.snippet_seconds = 29``, one snippet per track;
4. MFCC/spectral statistics per track + logistic regression (scikit-learn);
5. (``--rows ...,musicnn``) the pipeline with ``model.backbone = "musicnn-msd"``: a
   softmax head on the frozen pretrained musicnn embedding, snippet and track level;
   ``mtt``: the same with ``musicnn-mtt``; ``heads`` (with both): other heads on their
   embeddings (:func:`head_variants`).

Every pipeline row and the MFCC baseline are also evaluated on each fold's test tracks
after realistic domain shifts (:mod:`domain_shift`: 16 and 8 kHz, 64 kbps MP3, 44.1 kHz
stereo, -20 / +10 dB, leading silence), through ``predict_track.py``'s own path (its default
hop, 2 s; sum of snippet scores); ``--no-shifts`` skips that.

Writes per-fold numbers and the table to stdout and ``--out`` (JSON), and the pooled
track-level confusion matrix of the CRNN over all folds as a PNG.

Each finished fold is saved as ``WORK/TAG/fold-F.json`` (atomically) and reused by a
re-run, so the study can be stopped and resumed; ``--fresh`` recomputes. ``--set
section.key=VALUE`` overrides a parameter of the pipeline rows (CRNN, musicnn) (an experiment; give it its own
``--tag``).

Usage: python bench/accuracy.py [--params bench/params_gtzan.json] [--folds 5]
       [--protocol artist|blocks] [--unheard ../shared/data/gtzan-other-artists]
       [--rows crnn,whole,mfcc,musicnn,mtt,heads] [--only-folds 0 1] [--no-shifts]
       [--work output/accuracy] [--tag default] [--set training.learning_rate=1e-4 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def folds_of(dataset, k: int) -> list[dict[str, list[str]]]:
    """Per fold, ``{class: [track keys of the test block]}``: contiguous blocks of the
    clips sorted by number."""
    out = [dict() for _ in range(k)]
    for name in dataset.classes:
        keys = sorted(dataset.tracks[name], key=lambda key: [
            int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)])
        for f in range(k):
            lo, hi = len(keys) * f // k, len(keys) * (f + 1) // k
            out[f][name] = keys[lo:hi]
    return out


def artist_folds_of(dataset, k: int) -> list[dict[str, list[str]]]:
    """Per fold, ``{class: [track keys]}``: whole artists (from the tags; an untagged track
    is its own artist) dealt to folds, largest first to the fold with fewest tracks of
    that class; a class of fewer than two artists is cut into blocks (:func:`folds_of`)."""
    from slapp.store.artists import group_key, read_artist

    blocks = folds_of(dataset, k)
    out = [dict() for _ in range(k)]
    for name in dataset.classes:
        groups: dict[str, list[str]] = {}
        for key in sorted(dataset.tracks[name]):
            groups.setdefault(group_key(read_artist(dataset.files[key]), key), []).append(key)
        if len(groups) < 2:
            for f in range(k):
                out[f][name] = blocks[f][name]
            continue
        for f in range(k):
            out[f][name] = []
        for _, keys in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
            f = min(range(k), key=lambda f: (len(out[f][name]), f))
            out[f][name] += keys
    return out


def split_for(folds, f: int) -> dict:
    k = len(folds)
    split = {}
    for name in folds[0]:
        test, val = folds[f][name], folds[(f + 1) % k][name]
        train = [key for g in range(k) if g not in (f, (f + 1) % k) for key in folds[g][name]]
        split[name] = {"train": train, "val": val, "test": test}
    return split


def run_pipeline(params_file: Path, overrides: dict, work: Path, split: dict) -> dict:
    """Build (cache reused across folds) → process → train; return evaluation.json."""
    from slapp.stages.build.dataset import build_dataset
    from slapp.params import load_params, params_from_dict
    from slapp.stages.process.arrays import process_dataset
    from slapp.stages.train.training import train_crnn

    base = load_params(params_file).to_dict()
    for section, values in overrides.items():
        base[section].update(values)
    work.mkdir(parents=True, exist_ok=True)
    split_file = work / "split.json"
    split_file.write_text(json.dumps(split, indent=1))
    base["paths"]["output_dir"] = str(work / "out")
    base["paths"]["model_dir"] = None
    base["split"]["file"] = str(split_file)
    params = params_from_dict(base, base=work)
    report = build_dataset(params, resplit=True, progress=False)
    if report.failed:
        raise SystemExit(f"build failed for {len(report.failed)} tracks")
    process_dataset(params, progress=False)
    train_crnn(params, retrain=True, progress=False)
    ev = json.loads((Path(params.model_dir) / "evaluation.json").read_text())
    return {**ev, "_model_dir": str(params.model_dir), "_split": split}


def mfcc_features(path: Path, sr: int = 22050):
    import librosa
    import numpy as np

    from slapp.dsp.audio import decode

    y = decode(path, sample_rate=sr).y
    parts = [librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20),
             librosa.feature.spectral_centroid(y=y, sr=sr),
             librosa.feature.spectral_bandwidth(y=y, sr=sr),
             librosa.feature.spectral_rolloff(y=y, sr=sr),
             librosa.feature.zero_crossing_rate(y),
             librosa.feature.spectral_contrast(y=y, sr=sr),
             librosa.feature.rms(y=y)]
    m = np.vstack(parts)
    return np.concatenate([m.mean(axis=1), m.std(axis=1)])


def mfcc_fold(features: dict, split: dict, classes: list[str], shifted: dict
              ) -> tuple[float, dict]:
    """Test accuracy of the baseline trained on train+val, clean and per shift."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def xy(part):
        keys = [(c, key) for c in classes for key in split[c][part]]
        return (np.stack([features[key] for _, key in keys]),
                np.array([classes.index(c) for c, _ in keys]))

    xtr, ytr = xy("train")
    xva, yva = xy("val")
    xte, yte = xy("test")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    model.fit(np.vstack([xtr, xva]), np.concatenate([ytr, yva]))
    clean = float((model.predict(xte) == yte).mean())
    test = [key for c in classes for key in split[c]["test"]]
    out = {"clean": clean}
    for shift, feats in shifted.items():
        out[shift] = float((model.predict(np.stack([feats[k] for k in test])) == yte).mean())
    return clean, (out if shifted else {})


def shift_accuracies(model_dir: Path, split: dict, files: dict, classes: list[str],
                     hops: tuple[float, ...] = ()) -> dict:
    """Track accuracy of the bundle in ``model_dir`` on the fold's test tracks, as
    ``predict_track.py`` labels them (default hop 2 s, sum), per ``files`` variant (clean and each
    shift), and on the clean tracks at each other hop of ``hops`` (``"hop 2s"``...)."""
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import predict_tracks

    bundle = load_bundle(model_dir)
    test = [(c, key) for c in classes for key in split[c]["test"]]
    out = {}
    for variant, by_key in files.items():
        report = predict_tracks([str(by_key[key]) for _, key in test], bundle=bundle,
                                progress=False)
        out[variant] = sum(r.label == c for r, (c, _) in zip(report.results, test)) / len(test)
    for hop in hops:
        report = predict_tracks([str(files["clean"][key]) for _, key in test], bundle=bundle,
                                hop_seconds=hop, progress=False)
        out[f"hop {hop:g}s"] = sum(r.label == c for r, (c, _) in zip(report.results, test)
                                   ) / len(test)
    return out


def pipeline_row(name: str, saved: dict, fold_file: Path, *, run, shift,
                 extra: tuple[str, ...] = ()) -> dict:
    """One pipeline row of one fold: saved numbers, or train (``run``), evaluate the
    test split and every shift (``shift``), and save."""
    keys = (f"{name}_snippet", f"{name}_track", f"{name}_shift", f"{name}_artists") + extra
    if all(key in saved for key in keys):
        return {key: saved[key] for key in keys}
    ev = run()
    row = {f"{name}_snippet": ev["test"]["snippet"]["accuracy"],
           f"{name}_track": ev["test"]["track"]["accuracy"],
           f"{name}_artists": ev["test"]["track"].get("artists")}
    if "crnn_track_f1" in extra:
        row["crnn_track_f1"] = ev["test"]["track"]["macro_f1"]
    if "confusion" in extra:
        row["confusion"] = ev["test"]["track"]["confusion"]
    row[f"{name}_shift"] = shift(Path(ev["_model_dir"]), ev["_split"])
    keep = fold_file.parent / name / f"model-{fold_file.stem}"  # for later predict studies
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(ev["_model_dir"], keep)
    save_fold(fold_file, {**saved, **row})
    return row


def head_variants(tag_dir: Path, classes: list[str], split: dict) -> dict:
    """Test track accuracy of other heads on the frozen musicnn embeddings of this fold
    (rows ``musicnn`` and ``mtt`` must have just run): a track-level head (mean and std
    of the track's snippet embeddings → logistic regression) on MSD, on MTT and on both;
    a snippet head on both embeddings concatenated (sum of snippet scores); and the two
    bundles' snippet probabilities averaged (then summed)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from slapp.dsp.aggregate import aggregate_tracks
    from slapp.models.inference import predict_probs
    from slapp.stages.train.bundle import load_bundle

    for row in ("musicnn", "mtt"):  # the rows' outputs must be this fold's
        if json.loads((tag_dir / row / "split.json").read_text()) != split:
            raise SystemExit(f"{tag_dir / row} holds another fold: run the {row} row first")

    def arrays(row):
        return tag_dir / row / "out" / "arrays"

    def part(row, name, kind):
        folder = arrays(row)
        if kind == "emb":
            return np.load(folder / f"embeddings-musicnn-{'msd' if row == 'musicnn' else row}"
                           / f"{name}.npy")
        return np.load(folder / f"{name}_{kind}.npy")

    def track_table(emb, tracks, labels):
        ids = np.unique(tracks)
        feats = np.stack([np.concatenate([emb[tracks == i].mean(0), emb[tracks == i].std(0)])
                          for i in ids])
        return feats, np.array([labels[tracks == i][0] for i in ids])

    def fit(x, y):
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)
                             ).fit(x, y)

    y = {n: part("musicnn", n, "y") for n in ("train", "val", "test")}
    t = {n: part("musicnn", n, "track") for n in ("train", "val", "test")}
    assert all(np.array_equal(t[n], part("mtt", n, "track")) for n in t)  # same snippets
    emb = {row: {n: part(row, n, "emb") for n in y} for row in ("musicnn", "mtt")}
    emb["both"] = {n: np.hstack([emb["musicnn"][n], emb["mtt"][n]]) for n in y}
    out = {}
    for row in ("musicnn", "mtt", "both"):  # track-level heads
        tables = {n: track_table(emb[row][n], t[n], y[n]) for n in y}
        model = fit(np.vstack([tables["train"][0], tables["val"][0]]),
                    np.concatenate([tables["train"][1], tables["val"][1]]))
        out[f"track_head_{row}"] = float((model.predict(tables["test"][0])
                                          == tables["test"][1]).mean())

    def track_accuracy(probs):
        ids, scores = aggregate_tracks(probs, t["test"])
        truth = np.array([y["test"][t["test"] == i][0] for i in ids])
        return float((np.argmax(scores, 1) == truth).mean())

    model = fit(np.vstack([emb["both"]["train"], emb["both"]["val"]]),
                np.concatenate([y["train"], y["val"]]))
    out["snippet_head_both"] = track_accuracy(model.predict_proba(emb["both"]["test"]))
    x = np.load(arrays("musicnn") / "test_X.npy", mmap_mode="r")
    probs = [predict_probs(load_bundle(tag_dir / row / "out" / "model").model, x)
             for row in ("musicnn", "mtt")]  # batches of 64: musicnn's activations are big
    out["average_msd_mtt"] = track_accuracy((probs[0] + probs[1]) / 2)
    return out


def unheard_row(params_file: Path, overrides: dict, work: Path, dataset, unheard: Path
                ) -> dict:
    """Train on all of ``dataset`` (10 % of it, by whole artists, for early stopping) and
    label every track of ``unheard`` with predict's path: per-genre ``[right, count]``."""
    from slapp.store.artists import group_key, read_artist
    from slapp.store.split import make_split
    from slapp.stages.train.bundle import load_bundle
    from slapp.stages.label.predict import predict_tracks

    groups = {k: group_key(read_artist(p), k) for k, p in dataset.files.items()}
    split = make_split(dataset.tracks, val_share=0.1, test_share=0.0, seed=42,
                       method="artist", groups=groups)
    ev = run_pipeline(params_file, overrides, work, split)
    bundle = load_bundle(Path(ev["_model_dir"]))
    report = predict_tracks([str(unheard)], bundle, progress=False)
    genres: dict[str, list[int]] = {}
    for r in report.results:
        truth = Path(r.path).parent.name
        right_count = genres.setdefault(truth, [0, 0])
        right_count[0] += int(r.label == truth)
        right_count[1] += 1
    return {"genres": genres, "seconds_per_track": report.seconds / max(1, len(report.results))}


def unheard_table(rows: dict, unheard: Path) -> list[str]:
    genres = sorted({g for row in rows.values() for g in row["genres"]})
    lines = [f"\ntrained on all of the collection, labels {unheard} (artists it never heard):",
             "| model | " + " | ".join(genres) + " | mean recall | tracks right |",
             "| --- |" + " --- |" * (len(genres) + 2)]
    for name, row in rows.items():
        g = row["genres"]
        recall = statistics.mean(g[x][0] / g[x][1] for x in genres)
        right, count = sum(v[0] for v in g.values()), sum(v[1] for v in g.values())
        lines.append(f"| {name} | " + " | ".join(f"{g[x][0]}/{g[x][1]}" for x in genres)
                     + f" | {recall:.2f} | {right / count:.2f} |")
    return lines


def pooled_unheard(per_fold: list[dict | None]) -> str:
    """``right/count (accuracy)`` of the test tracks by unheard artists over all folds."""
    right = sum(a["unheard"]["right"] for a in per_fold if a)
    count = sum(a["unheard"]["count"] for a in per_fold if a)
    return f"{right}/{count} ({right / count:.2f})" if count else "none"


def shift_table(results: dict) -> list[str]:
    """Markdown rows: clean and per-shift track accuracy (mean ± sd), worst drop."""
    lines = []
    for name in ("crnn", "musicnn", "mtt", "mfcc"):
        per_fold = results.get(f"{name}_shift") or []
        if not per_fold or not per_fold[0]:
            continue
        variants = list(per_fold[0])
        if not lines:
            lines = ["| row | " + " | ".join(variants) + " | worst drop |",
                     "| --- |" + " --- |" * (len(variants) + 1)]
        means = {v: statistics.mean(f[v] for f in per_fold) for v in variants}
        worst = max(variants[1:] or variants, key=lambda v: means["clean"] - means[v])
        lines.append(f"| {name} | " + " | ".join(ms([f[v] for f in per_fold])
                                                  for v in variants)
                     + f" | {means['clean'] - means[worst]:+.3f} ({worst}) |")
    return lines


def save_fold(path: Path, data: dict) -> None:
    from slapp.store.atomic import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def ms(values):
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "bench" / "params_gtzan.json"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="*", help="run these folds only")
    parser.add_argument("--rows", default="crnn,whole,mfcc")
    parser.add_argument("--protocol", choices=("artist", "blocks"), default="artist",
                        help="folds of whole artists (default) or of clip-number blocks")
    parser.add_argument("--unheard", type=Path, metavar="DIR",
                        help="also train on the whole collection and label DIR (other "
                             "artists): per-genre recall, for the crnn/musicnn/mtt rows")
    parser.add_argument("--work", default=str(ROOT / "output" / "accuracy"))
    parser.add_argument("--out", default=None,
                        help="JSON results (default: WORK/TAG/results.json)")
    parser.add_argument("--tag", default="default", help="name of this configuration")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a CRNN parameter (JSON value)")
    parser.add_argument("--fresh", action="store_true", help="ignore saved folds")
    parser.add_argument("--hops", default="",
                        help="also label the clean test tracks at these predict hops "
                             "(comma-separated seconds, e.g. 2,3)")
    parser.add_argument("--no-shifts", action="store_true",
                        help="skip the domain-shift evaluation (bench/domain_shift.py)")
    args = parser.parse_args()
    rows = args.rows.split(",")
    hops = tuple(float(h) for h in args.hops.split(",") if h)
    work = Path(args.work)
    overrides: dict = {}
    for item in args.sets:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        overrides.setdefault(section, {})[name] = parsed
    tag_dir = work / args.tag

    from slapp.cli import setup_logging
    from slapp.store.discovery import find_tracks
    from slapp.params import load_params

    setup_logging(quiet=True)
    params = load_params(args.params)
    dataset = find_tracks(params.paths.input_dir)
    classes = dataset.classes
    folds = ((artist_folds_of if args.protocol == "artist" else folds_of)(dataset, args.folds)
             if args.folds else [])
    results = {"crnn_snippet": [], "crnn_track": [], "crnn_track_f1": [], "whole": [],
               "musicnn_snippet": [], "musicnn_track": [], "mfcc": [], "per_fold": [],
               "confusion": None}
    out_file = Path(args.out) if args.out else tag_dir / "results.json"
    all_keys = [key for name in classes for key in dataset.tracks[name]]
    shifted = {}
    if not args.no_shifts:
        from domain_shift import shifted_files

        shifted = shifted_files(dataset, all_keys, work / "shifted")
    files = {"clean": {key: dataset.root / dataset.files[key] for key in all_keys},
             **shifted}

    def shift_eval(model_dir: Path, split: dict) -> dict:
        return shift_accuracies(model_dir, split, files, classes, hops)

    features, mfcc_shifted = None, {}
    if "mfcc" in rows:
        features = {key: mfcc_features(files["clean"][key]) for key in all_keys}
        mfcc_shifted = {shift: {key: mfcc_features(path) for key, path in by_key.items()}
                        for shift, by_key in shifted.items()}
    started = time.monotonic()
    unheard: dict[str, dict] = {}
    for row, backbone in (("crnn", "crnn"), ("musicnn", "musicnn-msd"),
                          ("mtt", "musicnn-mtt")):
        if args.unheard is None or row not in rows:
            continue
        saved_file = tag_dir / f"unheard-{row}.json"
        if saved_file.exists() and not args.fresh:
            unheard[row] = json.loads(saved_file.read_text())
        else:
            settings = {**overrides, "model": {**overrides.get("model", {}),
                                               "backbone": backbone}}
            unheard[row] = unheard_row(Path(args.params), settings, tag_dir / f"all-{row}",
                                       dataset, args.unheard)
            save_fold(saved_file, unheard[row])
        print(f"unheard {row}: {unheard[row]}  ({time.monotonic() - started:.0f} s)",
              flush=True)
    for f in args.only_folds if args.only_folds is not None else range(args.folds):
        split = split_for(folds, f)
        fold_file = tag_dir / f"fold-{f}.json"
        saved = {} if args.fresh or not fold_file.exists() else json.loads(fold_file.read_text())
        fold = {"fold": f}
        if "crnn" in rows:
            fold.update(pipeline_row("crnn", saved, fold_file, run=lambda: run_pipeline(
                Path(args.params), overrides, tag_dir / "crnn", split), shift=shift_eval,
                extra=("crnn_track_f1", "confusion")))
            cm = fold["confusion"]
            results["confusion"] = (cm if results["confusion"] is None else
                                    [[a + b for a, b in zip(r1, r2)]
                                     for r1, r2 in zip(results["confusion"], cm)])
        if "whole" in rows and "whole" in saved:
            fold["whole"] = saved["whole"]
        elif "whole" in rows:
            whole = {"slicing": {"snippet_seconds": 29.0, "overlap_seconds": 0.0,
                                 "max_snippets_per_track": 1, "min_track_seconds": 20.0},
                     "model": {"crnn": {"pool_sizes": [[2, 2], [2, 5], [2, 5], [2, 2]]}},
                     "training": {"batch_size": 8}}
            for section, values in overrides.items():  # --set applies here too
                whole[section] = {**values, **whole.get(section, {})}
            ev = run_pipeline(Path(args.params), whole, tag_dir / "whole", split)
            fold["whole"] = ev["test"]["track"]["accuracy"]
            save_fold(fold_file, {**saved, **fold})
        for row, backbone in (("musicnn", "musicnn-msd"), ("mtt", "musicnn-mtt")):
            if row not in rows:
                continue
            settings = {**overrides, "model": {**overrides.get("model", {}),
                                               "backbone": backbone}}
            fold.update(pipeline_row(row, {**saved, **fold}, fold_file,
                                     run=lambda: run_pipeline(Path(args.params), settings,
                                                              tag_dir / row, split),
                                     shift=shift_eval))
        if "heads" in rows and "heads" in saved:
            fold["heads"] = saved["heads"]
        elif "heads" in rows:
            fold["heads"] = head_variants(tag_dir, classes, split)
            save_fold(fold_file, {**saved, **fold})
        if "mfcc" in rows:
            fold["mfcc"], fold["mfcc_shift"] = mfcc_fold(features, split, classes,
                                                         mfcc_shifted)
        for key, value in fold.items():
            if key not in ("fold", "confusion"):
                results.setdefault(key, []).append(value)
        results["per_fold"].append({k: v for k, v in fold.items() if k != "confusion"})
        print(f"fold {f}: " + ", ".join(f"{k} {v:.3f}" for k, v in fold.items()
                                        if isinstance(v, float))
              + f"  ({time.monotonic() - started:.0f} s)", flush=True)
        if fold.get("heads"):
            print("  heads: " + ", ".join(f"{k} {v:.2f}" for k, v in fold["heads"].items()),
                  flush=True)
        for key, value in fold.items():
            if key.endswith("_shift") and value:
                print(f"  {key}: " + ", ".join(f"{s} {a:.2f}" for s, a in value.items()),
                      flush=True)
    results["unheard"] = unheard
    save_fold(out_file, results)
    sets = "".join(f" --set {item}" for item in args.sets)
    extra = (" --no-shifts" if args.no_shifts else "") + (f" --hops {args.hops}"
                                                           if args.hops else "")
    extra += f" --unheard {args.unheard}" if args.unheard else ""
    print(f"command: python bench/accuracy.py --params {args.params} --folds {args.folds} "
          f"--protocol {args.protocol} --rows {args.rows} --tag {args.tag}{sets}{extra}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
          f"{len(results['per_fold'])} folds, {time.monotonic() - started:.0f} s")
    if unheard:
        print("\n".join(unheard_table(unheard, args.unheard)))
    if not results["per_fold"]:
        return 0
    print(f"\n{len(results['per_fold'])} folds ({args.protocol} protocol); test tracks by "
          "artists not heard in training, pooled over folds: " + ", ".join(
              f"{row} {pooled_unheard(results.get(row + '_artists', []))}"
              for row in ("crnn", "musicnn", "mtt") if results.get(row + "_artists")))
    print("| model | test accuracy, all test tracks (mean ± sd over folds) |")
    print("| --- | --- |")
    print(f"| CRNN, snippet level | {ms(results['crnn_snippet'])} |")
    print(f"| CRNN, track level (sum of snippet scores) | {ms(results['crnn_track'])} |")
    print(f"| CRNN, track macro-F1 | {ms(results['crnn_track_f1'])} |")
    print(f"| CRNN on whole 29 s clips | {ms(results['whole'])} |")
    print(f"| musicnn-msd (frozen) + softmax head, snippet level | "
          f"{ms(results['musicnn_snippet'])} |")
    print(f"| musicnn-msd (frozen) + softmax head, track level | "
          f"{ms(results['musicnn_track'])} |")
    print(f"| musicnn-mtt (frozen) + softmax head, track level | "
          f"{ms(results.get('mtt_track', []))} |")
    print(f"| MFCC/spectral stats + logistic regression | {ms(results['mfcc'])} |")
    heads = results.get("heads") or []
    for key in (heads[0] if heads else {}):
        print(f"| heads: {key} | {ms([h[key] for h in heads])} |")
    table = shift_table(results)
    if table:
        print("\ntrack accuracy under domain shifts (predict_track.py, hop 2 s; mean ± sd):")
        print("\n".join(table))
    if results["confusion"] is not None:
        from slapp.stages.label.evaluate import plot_confusion

        png = tag_dir / "confusion.png"
        plot_confusion(png, results["confusion"], classes,
                       f"CRNN, track level, {len(results['per_fold'])} folds pooled")
        print(f"confusion matrix: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
