"""Learning from the unlabelled library, on synthetic embeddings: propagation moves a held-out
cluster to its class, the second round's head learns it, and the suggestions are uncertain,
representative and never near-copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slapp.models import self_training as st
from slapp.models.suggest import NEAR_COPY, suggest_tracks


def _chain_world(seed=0, n=12):
    """Labelled tracks of class 0 around (+2, 0) and class 1 around (-2, 0); the library:
    class-0 music by other artists, a chain from (+2, 0) that bends round to a cluster at
    (-0.6, 4), a little nearer class 1's centre than class 0's (what a model trained on the
    labelled tracks alone gets wrong, unsure), and class-1 library tracks near (-2, 0)."""
    rng = np.random.default_rng(seed)
    a = rng.normal([2, 0], 0.2, (n, 2))
    b = rng.normal([-2, 0], 0.2, (n, 2))
    t = np.linspace(0, 1, 14)[:, None]
    chain = np.hstack([2 - 2.6 * t, 4 * t]) + rng.normal(0, 0.05, (14, 2))
    far = rng.normal([-0.6, 4], 0.1, (8, 2))
    lib_b = rng.normal([-2, 0], 0.2, (6, 2))
    return a, b, chain, far, lib_b


def _prior(points):
    """A nearest-centre "model": softmax of minus the squared distances to the labelled
    class centres over 4 (unsure far from both)."""
    d = np.stack([((points - c) ** 2).sum(1) for c in ([2, 0], [-2, 0])], axis=1)
    e = np.exp(-(d - d.min(1, keepdims=True)) / 4)
    return e / e.sum(1, keepdims=True)


def test_propagation_gives_unsure_tracks_the_class_of_their_neighbourhood():
    """Library tracks the model is unsure of (0.5 / 0.5, or leaning wrong at 0.45) next to
    class-0 tracks take class 0; those next to class 1 take class 1; alpha 0 is the model
    alone."""
    rng = np.random.default_rng(0)
    a = rng.normal([2, 0], 0.2, (10, 2))
    b = rng.normal([-2, 0], 0.2, (10, 2))
    unsure_a = rng.normal([2.5, 0.5], 0.1, (4, 2))
    unsure_b = rng.normal([-2.5, 0.5], 0.1, (4, 2))
    emb = np.vstack([a, b, unsure_a, unsure_b])
    prior_lib = np.array([[0.5, 0.5], [0.45, 0.55], [0.5, 0.5], [0.45, 0.55]] * 2)
    prior = np.vstack([np.eye(2)[[0] * 10 + [1] * 10], prior_lib])
    spread = st.propagate(prior, _euclid_graph(emb, 4), alpha=0.8)[20:]
    assert spread.argmax(1).tolist() == [0] * 4 + [1] * 4
    np.testing.assert_allclose(spread.sum(1), 1.0)
    keep, labels = st.pseudo_labels(spread, 0.6)
    assert keep.tolist() == list(range(8)) and labels.tolist() == [0] * 4 + [1] * 4
    alone = st.propagate(prior, _euclid_graph(emb, 4), alpha=0.0)[20:]
    np.testing.assert_allclose(alone, prior_lib)


def _euclid_graph(points, k):
    """A k-NN graph with similarities exp(-distance²) (the 2-D world has no angles)."""
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, axis=1)[:, :k]
    return st.Graph(nb, np.exp(-np.take_along_axis(d, nb, 1)))


def test_knn_graph_never_lists_a_track_as_its_own_neighbour():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(50, 8))
    unit = st.unit_rows(emb, emb.mean(0), emb.std(0))
    graph = st.knn_graph(unit, 5, block=7)  # blocks that do not divide 50
    assert graph.neighbours.shape == (50, 5)
    assert not (graph.neighbours == np.arange(50)[:, None]).any()
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    best = np.argsort(-sims, axis=1)[:, :5]
    assert (np.sort(graph.neighbours, 1) == np.sort(best, 1)).all()


def test_pseudo_labels_take_only_scores_at_or_above_the_threshold():
    scores = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.5, 0.5]])
    keep, labels = st.pseudo_labels(scores, 0.8)
    assert keep.tolist() == [0, 2] and labels.tolist() == [0, 1]


def test_track_means_average_each_tracks_rows():
    rows = np.array([[1.0, 0], [3, 0], [0, 2], [0, 4], [0, 6]])
    means = st.track_means(rows, np.array([0, 0, 2, 2, 2]), 3)
    np.testing.assert_allclose(means, [[2, 0], [0, 0], [0, 4]])


def test_suggestions_skip_near_copies_and_take_each_artist_once_first():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 16)) * 3
    emb, scores, artists = [], [], []
    for c in range(6):
        for i in range(5):
            emb.append(centres[c] + rng.normal(0, 0.3, 16))
            artists.append(f"artist {c}")
            scores.append([0.5, 0.5] if c == 0 else [0.9, 0.1])  # cluster 0: unsure
    # five near-copies of the most uncertain track (a compilation, the same recording)
    for _ in range(5):
        emb.append(emb[0] + rng.normal(0, 1e-3, 16))
        artists.append("artist 0")
        scores.append([0.5, 0.5])
    emb, scores = np.array(emb), np.array(scores)
    picked = suggest_tracks(scores, emb, 6, groups=artists)
    assert len(picked) == 6 and len(set(picked.tolist())) == 6
    assert artists[picked[0]] == "artist 0"  # the unsure cluster first
    assert sorted(artists[i] for i in picked) == [f"artist {c}" for c in range(6)]
    z = (emb - emb.mean(0)) / (emb.std(0) + 1e-6)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    sims = unit[picked] @ unit[picked].T
    np.fill_diagonal(sims, 0)
    assert sims.max() <= NEAR_COPY
    # without artists: still no two near-copies among ten picks
    picked = suggest_tracks(scores, emb, 10)
    sims = unit[picked] @ unit[picked].T
    np.fill_diagonal(sims, 0)
    assert sims.max() <= NEAR_COPY


def test_suggestions_prefer_uncertain_tracks_that_stand_for_many():
    rng = np.random.default_rng(4)
    crowd = rng.normal([0, 0, 0, 0], 0.2, (20, 4))       # a dense region
    loner = np.array([[9.0, 9, 9, 9]])                   # an outlier
    emb = np.vstack([crowd, loner])
    scores = np.vstack([np.tile([0.6, 0.4], (20, 1)), [[0.5, 0.5]]])
    scores[7] = [0.52, 0.48]  # the crowd's most uncertain track
    picked = suggest_tracks(scores, emb, 1)
    assert picked.tolist() == [7]


@pytest.mark.parametrize("n", [0, -1])
def test_no_suggestions_for_zero(n):
    assert suggest_tracks(np.ones((3, 2)) / 2, np.eye(3), n).tolist() == []


def test_second_round_head_learns_the_moved_cluster(tmp_path):
    """The production pieces end to end on embeddings: a head trained on the labelled
    tracks labels the far cluster wrong; :func:`pseudo_label` (propagate) writes the
    second round's arrays; a head trained on them labels the cluster right."""
    from slapp.models.backbones.musicnn_msd import build_head
    from slapp.models.keras_env import import_keras
    from slapp.params import params_from_dict
    from slapp.stages.train.library_round import library_scores, pseudo_label
    from slapp.store.layout import ArraysLayout

    keras = import_keras()
    a, b, chain, far, lib_b = _chain_world(n=20)
    lift = np.random.default_rng(5).normal(size=(2, 32))  # 2-D world in 32 dims
    per = 3  # snippets per track
    labelled = np.vstack([a, b])
    y = np.array([0] * len(a) + [1] * len(b))
    library = np.vstack([chain, far, lib_b])
    arrays = ArraysLayout(tmp_path / "arrays")
    arrays.root.mkdir()
    rng = np.random.default_rng(6)

    def snippets(points):
        rows = np.repeat(points, per, axis=0) + rng.normal(0, 0.02, (len(points) * per, 2))
        return (rows @ lift).astype(np.float32)

    np.save(arrays.array("train", "E"), snippets(labelled))
    np.save(arrays.array("train", "y"), np.repeat(y, per))
    np.save(arrays.array("train", "track"), np.repeat(np.arange(len(labelled)), per))
    np.save(arrays.array("library", "E"), snippets(library))
    np.save(arrays.array("library", "track"), np.repeat(np.arange(len(library)), per))
    arrays.library_file.write_text(json.dumps({"keys": [f"t{i}" for i in range(len(library))]}))
    params = params_from_dict({"paths": {"input_dir": "x", "unlabelled_dir": "lib"},
                               "training": {"library": {"method": "propagate",
                                                        "neighbours": 4, "alpha": 0.95,
                                                        "min_confidence": 0.6}}})

    def fit(x, labels):
        keras.utils.set_random_seed(0)
        model = build_head(32, 2)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
        model.fit(x, np.eye(2)[labels], epochs=60, batch_size=16, verbose=0)
        return model

    first = fit(np.load(arrays.array("train", "E")), np.load(arrays.array("train", "y")))
    far_rows = slice(len(chain), len(chain) + len(far))
    from slapp.stages.train.library_round import track_scores

    lib_e, lib_t = np.load(arrays.array("library", "E")), np.load(arrays.array("library", "track"))
    before = track_scores(first, lib_e, lib_t, len(library))
    assert (before[far_rows].argmax(1) == 1).mean() >= 0.75  # mostly wrong at first
    spread = library_scores(params, arrays, first, 2)  # the neighbours pull it to class 0
    assert spread[far_rows, 0].mean() > before[far_rows, 0].mean() + 0.1
    pseudo = pseudo_label(params, arrays, first, ["a", "b"], arrays.array("train", "E"),
                          tmp_path / "round-1")
    assert pseudo.scored == len(library)
    assert pseudo.joined == {"a": int((spread[:, 0] >= 0.6).sum()),
                             "b": int((spread[:, 1] >= 0.6).sum())}
    again = pseudo_label(params, arrays, first, ["a", "b"], arrays.array("train", "E"),
                         tmp_path / "round-1")  # a resumed run reads the same arrays back
    assert again.joined == pseudo.joined and (again.labels == pseudo.labels).all()
    second = fit(np.load(pseudo.x_file), pseudo.labels)
    after = track_scores(second, lib_e, lib_t, len(library))
    assert (after[far_rows].argmax(1) == 0).all()
    assert (after[-len(lib_b):].argmax(1) == 1).all()  # the other class stays


