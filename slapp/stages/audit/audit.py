"""``audit_dataset.py``: what is wrong with a collection before a model learns it.

Run after ``build_dataset.py``; reads the build's manifest, artists and cached features
(only the likely-wrong-label search decodes the tracks again, for the pretrained network;
nothing of the user's is changed) and finds:

- **duplicates**: the same recording twice — re-encoded, resampled, trimmed, offset,
  louder or quieter — by content: every second of each cached snippet becomes a
  gain-free, band-limited spectral shape (the lower 60 % of the mel bands: below about
  2.8 kHz with the CRNN's settings, 2.3 kHz with musicnn's; mean removed, unit length;
  :mod:`slapp.dsp.duplicates`); locality-sensitive hashing (not all pairs) finds tracks that share many
  nearly identical seconds. ``exact`` when the two have the same length and the shared
  seconds line up, else ``different cut``; a group that straddles train and val/test
  leaks the test.
- **shortcuts**: facts about the files that alone separate a class from the rest (its
  encoding — source rate, channels, codec, bitrate —, length, bandwidth, loudness): a model
  can learn those instead of the music.
- **class health**: tracks and artists per class, one-artist classes, small classes.
- **likely wrong folders, by artist**: a track whose artist has most of their tracks in
  another class;
- **likely wrong labels, by sound** (:mod:`slapp.stages.audit.label_issues`): out-of-fold
  predictions on musicnn-MSD's embedding, folds keeping artists apart, ranked by confident
  learning (cleanlab).

Writes ``audit.json``, ``audit.csv`` (one row per track) and ``audit_map.png`` (the
tracks in 2-D by the pretrained embedding, one colour per class, duplicates and suspects
marked) in the output folder, atomically; prints a summary a user can act on.
"""

from __future__ import annotations

import csv
import io
import logging
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slapp.dsp.duplicates import find_duplicates, seconds_of
from slapp.stages.audit.shortcuts import categorical, numeric
from slapp.errors import StageError
from slapp.params import PipelineParams
from slapp.stages.audit.label_issues import LabelIssues, find_label_issues, stage2_embeddings
from slapp.store import cache
from slapp.store.artists import artist_warnings, class_artists
from slapp.store.atomic import atomic_write, read_json, write_json
from slapp.store.layout import AuditLayout, output_layout

logger = logging.getLogger(__name__)

SHOWN = 10              # duplicate groups and wrong-label suspects listed in the summary
NAMES_SHOWN = 4         # tracks named per duplicate group in the summary (all in audit.json)


@dataclass
class AuditReport:
    """What the audit found; :meth:`summary` renders it."""

    n_tracks: int = 0
    duplicates: list[dict] = field(default_factory=list)
    shortcuts: list[str] = field(default_factory=list)
    suspects: list[dict] = field(default_factory=list)
    labels: LabelIssues = field(default_factory=LabelIssues)
    health: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> list[str]:
        lines = [f"audited {self.n_tracks} tracks in {self.seconds:.1f} s"]
        lines.append(f"duplicates: {len(self.duplicates)} group(s)")
        for g in self.duplicates[:SHOWN]:
            where = ", ".join(f"{t['key']} ({t['class']}, {t['split']})"
                              for t in g["tracks"][:NAMES_SHOWN])
            if len(g["tracks"]) > NAMES_SHOWN:
                where += f" and {len(g['tracks']) - NAMES_SHOWN} more"
            leak = ("; LEAK: it is on both sides of the split (train and "
                    f"{'/'.join(sorted(set(g['splits']) - {'train'}))})" if g["leak"] else "")
            if g["kind"] == "same file":
                lines.append(f"  the same file under {len(g['tracks'])} names (links): "
                             f"{where}{leak}")
            else:
                lines.append(f"  {g['kind']}, {g['share']:.0%} of the shorter's seconds "
                             f"match: {where}{leak}")
        if len(self.duplicates) > SHOWN:
            lines.append(f"  ... and {len(self.duplicates) - SHOWN} more groups in audit.json")
        if any(g["leak"] for g in self.duplicates):
            lines.append("  to keep each group on one side of the split: set split.file to "
                         "audit_split.json (written beside audit.json) and re-run "
                         "build_dataset.py")
        lines.append(f"likely in the wrong folder, by artist: {len(self.suspects)}")
        lines += [f"  {s['key']}: by {s['artist']}, whose other {s['elsewhere']} tracks "
                  f"are {s['class']}: a {s['class']} track in the wrong folder?"
                  for s in self.suspects]
        lines += self._label_lines()
        lines.append(f"shortcuts: {len(self.shortcuts)}")
        lines += [f"  {s}" for s in self.shortcuts]
        lines += self.health
        lines += [f"written: {path}" for path in self.files]
        return lines

    def _label_lines(self) -> list[str]:
        found = self.labels
        if found.skipped:
            return [found.skipped]
        lines = [f"likely wrong labels, by sound (out-of-fold predictions, confident "
                 f"learning): {len(found.issues)}"]
        lines += [f"  {s['key']}: in {s['class']}, sounds like {s['sounds_like']} "
                  f"({s['sounds_like']} {s['p_sounds_like']:.2f}, {s['class']} "
                  f"{s['p_class']:.2f})" for s in found.issues[:SHOWN]]
        if len(found.issues) > SHOWN:
            lines.append(f"  ... and {len(found.issues) - SHOWN} more in audit.json")
        lines += [f"  not embedded: {k}: {why}" for k, why in sorted(found.failed.items())]
        return lines


