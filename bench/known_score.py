"""Which per-track score tells music of the trained classes from music of other classes
(issue 41), and where to cut it, measured on the cached musicnn embeddings of a build.

Set-up (run once; stage 2 embeds the labelled and the library tracks):
  params: paths.input_dir ../shared/data/gtzan-mini, paths.unlabelled_dir
  ../shared/data/gtzan-other-artists, then build_dataset.py and process_dataset.py.
Then: python bench/known_score.py OUTPUT_DIR

Cases: (a) trained on blues, classical, jazz of gtzan-mini; in-class = the 120 clips of
gtzan-other-artists (artists never heard); others = gtzan-mini's other 7 genres (70).
(b) for several other choices of 3 classes: trained on gtzan-mini's tracks of those
classes minus one artist-grouped fold; in-class = that fold's tracks (artists not
heard); others = every track of the other classes. Scores: the largest class probability
(MSP), energy, and the cosine similarity of the track's mean embedding to its k nearest
training tracks (kNN); the threshold is set from the training tracks alone, leaving each
track's artist out (slapp.models.known.calibrate), at the percentiles shown.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slapp.models import known  # noqa: E402
from slapp.store.layout import BuildLayout  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
          "reggae", "rock"]


def load(output: Path):
    artists = {}
    with open(DATA / "artists.csv", newline="") as f:
        for row in csv.DictReader(f):
            artists[row["path"].split("/", 1)[1]] = row["artist"] or row["path"]
    tracks = []
    for sub, src in (("", "mini"), ("library", "other")):
        layout = BuildLayout(output / sub if sub else output)
        for path in sorted(layout.embedding_dir("musicnn-msd").rglob("*.npz")):
            key = str(path.relative_to(layout.embedding_dir("musicnn-msd")))[:-4]
            with np.load(path) as d:
                e = d["penultimate"]
            genre = key.split("/")[0]
            tracks.append(dict(key=key, src=src, genre=genre, E=e,
                               artist=artists.get(key.replace(".npz", ""), key)))
    return tracks


def scores(train, test, classes, k):
    x = np.concatenate([t["E"] for t in train])
    y = np.concatenate([[classes.index(t["genre"])] * len(t["E"]) for t in train])
    head = LogisticRegression(C=0.1, max_iter=2000).fit(x, y)
    ref = known.track_vectors([t["E"] for t in train])
    out = {"msp": [], "energy": [], "knn1": [], f"knn{k}": []}
    pred = []
    for t in test:
        logits = head.decision_function(t["E"])
        probs = head.predict_proba(t["E"]).mean(axis=0)
        pred.append(classes[int(np.argmax(probs))])
        out["msp"].append(probs.max())
        m = logits.mean(axis=0)
        out["energy"].append(float(np.log(np.exp(m - m.max()).sum()) + m.max()))
        v = known.track_vectors([t["E"]])
        out["knn1"].append(float(known.similarity(v, ref, 1)[0]))
        out[f"knn{k}"].append(float(known.similarity(v, ref, k)[0]))
    cal = known.calibrate(ref, [t["artist"] for t in train], k)
    return {m: np.array(s) for m, s in out.items()}, np.array(pred), cal


QUANTILES = (0.05, 0.10, 0.20, 0.30)


def report(name, folds, classes, k=known.K):
    """``folds``: ``[(train, inside, others)]``; scores pooled over the folds, each
    fold's raw scores placed on its own calibration (``known``)."""
    s_in, s_out, pred, truth, k_in, k_out = {}, {}, [], [], [], []
    for train, inside, others in folds:
        a, p, cal = scores(train, inside, classes, k)
        b, _, _ = scores(train, others, classes, k)
        for m in a:
            s_in.setdefault(m, []).extend(a[m])
            s_out.setdefault(m, []).extend(b[m])
        k_in.extend(known.known_scores(a[f"knn{k}"], cal))
        k_out.extend(known.known_scores(b[f"knn{k}"], cal))
        pred.extend(p)
        truth.extend(t["genre"] for t in inside)
    s_in = {m: np.array(v) for m, v in s_in.items()}
    s_out = {m: np.array(v) for m, v in s_out.items()}
    pred, truth, k_in, k_out = map(np.array, (pred, truth, k_in, k_out))
    train, inside, others = folds[0][0], truth, s_out["msp"]
    print(f"\n{name}: {len(train)} training tracks (first fold), {len(inside)} in-class "
          f"(unheard artists), {len(others)} of other classes; in-class accuracy "
          f"{np.mean(pred == truth):.3f}")
    for m in s_in:
        y = np.r_[np.ones(len(s_in[m])), np.zeros(len(s_out[m]))]
        print(f"  AUROC {m:7s} {roc_auc_score(y, np.r_[s_in[m], s_out[m]]):.3f}")
    for q in QUANTILES:
        flag_in, flag_out = k_in < q, k_out < q
        kept = ~flag_in
        print(f"  none below known {q:.2f}: none for {flag_out.mean():.2f} of the others, "
              f"{flag_in.mean():.2f} of the in-class; accuracy of the in-class kept "
              f"{np.mean(pred[kept] == truth[kept]) if kept.any() else float('nan'):.3f}")


def main(output: Path):
    tracks = load(output)
    three = ["blues", "classical", "jazz"]
    mini = [t for t in tracks if t["src"] == "mini"]
    other = [t for t in tracks if t["src"] == "other"]
    report("(a) blues, classical, jazz → gtzan-other-artists",
           [([t for t in mini if t["genre"] in three], other,
             [t for t in mini if t["genre"] not in three])], three)
    report("(c) all ten classes → gtzan-other-artists (in-class only: the share made none)",
           [(mini, other, mini[:1])], GENRES)
    rng = np.random.default_rng(0)
    for _ in range(5):
        chosen = sorted(rng.choice(GENRES, 3, replace=False).tolist())
        inside = [t for t in mini if t["genre"] in chosen]
        artists = rng.permutation(sorted({t["artist"] for t in inside}))
        folds = []
        for i in range(5):
            fold = set(artists[i::5])
            held = [t for t in inside if t["artist"] in fold]
            train = [t for t in inside if t["artist"] not in fold]
            if len({t["genre"] for t in train}) == 3 and held:
                folds.append((train, held, [t for t in tracks if t["genre"] not in chosen]))
        report(f"(b) {', '.join(chosen)}; 5 artist folds", folds, chosen)
    print(f"\ncommand: python bench/known_score.py {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