def test_suggestions_file_keeps_earlier_rows_and_works_without_embeddings(tmp_path):
    """A CRNN bundle gives no embedding: suggestions spread over the class scores; a
    second call keeps the first rows (and an answer) and never lists a track twice."""
    import csv

    from slapp.stages.label.outputs import TrackResult
    from slapp.stages.train.suggestions import unanswered, write_suggestions

    results = []
    for i in range(8):
        path = tmp_path / "lib" / f"t{i}.wav"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
        p = 0.5 + 0.05 * i
        results.append(TrackResult(path=str(path), label="a", confidence=p,
                                   scores={"a": p, "b": 1 - p}, seconds=3.0))
    target = tmp_path / "to-label.csv"
    first = write_suggestions(results, 3, target)
    assert first.by_class_space and len(first.new) == 3
    assert first.new[0].path == results[0].path  # the most uncertain first
    rows = list(csv.DictReader(target.open()))
    assert [r["path"] for r in rows] == [r.path for r in first.new]
    rows[0]["label"] = "b"
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert unanswered(target) == 2
    second = write_suggestions(results, 2, target)
    again = list(csv.DictReader(target.open()))
    assert second.kept == 3 and second.answered == 1
    assert again[0]["label"] == "b" and len(again) == 5
    assert len({r["path"] for r in again}) == 5
    playlist = target.with_suffix(".m3u8").read_text().splitlines()
    assert playlist[0] == "#EXTM3U" and playlist[2] == "lib/" + Path(second.new[0].path).name