def _groups(pairs, tracks: dict[str, dict]) -> list[dict]:
    """Duplicate pairs → groups (connected tracks), each with its tracks, kind (``same
    file`` < ``exact`` < ``different cut``: the loosest pair's), smallest share, splits
    and whether it leaks."""
    parent: dict[str, str] = {}

    def root(k):
        while parent.get(k, k) != k:
            parent[k] = parent.get(parent[k], parent[k])
            k = parent[k]
        return k

    for a, b, _, _ in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
    members: dict[str, set[str]] = {}
    rank = {"same file": 0, "exact": 1, "different cut": 2}
    kind: dict[str, str] = {}
    share: dict[str, float] = {}
    for a, b, s, k in pairs:
        r = root(a)
        members.setdefault(r, set()).update((a, b))
        kind[r] = max(kind.get(r, k), k, key=rank.get)
        share[r] = min(share.get(r, s), s)
    out = []
    for r, keys in members.items():
        splits = sorted({tracks[k]["split"] for k in keys})
        out.append({"tracks": [{"key": k, "class": tracks[k]["class"],
                                "split": tracks[k]["split"]} for k in sorted(keys)],
                    "kind": kind[r], "share": share[r], "splits": splits,
                    "leak": "train" in splits and len(splits) > 1})
    return sorted(out, key=lambda g: g["tracks"][0]["key"])


def encoding_of(path: Path, source: str) -> str:
    """``"22050 Hz mono, MP3 96 kbps"``: the decoded source and the file's codec."""
    import mutagen

    try:
        f = mutagen.File(path)
    except Exception:
        f = None
    if f is None:
        return f"{source}, {path.suffix.lstrip('.').upper() or '?'}"
    kbps = getattr(f.info, "bitrate", 0) // 1000
    codec = type(f).__name__.replace("Easy", "").upper()
    return f"{source}, {codec}" + (f" {kbps} kbps" if kbps else "")


def artist_outliers(tracks: dict[str, dict], artists: dict) -> list[dict]:
    """Tracks whose artist has at least two tracks, most of them in another class."""
    by_artist: dict[str, list[str]] = {}
    for key in tracks:
        if artists.get(key):
            by_artist.setdefault(artists[key].casefold(), []).append(key)
    out = []
    for keys in by_artist.values():
        counts = Counter(tracks[k]["class"] for k in keys)
        main, n = counts.most_common(1)[0]
        for k in keys:
            mine = counts[tracks[k]["class"]]
            if tracks[k]["class"] != main and n >= 2 and mine < n:
                out.append({"key": k, "artist": artists[k], "class": main, "elsewhere": n})
    return sorted(out, key=lambda s: s["key"])


