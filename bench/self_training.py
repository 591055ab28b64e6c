#!/usr/bin/env python3
"""Learning from the unlabelled library (issue 33): which self-training / transductive
method, and which tracks to ask the user to label.

Reads the per-track musicnn-msd embeddings that the pipeline's own stages 1–2 cached
(``<output>/embeddings/musicnn-msd/<key>.npz``: every build snippet's 200-d penultimate
embedding), so nothing here embeds audio. Make them with the scripts:

    build_dataset.py + process_dataset.py, paths.input_dir = gtzan-mini → --labelled DIR
    the same with paths.input_dir = gtzan-other-artists                  → --library DIR

The head is trained as stage 3 trains it (:func:`slapp.models.backbones.musicnn_msd.build_head`,
Adam 1e-3, batch 32, up to 30 epochs, early stopping and the best epoch on a validation
set of labelled artists). Methods (``--methods``):

- ``base``: the head alone (today's default);
- ``st:T``: self-training, one round: library tracks whose track score (mean snippet
  probability) is ≥ T become pseudo-labelled training tracks, the head is trained again;
- ``lp:A:K:T``: the same, but the track scores are first propagated over the k-NN graph
  (K neighbours) of labelled and library tracks (weight A, labelled tracks clamped to
  their truth: :mod:`slapp.models.self_training`);
- ``rc``: the library's embeddings re-centred on the labelled mean before scoring;
- ``stw:T:W``: ``st:T`` with the pseudo-labelled snippets weighted W in the loss;
- ``sta:T:A``: ``st:T`` keeping only tracks whose snippets vote the label in share ≥ A.

Protocols: ``--protocol folds`` (choose here): 5 artist-disjoint folds of the labelled
collection; each fold's held-out tracks are the "library" (unlabelled), the next fold
validates; one-artist classes are cut in blocks (heard artists: said so).
``--protocol library`` (report once): all labelled tracks (a tenth, whole artists, for
validation), the ``--library`` folder as the library; its labels are used only to score.
``--suggest 3,6,10,15``: after the chosen method, label N tracks of the library from the
truth — the suggested ones (:mod:`slapp.models.suggest`) or N random ones (``--random-draws``
seeds) — retrain with them, and score the rest of the library.

Usage: python bench/self_training.py --labelled /tmp/st/mini --library /tmp/st/other
       [--protocol folds|library] [--methods base,st:0.9,lp:0.8:10:0.8] [--suggest 3,6,10]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def load_tracks(output: Path, root: str) -> list[dict]:
    """Per built track: key, class (its first folder), artist, snippet embeddings."""
    from slapp.store.atomic import read_json

    artists = {}
    with open(DATA / "artists.csv", newline="") as f:
        for row in csv.DictReader(f):
            artists[row["path"]] = row["artist"] or None
    manifest = read_json(output / "build_manifest.json")["tracks"]
    out = []
    for key in sorted(manifest):
        if manifest[key].get("status") != "done":
            continue
        with np.load(output / "embeddings" / "musicnn-msd" / f"{key}.npz") as data:
            emb = data["penultimate"]
        out.append({"key": key, "class": key.split("/")[0], "emb": emb,
                    "artist": artists.get(f"{root}/{key}") or key})
    return out


def fit_head(x, y, xv, yv, n_classes, weights=None, seed=0):
    from slapp.models.backbones.musicnn_msd import build_head
    from slapp.models.keras_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model = build_head(x.shape[1], n_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    eye = np.eye(n_classes, dtype=np.float32)
    stop = keras.callbacks.EarlyStopping("val_loss", patience=6, min_delta=1e-3,
                                         restore_best_weights=True)
    lower = keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=3,
                                              min_delta=1e-3)
    model.fit(x, eye[y], sample_weight=weights, batch_size=32, epochs=30, verbose=0,
              validation_data=(xv, eye[yv]), callbacks=[stop, lower], shuffle=True)
    return model


def snippets(tracks, labels=None):
    x = np.concatenate([t["emb"] for t in tracks])
    track = np.concatenate([[i] * len(t["emb"]) for i, t in enumerate(tracks)])
    y = None if labels is None else np.asarray(labels)[track]
    return x.astype(np.float32), y, track


def track_scores(model, tracks):
    from slapp.models.self_training import track_means

    x, _, track = snippets(tracks)
    probs = model.predict(x, batch_size=256, verbose=0)
    return track_means(probs, track, len(tracks))


def run_method(method, labelled, lab_y, val, val_y, library, classes, extra=()):
    """Track scores ``(len(library), C)`` of ``method``; ``extra``: (track, class) pairs
    of library tracks labelled by the user (training tracks, clamped in the graph)."""
    from slapp.models import self_training as st

    n = len(classes)
    train = list(labelled) + [library[i] for i, _ in extra]
    train_y = list(lab_y) + [c for _, c in extra]
    x, y, _ = snippets(train, train_y)
    xv, yv, _ = snippets(val, val_y)
    weights = None
    if method.startswith("aw:"):  # the user's answers count W times a labelled clip
        n_lab = len(snippets(list(labelled), list(lab_y))[0]) if labelled else 0
        weights = np.where(np.arange(len(y)) < n_lab, 1.0, float(method.split(":")[1]))
        weights = weights.astype(np.float32)
    model = fit_head(x, y, xv, yv, n, weights=weights)
    lib = library
    if method == "rc":
        shift = x.mean(axis=0) - snippets(library)[0].mean(axis=0)
        lib = [{**t, "emb": t["emb"] + shift} for t in library]
    scores = track_scores(model, lib)
    if method in ("base", "rc") or method.startswith("aw:"):
        return scores
    kind, *args = method.split(":")
    if kind == "lp":
        alpha, k, threshold = float(args[0]), int(args[1]), float(args[2])
        both = [t["emb"].mean(axis=0) for t in train] + [t["emb"].mean(axis=0) for t in library]
        emb = np.asarray(both)
        unit = st.unit_rows(emb, emb.mean(axis=0), emb.std(axis=0))
        prior = np.vstack([np.eye(n)[train_y], scores])
        spread = st.propagate(prior, st.knn_graph(unit, k), alpha=alpha)[len(train):]
    else:
        threshold, spread = float(args[0]), scores
    keep, labels = st.pseudo_labels(spread, threshold)
    if kind == "sta":  # and most snippets vote for the label
        agree = float(args[1])
        votes = [np.mean(model.predict(library[i]["emb"], verbose=0).argmax(1) == c)
                 for i, c in zip(keep, labels)]
        keep, labels = keep[np.array(votes) >= agree], labels[np.array(votes) >= agree]
    user = {i for i, _ in extra}
    keep_labels = [(i, c) for i, c in zip(keep, labels) if i not in user]
    x2, y2, _ = snippets(train + [library[i] for i, _ in keep_labels],
                         train_y + [c for _, c in keep_labels])
    weights = None
    if kind == "stw":  # pseudo-labelled rows count less
        weights = np.where(np.arange(len(y2)) < len(x), 1.0, float(args[1])).astype(np.float32)
    model = fit_head(x2, y2, xv, yv, n, weights=weights)
    return track_scores(model, library)


def recall_table(scores, truth, classes, keys=None):
    """``{class: (right, total)}`` over the rows of ``scores`` whose index is in keys."""
    keys = range(len(truth)) if keys is None else keys
    out = {}
    for i in keys:
        r = out.setdefault(classes[truth[i]], [0, 0])
        r[0] += int(scores[i].argmax() == truth[i])
        r[1] += 1
    return out


def mean_recall(table):
    return float(np.mean([r / t for r, t in table.values()]))


def fold_roles(folds, f, library_folds=1):
    """``(library indices, validation indices)`` of rotation ``f``: ``library_folds``
    folds from f on are the library, the next one validates, the rest is labelled."""
    k = len(folds)
    test = set().union(*(folds[(f + j) % k] for j in range(library_folds)))
    return test, folds[(f + library_folds) % k]


def folds_protocol(tracks, classes, methods, k=5, subset=None, library_folds=1):
    """Pooled per-genre recall over k artist-disjoint folds of the labelled collection;
    ``subset``: only these classes' held-out tracks make the library;
    ``library_folds``: folds per rotation that make the library (more: a smaller
    labelled collection and a larger library)."""
    folds = artist_folds(tracks, k)
    pooled = {m: {} for m in methods}
    for f in range(k):
        test, val = fold_roles(folds, f, library_folds)
        lab = [t for i, t in enumerate(tracks) if i not in test and i not in val]
        vt = [tracks[i] for i in sorted(val)]
        lib = [tracks[i] for i in sorted(test)
               if subset is None or tracks[i]["class"] in subset]
        truth = [classes.index(t["class"]) for t in lib]
        for m in methods:
            s = run_method(m, lab, [classes.index(t["class"]) for t in lab], vt,
                           [classes.index(t["class"]) for t in vt], lib, classes)
            for c, (r, n) in recall_table(s, truth, classes).items():
                p = pooled[m].setdefault(c, [0, 0])
                p[0] += r
                p[1] += n
        print(f"fold {f}: " + ", ".join(f"{m} {mean_recall(pooled[m]):.3f}" for m in methods),
              flush=True)
    return pooled


def artist_folds(tracks, k):
    """Test indices per fold: whole artists per class dealt to folds (largest first);
    a one-artist class is cut into blocks."""
    folds = [set() for _ in range(k)]
    by_class = {}
    for i, t in enumerate(tracks):
        by_class.setdefault(t["class"], {}).setdefault(t["artist"], []).append(i)
    for groups in by_class.values():
        sizes = [0] * k
        items = sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))
        if len(groups) < 2:
            idx = items[0][1]
            items = [(j, idx[len(idx) * j // k:len(idx) * (j + 1) // k]) for j in range(k)]
        for _, idx in items:
            f = sizes.index(min(sizes))
            folds[f].update(idx)
            sizes[f] += len(idx)
    return folds


def library_split(tracks, classes):
    """(train, val): a tenth of the labelled tracks, whole artists, for early stopping."""
    val = artist_folds(tracks, 10)[0]
    return ([t for i, t in enumerate(tracks) if i not in val],
            [tracks[i] for i in sorted(val)])


def print_table(rows, classes_present):
    print("| method | " + " | ".join(classes_present) + " | mean recall |")
    print("| --- |" + " --- |" * (len(classes_present) + 1))
    for name, table in rows.items():
        cells = [f"{table[c][0]}/{table[c][1]}" if c in table else "-" for c in classes_present]
        print(f"| {name} | " + " | ".join(cells) + f" | {mean_recall(table):.3f} |")


def confusion(scores, truth, classes):
    present = sorted({classes[t] for t in truth})
    counts = {c: {} for c in present}
    for s, t in zip(scores, truth):
        got = classes[int(s.argmax())]
        counts[classes[t]][got] = counts[classes[t]].get(got, 0) + 1
    for c in present:
        print(f"  {c}: " + ", ".join(f"{g} {n}" for g, n in sorted(counts[c].items(),
                                                                 key=lambda g: -g[1])))


def pick(how, scores, emb, n, groups):
    """The tracks a suggestion variant picks: ``suggest`` (production: artists rotate),
    ``suggest-any-artist`` (no artist rotation), ``uncertain`` (smallest margin only)."""
    from slapp.models.suggest import suggest_tracks

    if how == "suggest":
        return suggest_tracks(scores, emb, n, groups=groups)
    if how == "suggest-any-artist":
        return suggest_tracks(scores, emb, n)
    ordered = np.sort(scores, axis=1)
    return np.argsort(ordered[:, -1] - ordered[:, -2])[:n]


VARIANTS = ("suggest", "suggest-any-artist", "uncertain")


def folds_suggest(tracks, classes, method, sizes, draws, k=5, library_folds=1):
    """Per size and variant, mean recall on the rest of each fold's library, pooled."""
    folds = artist_folds(tracks, k)
    pooled = {}
    rng = np.random.default_rng(0)
    for f in range(k):
        test, val = fold_roles(folds, f, library_folds)
        lab = [t for i, t in enumerate(tracks) if i not in test and i not in val]
        vt = [tracks[i] for i in sorted(val)]
        lib = [tracks[i] for i in sorted(test)]
        lab_y = [classes.index(t["class"]) for t in lab]
        val_y = [classes.index(t["class"]) for t in vt]
        truth = np.array([classes.index(t["class"]) for t in lib])
        x, y, _ = snippets(lab, lab_y)
        scores = track_scores(fit_head(x, y, *snippets(vt, val_y)[:2], len(classes)), lib)
        emb = np.asarray([t["emb"].mean(axis=0) for t in lib])
        groups = [t["artist"] for t in lib]
        for n in sizes:
            sets = {v: [pick(v, scores, emb, n, groups)] for v in VARIANTS}
            sets["random"] = [rng.choice(len(lib), n, replace=False) for _ in range(draws)]
            for how, chosen_sets in sets.items():
                for chosen in chosen_sets:
                    chosen = {int(i) for i in chosen}
                    extra = [(i, int(truth[i])) for i in sorted(chosen)]
                    s = run_method(method, lab, lab_y, vt, val_y, lib, classes, extra)
                    rest = [i for i in range(len(lib)) if i not in chosen]
                    table = recall_table(s, truth, classes, rest)
                    acc = pooled.setdefault((n, how), [0, 0])
                    acc[0] += sum(r for r, _ in table.values())
                    acc[1] += sum(t for _, t in table.values())
        print(f"fold {f}: " + ", ".join(f"{n}/{h} {r / t:.3f}"
                                        for (n, h), (r, t) in pooled.items()), flush=True)
    print("| labelled by the user per fold | how | track accuracy on the rest (pooled) |")
    print("| --- | --- | --- |")
    for (n, how), (r, t) in pooled.items():
        print(f"| {n} | {how} | {r}/{t} = {r / t:.3f} |")


