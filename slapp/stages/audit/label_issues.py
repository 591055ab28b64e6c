"""Likely wrong labels, from the audio: out-of-fold predictions on a pretrained embedding,
ranked by confident learning.

Every track is embedded once by musicnn-MSD (frozen, :mod:`slapp.models.musicnn`; on
onnxruntime, through the same ONNX backbone as stage 2's embeddings, so the audit imports
no TensorFlow): up to
:data:`PATCHES` 3-second patches spread over the track (the ``"label"`` snippet plan that
prediction uses, capped), through slapp's musicnn input path (16 kHz, levelled, trimmed),
their 200-d "penultimate" features averaged. A logistic
regression (scikit-learn) on these predicts each track from folds it was not trained on;
the folds keep an artist's tracks together (so a track is not recognised by its artist),
except for an artist who makes up most of a class, whose tracks are dealt one by one (a
class would otherwise vanish from training). ``cleanlab.filter.find_label_issues`` then
finds the tracks whose folder disagrees with what they sound like; a track whose folder
the predictions contradict outright (:data:`OUTRIGHT`) is added where confident learning's
per-class thresholds, estimated from a handful of tracks, let it pass. They are ranked by
how little the model believes their folder (self-confidence).

With the default backbone (``musicnn-msd``) the build's cached snippets are musicnn's
input, so the audit reads stage 2's embeddings (``<output_dir>/embeddings/musicnn-msd/``)
and makes the missing ones through stage 2's own path: one embedding per track, shared.
With another backbone the embeddings are cached one file per track in
``<output_dir>/audit/embeddings/`` (named by the file, links resolved, and its size and
modification time; written atomically): an interrupted audit carries on, and a re-run
costs nothing for unchanged tracks.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slapp.errors import AudioError
from slapp.store.atomic import atomic_write

logger = logging.getLogger(__name__)

PATCHES = 10        # musicnn patches per track, spread evenly
PLAN = f"label plan, at most {PATCHES}"  # in the cache names: other patches, another file
MAX_FOLDS = 5
C = 1.0             # logistic regression's inverse regularisation (bench/unheard_heads.py, retired; BENCHMARKS: 'Artists the model never heard')
OUTRIGHT = 0.01     # a track whose folder gets at most this, another class at least 0.5


@dataclass
class LabelIssues:
    """The result: ``issues`` ranked worst first (``key``, ``class``, ``sounds_like``,
    ``p_class``, ``p_sounds_like``), per-track ``quality`` (the out-of-fold probability of
    the track's own class), ``xy`` (the embedding's 2-D map per track), and what stopped
    it (``skipped``: one line, or empty)."""

    issues: list[dict] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    sounds_like: dict[str, str] = field(default_factory=dict)
    xy: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: str = ""


def embedding_params(input_dir: Path):
    """The parameters of musicnn-MSD's input path (its fixed settings and defaults)."""
    from slapp.params import params_from_dict

    return params_from_dict({"paths": {"input_dir": str(input_dir)},
                             "model": {"backbone": "musicnn-msd"}})


def _cache_file(folder: Path, path: Path) -> Path:
    """The embedding's file: named by the file (links resolved: one file under several
    names is embedded once), its size and its modification time."""
    st = path.stat()
    name = hashlib.sha1(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{PLAN}".encode()
                        ).hexdigest()[:20]
    return folder / f"{name}.npy"


def penultimate_scorer(backbone_file: Path, engine: str = "auto"):
    """musicnn-MSD's input patches ``(n, 187, 96)`` → its penultimate embedding
    ``(n, 200)``, on the one runtime at full precision (:mod:`slapp.models.runtime`,
    ``engine`` resolved here): the ONNX backbone stage 2 embeds with
    (:mod:`slapp.models.backbone_onnx`, made once by a child process if missing), so
    the audit imports no TensorFlow."""
    from slapp.models.backbone_onnx import ensure_backbone
    from slapp.models.runtime import network, resolve
    from slapp.stages.process.embed import check_backbone, embed_rows

    path = ensure_backbone("MSD_musicnn", backbone_file)
    check_backbone(path, engine, None)
    net = network(path, resolve(engine).exact)
    return lambda x: embed_rows(net, x)["penultimate"]


def track_embedding(path: Path, params, scorer) -> np.ndarray:
    """The mean musicnn-MSD penultimate embedding ``(200,)`` float32 of up to
    :data:`PATCHES` 3-second patches spread evenly over ``path`` (``scorer``: see
    :func:`penultimate_scorer`)."""
    from slapp.models.backbones import snippet_features
    from slapp.stages.build.prepare import prepare_track

    track = prepare_track(path, params)
    starts = params.snippet_plan("label", max_snippets=PATCHES).starts(len(track.y))
    x, _ = snippet_features(track.y, starts, params)
    return scorer(x.astype(np.float32)).mean(axis=0)