def _health(classes: dict[str, list[str]], artists: dict) -> list[str]:
    summary = class_artists(classes, artists)
    sizes = {c: len(v) for c, v in classes.items()}
    median = statistics.median(sizes.values())
    lines = ["classes: " + ", ".join(f"{c} {n} tracks / {len(summary[c]['artists'])} "
                                     "artists" for c, n in sizes.items())]
    lines += [f"warning: {w}" for w in artist_warnings(summary)]
    lines += [f"warning: {c} has {n} tracks, less than half the median class "
              f"({median:g}): its figures will be noisy and the model will favour the "
              "others" for c, n in sizes.items() if n < median / 2]
    return lines


def file_identity(path: Path) -> object:
    """What two names of one file share (device and inode, links followed); the path
    itself when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return str(path)
    return (st.st_dev, st.st_ino)


def audit_collection(params: PipelineParams, *, progress: bool = True) -> AuditReport:
    """Audit the built collection of ``params`` (see the module docstring)."""
    started = time.monotonic()
    layout = output_layout(params)
    if not layout.manifest_file.exists() or not layout.info_file.exists():
        raise StageError(f"No build in '{layout.root}'. Run build_dataset.py first.")
    info, manifest = read_json(layout.info_file), read_json(layout.manifest_file)
    root, artists = Path(info["input_dir"]), info.get("artists") or {}
    tracks = {k: {**e, "class": k.split("/", 1)[0]} for k, e in manifest["tracks"].items()
              if e.get("status") == "done"}
    fps = max(1, round(params.audio.sample_rate / params.features.hop_length))
    shapes = {}
    for key in tqdm(sorted(tracks), desc="audit", unit="track", disable=not progress):
        mel, _ = cache.read_track(layout, key)
        shapes[key] = seconds_of(mel, fps)
        tracks[key]["encoding"] = encoding_of(root / key, tracks[key].get("source", "?"))
    report = AuditReport(n_tracks=len(tracks))
    report.duplicates = _groups(find_duplicates(
        shapes, {k: t.get("seconds", 0.0) for k, t in tracks.items()},
        {k: file_identity(root / k) for k in tracks}), tracks)
    shapes = {k: v.mean(axis=0, keepdims=True) for k, v in shapes.items()}  # the map's
    encoding = categorical(tracks, "encoding", "encoding")
    flagged = {line.split(":", 1)[0] for line in encoding}
    report.shortcuts = (encoding + [line for line in categorical(
                            tracks, "source", "sample rate and channels")
                            if line.split(":", 1)[0] not in flagged]
                        + numeric(tracks, "seconds", "length", "s", 1.0)
                        + numeric(tracks, "bandwidth_hz", "bandwidth", "kHz", 1000.0)
                        + numeric(tracks, "loudness_db", "loudness", "dBFS", 1.0))
    by_class: dict[str, list[str]] = {}
    for k, t in tracks.items():
        by_class.setdefault(t["class"], []).append(k)
    report.health = _health(dict(sorted(by_class.items())), artists)
    report.suspects = artist_outliers(tracks, artists)
    files = AuditLayout(layout.root)
    # the build's cache is musicnn's input: stage 2's embeddings, shared
    shared = ((lambda: stage2_embeddings(params, layout, sorted(tracks), progress=progress))
              if params.backbone.name == "musicnn-msd" else None)
    report.labels = find_label_issues(tracks, {k: root / k for k in tracks}, artists,
                                      files.embeddings_dir, progress=progress,
                                      backbone_file=layout.backbone_file("musicnn-msd"),
                                      embeddings=shared)
    report.files = _write(files, report, tracks, artists)
    if report.duplicates and layout.split_file.exists():
        report.files.append(split_without_leaks(layout.split_file, report.duplicates,
                                                files.split_file))
    report.files.append(draw_map(files.map_file, shapes, tracks, report))
    report.seconds = time.monotonic() - started
    return report


def split_without_leaks(split_file: Path, groups: list[dict], path: Path) -> Path:
    """Write ``path``: the build's split (``split_file``) with every duplicate group on
    one side — the side most of its tracks are on, train on a tie — for ``split.file``."""
    split = read_json(split_file)
    side = {k: (c, s) for c, parts in split.items() for s, keys in parts.items() for k in keys}
    order = ("train", "val", "test")
    for g in groups:
        keys = [t["key"] for t in g["tracks"] if t["key"] in side]
        votes = Counter(side[k][1] for k in keys)
        target = max(order, key=lambda s: (votes[s], -order.index(s)))
        for k in keys:
            c, s = side[k]
            if s != target:
                split[c][s].remove(k)
                split[c].setdefault(target, []).append(k)
    write_json(path, split)
    return path


def draw_map(path: Path, shapes: dict[str, np.ndarray], tracks: dict, report: AuditReport
             ) -> Path:
    """The tracks in 2-D (the first two principal components of the pretrained embedding,
    or without it of each track's mean spectral shape): one colour per class, duplicate
    groups joined by a line, likely wrong folders (by artist) and labels (by sound, the
    :data:`SHOWN` worst) circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from slapp.stages.label.evaluate import save_figure

    keys = sorted(shapes)
    where = report.labels.xy
    if not where or set(where) != set(keys):
        x = np.stack([shapes[k].mean(axis=0) for k in keys])
        xy = PCA(n_components=2).fit_transform(x) if len(keys) > 2 else np.zeros((len(keys), 2))
        where = dict(zip(keys, xy))
    classes = sorted({tracks[k]["class"] for k in keys})
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(9, 7))
    for i, c in enumerate(classes):
        pts = np.array([where[k] for k in keys if tracks[k]["class"] == c])
        ax.scatter(pts[:, 0], pts[:, 1], s=18, color=cmap(i % cmap.N), label=c)
    named = report.duplicates if len(report.duplicates) <= SHOWN else [
        g for g in report.duplicates if g["leak"]][:SHOWN]  # a crowd of labels says nothing
    for g in report.duplicates:
        pts = np.array([where[t["key"]] for t in g["tracks"]])
        ax.plot(pts[:, 0], pts[:, 1], "k-", lw=1.5)
        if g in named:
            ax.annotate("duplicate" + (" (LEAK)" if g["leak"] else ""), pts[0], fontsize=8)
    for s in report.suspects:
        ax.scatter(*where[s["key"]], s=160, facecolors="none", edgecolors="red", lw=1.5)
        ax.annotate(f"{s['key'].split('/')[-1]}: a {s['class']} track?", where[s["key"]],
                    fontsize=8, color="red")
    for s in report.labels.issues[:SHOWN]:
        ax.scatter(*where[s["key"]], s=220, facecolors="none", edgecolors="darkorange", lw=1.5)
        ax.annotate(f"{s['key'].split('/')[-1]}: sounds {s['sounds_like']}", where[s["key"]],
                    fontsize=8, color="darkorange", xytext=(0, -10), textcoords="offset points")
    ax.set_title(f"{len(keys)} tracks by their sound (2-D); black lines: duplicates, red: "
                 "wrong folder by artist, orange: wrong label by sound", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    save_figure(fig, path)
    return path


def _write(files: AuditLayout, report: AuditReport, tracks: dict, artists: dict
           ) -> list[Path]:
    group_of = {t["key"]: i for i, g in enumerate(report.duplicates) for t in g["tracks"]}
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["key", "class", "split", "artist", "encoding", "seconds",
                     "bandwidth_hz", "loudness_db", "duplicate_group", "sounds_like",
                     "label_quality"])
    labels = report.labels
    for key, t in sorted(tracks.items()):
        writer.writerow([key, t["class"], t.get("split", ""), artists.get(key) or "",
                         t["encoding"], t.get("seconds", ""), t.get("bandwidth_hz", ""),
                         t.get("loudness_db", ""), group_of.get(key, ""),
                         labels.sounds_like.get(key, ""), labels.quality.get(key, "")])
    data = rows.getvalue().encode("utf-8")
    json_file, csv_file = files.json_file, files.csv_file
    write_json(json_file, {"tracks": report.n_tracks, "duplicates": report.duplicates,
                           "wrong_folder_by_artist": report.suspects,
                           "wrong_label_by_sound": report.labels.issues,
                           "wrong_label_note": report.labels.skipped,
                           "shortcuts": report.shortcuts, "health": report.health})
    atomic_write(csv_file, lambda f: f.write(data))
    return [json_file, csv_file]