def suggest_protocol(method, lab, val, lib, classes, sizes, draws, seed=0):
    from slapp.models.suggest import suggest_tracks

    lab_y = [classes.index(t["class"]) for t in lab]
    val_y = [classes.index(t["class"]) for t in val]
    truth = np.array([classes.index(t["class"]) for t in lib])
    x, y, _ = snippets(lab, lab_y)
    model = fit_head(x, y, *snippets(val, val_y)[:2], len(classes))
    scores = track_scores(model, lib)
    emb = np.asarray([t["emb"].mean(axis=0) for t in lib])
    groups = [t["artist"] for t in lib]
    rng = np.random.default_rng(seed)
    for n in sizes:
        picks = {"suggested": [suggest_tracks(scores, emb, n, groups=groups)]}
        picks["random"] = [rng.choice(len(lib), n, replace=False) for _ in range(draws)]
        for how, sets in picks.items():
            results = []
            for chosen in sets:
                extra = [(int(i), int(truth[i])) for i in chosen]
                s = run_method(method, lab, lab_y, val, val_y, lib, classes, extra)
                rest = [i for i in range(len(lib)) if i not in set(int(c) for c in chosen)]
                results.append(mean_recall(recall_table(s, truth, classes, rest)))
            artists = len({groups[int(i)] for i in sets[0]})
            print(f"| {n} | {how} | {np.mean(results):.3f}"
                  + (f" ± {np.std(results):.3f} ({len(results)} draws)" if len(sets) > 1
                     else f" ({artists} artists)") + " |", flush=True)