def embed_tracks(files: dict[str, Path], folder: Path, *, progress: bool = True,
                 backbone_file: Path | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({key: embedding (200,)}, {key: why it failed})`` for ``files``, each computed once
    (see the module docstring for the cache); ``backbone_file``: musicnn's ONNX copy
    (default: in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out, failed, todo = {}, {}, []
    for key, path in files.items():
        cached = _cache_file(folder, path)
        if cached.exists():
            out[key] = np.load(cached)
        else:
            todo.append((key, path, cached))
    if todo:
        scorer = penultimate_scorer(backbone_file or folder / "musicnn-msd.onnx")
        params = embedding_params(next(iter(files.values())).parent)
        for key, path, cached in tqdm(todo, desc="audit: embedding", unit="track",
                                      disable=not progress):
            if cached.exists():  # another name of a file embedded a moment ago
                out[key] = np.load(cached)
                continue
            try:
                emb = track_embedding(path, params, scorer)
            except AudioError as exc:
                failed[key] = str(exc)
                continue
            atomic_write(cached, lambda f, e=emb: np.save(f, e))
            out[key] = emb
    return out, failed


def fold_groups(keys: list[str], labels: list[str], artists: dict) -> list[str]:
    """The group of each track for the folds: its artist, or the track itself when it has
    no artist or its artist makes up more than half of its class."""
    per_class: dict[str, int] = {}
    per_artist: dict[tuple[str, str], int] = {}
    for key, label in zip(keys, labels):
        per_class[label] = per_class.get(label, 0) + 1
        a = (artists.get(key) or "").casefold()
        per_artist[(label, a)] = per_artist.get((label, a), 0) + 1
    groups = []
    for key, label in zip(keys, labels):
        a = (artists.get(key) or "").casefold()
        dominant = per_artist[(label, a)] * 2 > per_class[label]
        groups.append(key if not a or dominant else "artist:" + a)
    return groups


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: list[str], *, seed: int = 0
                ) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` of each row of ``x`` ``(n, d)`` from a
    logistic regression fitted on the folds without it (stratified, groups kept whole)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_classes = int(y.max()) + 1
    n_folds = max(2, min(MAX_FOLDS, int(np.bincount(y).min())))
    probs = np.zeros((len(y), n_classes), np.float64)
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train, test in folds.split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
        model.fit(x[train], y[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return probs


def stage2_embeddings(params, layout, keys: list[str], *, progress: bool = True
                      ) -> dict[str, np.ndarray]:
    """``{key: mean penultimate embedding (200,)}`` from stage 2's own cache (a build for
    ``musicnn-msd``: its cached snippets are musicnn's input), the missing ones made first
    through stage 2's path (:func:`~slapp.stages.process.embed.embed_cached_tracks`)."""
    from slapp.stages.process.embed import embed_cached_tracks, read_embedding

    embed_cached_tracks(params, layout, keys, progress=progress, what="for the audit ")
    return {k: read_embedding(layout, "musicnn-msd", k, "penultimate").mean(axis=0)
            for k in keys}


def find_label_issues(tracks: dict[str, dict], files: dict[str, Path], artists: dict,
                      folder: Path, *, progress: bool = True,
                      backbone_file: Path | None = None, embeddings=None) -> LabelIssues:
    """Embed ``files`` (``{key: path}``), predict each track out of fold and rank the
    tracks whose class (``tracks[key]["class"]``) looks wrong. ``embeddings``: a callable
    giving ``{key: embedding}`` (stage 2's cache, :func:`stage2_embeddings`), else the
    audit's own (``folder``)."""
    import importlib.util

    result = LabelIssues()
    if importlib.util.find_spec("musicnn") is None:
        result.skipped = ("likely wrong labels from the audio: skipped, they need the "
                          "musicnn weights (pip install --no-deps musicnn==0.1.0)")
        return result
    if embeddings is not None:
        emb, result.failed = embeddings(), {}
    else:
        emb, result.failed = embed_tracks(files, folder, progress=progress,
                                          backbone_file=backbone_file)
    keys = sorted(emb)
    labels = [tracks[k]["class"] for k in keys]
    classes = sorted(set(labels))
    counts = {c: labels.count(c) for c in classes}
    if len(classes) < 2 or min(counts.values()) < 2:
        result.skipped = ("likely wrong labels from the audio: skipped, every class needs "
                          "at least 2 tracks (" + ", ".join(f"{c} {n}" for c, n in
                                                            counts.items() if n < 2) + ")")
        return result
    from cleanlab.filter import find_label_issues as cleanlab_issues
    from sklearn.decomposition import PCA

    x = np.stack([emb[k] for k in keys])
    y = np.array([classes.index(c) for c in labels])
    probs = out_of_fold(x, y, fold_groups(keys, labels, artists))
    own, best = probs[np.arange(len(y)), y], probs.argmax(axis=1)
    flagged = set(cleanlab_issues(y, probs, return_indices_ranked_by="self_confidence",
                                  n_jobs=1).tolist())
    flagged |= set(np.flatnonzero((own <= OUTRIGHT) & (probs.max(axis=1) >= 0.5)).tolist())
    result.quality = {k: round(float(own[i]), 3) for i, k in enumerate(keys)}
    result.sounds_like = {k: classes[best[i]] for i, k in enumerate(keys)}
    result.issues = [{"key": keys[i], "class": labels[i], "sounds_like": classes[best[i]],
                      "p_class": result.quality[keys[i]],
                      "p_sounds_like": round(float(probs[i, best[i]]), 3)}
                     for i in sorted(flagged, key=lambda i: (own[i], keys[i]))]
    xy = PCA(n_components=2).fit_transform(x) if len(keys) > 2 else np.zeros((len(keys), 2))
    result.xy = dict(zip(keys, xy))
    return result