def folds_rounds(tracks, classes, method, per_round, rounds, draws, library_folds=2):
    """:func:`rounds_protocol` on each rotation of 5 artist-disjoint folds (the held-out
    folds are the library); figures averaged over rotations and draws."""
    folds = artist_folds(tracks, 5)
    pooled: dict = {}
    for f in range(5):
        test, val = fold_roles(folds, f, library_folds)
        lab = [t for i, t in enumerate(tracks) if i not in test and i not in val]
        out = rounds_protocol(method, lab, [tracks[i] for i in sorted(val)],
                              [tracks[i] for i in sorted(test)], classes, per_round, rounds,
                              draws, seed=f)
        for key, vals in out.items():
            pooled.setdefault(key, []).extend(vals)
        print(f"# rotation {f} done", flush=True)
    print_rounds(pooled, f"{method}, 5 rotations, {library_folds} folds the library")


def rounds_protocol(method, lab, val, lib, classes, per_round, rounds, draws, seed=0):
    """The loop as a user runs it: ``rounds`` rounds of ``per_round`` answers (from the
    truth), each round's picks from the model trained on the answers so far; accuracy and
    mean per-class recall on the library tracks never answered."""
    from slapp.models.suggest import suggest_tracks

    lab_y = [classes.index(t["class"]) for t in lab]
    val_y = [classes.index(t["class"]) for t in val]
    truth = np.array([classes.index(t["class"]) for t in lib])
    emb = np.asarray([t["emb"].mean(axis=0) for t in lib])
    groups = [t["artist"] for t in lib]
    rng = np.random.default_rng(seed)

    def score(chosen):
        extra = [(i, int(truth[i])) for i in sorted(chosen)]
        s = run_method(method, lab, lab_y, val, val_y, lib, classes, extra)
        rest = [i for i in range(len(lib)) if i not in chosen]
        table = recall_table(s, truth, classes, rest)
        right = sum(r for r, _ in table.values())
        return s, right / max(1, sum(n for _, n in table.values())), mean_recall(table)

    out = {}
    for how, n_draws in (("suggested", 1), ("random", draws)):
        for _ in range(n_draws):
            chosen: set[int] = set()
            s, acc, rec = score(chosen)
            out.setdefault((how, 0), []).append((acc, rec))
            for r in range(1, rounds + 1):
                free = np.array([i for i in range(len(lib)) if i not in chosen])
                if how == "suggested":
                    picks = suggest_tracks(s[free], emb[free], per_round,
                                           groups=[groups[i] for i in free])
                else:
                    picks = rng.choice(len(free), per_round, replace=False)
                chosen |= {int(free[i]) for i in picks}
                s, acc, rec = score(chosen)
                out.setdefault((how, r * per_round), []).append((acc, rec))
    return out


def print_rounds(out, method):
    print(f"| answers | how | accuracy on the rest | mean recall on the rest | ({method}) |")
    print("| --- | --- | --- | --- | --- |")
    for (how, n), vals in sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        a, r = np.mean(vals, axis=0)
        spread = f" ± {np.std([v[1] for v in vals]):.3f} ({len(vals)} draws)" if len(vals) > 1 else ""
        print(f"| {n} | {how} | {a:.3f} | {r:.3f}{spread} | |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", default="/tmp/st/mini")
    parser.add_argument("--library", default="/tmp/st/other")
    parser.add_argument("--protocol", choices=("folds", "library", "rounds", "folds-rounds"),
                        default="folds")
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", default="base,st:0.9,lp:0.8:10:0.8")
    parser.add_argument("--suggest", default="")
    parser.add_argument("--subset", default="",
                        help="folds: only these classes (comma-separated) make the library")
    parser.add_argument("--random-draws", type=int, default=5)
    parser.add_argument("--library-folds", type=int, default=1,
                        help="folds: how many of the 5 folds make the library per rotation")
    args = parser.parse_args()
    started = time.monotonic()
    print("# python bench/self_training.py " + " ".join(sys.argv[1:]))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores")
    tracks = load_tracks(Path(args.labelled), "gtzan-mini")
    classes = sorted({t["class"] for t in tracks})
    methods = args.methods.split(",")
    if args.protocol == "folds":
        subset = args.subset.split(",") if args.subset else None
        if args.suggest:
            folds_suggest(tracks, classes, methods[-1],
                          [int(n) for n in args.suggest.split(",")], args.random_draws,
                          library_folds=args.library_folds)
            print(f"# {time.monotonic() - started:.0f} s")
            return 0
        pooled = folds_protocol(tracks, classes, methods, subset=subset,
                                library_folds=args.library_folds)
        print("5 artist-disjoint folds of the labelled collection, held-out tracks as the "
              "library (blues, classical, reggae, rock: one artist each, heard)"
              + (f"; library: only {', '.join(subset)}" if subset else "")
              + (f"; {args.library_folds} folds per rotation make the library"
                 if args.library_folds > 1 else ""))
        print_table(pooled, subset or classes)
    elif args.protocol == "rounds":
        lib = load_tracks(Path(args.library), "gtzan-other-artists")
        lab, val = library_split(tracks, classes)
        for m in methods:
            print_rounds(rounds_protocol(m, lab, val, lib, classes, args.per_round,
                                         args.rounds, args.random_draws), m)
    elif args.protocol == "folds-rounds":
        for m in methods:
            folds_rounds(tracks, classes, m, args.per_round, args.rounds, args.random_draws,
                         library_folds=args.library_folds)
    else:
        lib = load_tracks(Path(args.library), "gtzan-other-artists")
        lab, val = library_split(tracks, classes)
        truth = [classes.index(t["class"]) for t in lib]
        present = sorted({t["class"] for t in lib})
        rows = {}
        for m in methods:
            s = run_method(m, lab, [classes.index(t["class"]) for t in lab], val,
                           [classes.index(t["class"]) for t in val], lib, classes)
            rows[m] = recall_table(s, truth, classes)
            print(f"{m}: confusion (truth: labels)")
            confusion(s, truth, classes)
        print_table(rows, present)
        if args.suggest:
            print("| labelled by the user | how | mean recall on the rest |")
            print("| --- | --- | --- |")
            suggest_protocol(methods[-1], lab, val, lib, classes,
                             [int(n) for n in args.suggest.split(",")], args.random_draws)
    print(f"# {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
