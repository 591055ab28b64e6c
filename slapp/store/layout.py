"""The output folder's layout: every path a stage reads or writes, in one place.

::

    <output_dir>/
      train_val_test_dict.json   class → split → track keys (stage 1, before audio work)
      build_info.json            classes, feature settings + fingerprint, split origin
      build_manifest.json        per-track status, split, audio profile (end of each run)
      cache/<key>.npz            one track: mel (n, n_frames, n_mels), starts (n,) seconds
      embeddings/<backbone>/     pretrained backbones (stage 2): backbone.onnx, and per
                                 track <key>.npz: penultimate, pooled (n, width), source
      arrays/                    stage 2: <part>_{X,y,track,start}.npy (and <part>_E.npy,
                                 the embeddings, for a pretrained backbone),
                                 normalization.json, tracks.json, classes.json,
                                 process_manifest.json (last)
      training/                  stage 3's work files while it runs (state.json, weights)
      model/                     the bundle (paths.model_dir may put it elsewhere)
      library/                   paths.unlabelled_dir's own build: cache/, embeddings/,
                                 build_manifest.json (stage 2 adds arrays/library_E.npy,
                                 library_track.npy, library.json)
      .tmp/                      temp files of atomic writes; emptied at each start
      audit.json, audit.csv, audit_map.png, audit_split.json, audit/embeddings/
                                 the collection audit (AuditLayout)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_FOLDER = "demo_music"  # the README's and pipeline_parameters.json's demo folder


@dataclass(frozen=True)
class BuildLayout:
    """Paths of a build under ``root`` (the output folder)."""

    root: Path

    @property
    def split_file(self) -> Path:
        return self.root / "train_val_test_dict.json"

    @property
    def info_file(self) -> Path:
        return self.root / "build_info.json"

    @property
    def manifest_file(self) -> Path:
        return self.root / "build_manifest.json"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def tmp_dir(self) -> Path:
        return self.root / ".tmp"

    def track_file(self, key: str) -> Path:
        return self.cache_dir / (key + ".npz")

    def embedding_dir(self, backbone: str) -> Path:
        """A frozen backbone's per-track embeddings (:mod:`slapp.stages.process.embed`)."""
        return self.root / "embeddings" / backbone

    def embedding_file(self, backbone: str, key: str) -> Path:
        return self.embedding_dir(backbone) / (key + ".npz")

    def backbone_file(self, backbone: str) -> Path:
        """The frozen backbone as ONNX (:mod:`slapp.models.backbone_onnx`)."""
        return self.embedding_dir(backbone) / "backbone.onnx"

    @property
    def arrays(self) -> ArraysLayout:
        return ArraysLayout(self.root / "arrays")

    @property
    def training(self) -> TrainingLayout:
        return TrainingLayout(self.root / "training")


@dataclass(frozen=True)
class ArraysLayout:
    """Paths of stage 2's outputs under ``<output_dir>/arrays``."""

    root: Path

    def array(self, part: str, kind: str) -> Path:
        return self.root / f"{part}_{kind}.npy"

    @property
    def tracks_file(self) -> Path:
        return self.root / "tracks.json"

    @property
    def stats_file(self) -> Path:
        return self.root / "normalization.json"

    @property
    def classes_file(self) -> Path:
        return self.root / "classes.json"

    @property
    def library_file(self) -> Path:
        """The unlabelled library's track keys, rows of ``library_{E,track}.npy``."""
        return self.root / "library.json"

    @property
    def manifest_file(self) -> Path:
        return self.root / "process_manifest.json"



@dataclass(frozen=True)
class TrainingLayout:
    """Work files of an unfinished (or finished, not yet bundled) training."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def best_weights(self) -> Path:
        return self.root / "best.weights.h5"

    @property
    def history_file(self) -> Path:
        return self.root / "history.csv"

    def epoch_weights(self, epoch: int) -> Path:
        return self.root / f"epoch-{epoch:04d}.weights.h5"


@dataclass(frozen=True)
class BundleLayout:
    """The model bundle folder (see :mod:`slapp.stages.train.bundle`)."""

    root: Path

    @property
    def known_file(self) -> Path:
        """What ``known`` is measured against (:class:`slapp.models.known.KnownModel`)."""
        return self.root / "known.npz"

    @property
    def model_file(self) -> Path:
        return self.root / "model.keras"

    @property
    def portable_file(self) -> Path:
        """The network's portable copy (ONNX), labelling without TensorFlow."""
        return self.root / "model.onnx"

    @property
    def check_file(self) -> Path:
        """The bundle's test snippets and the reference's probabilities on them: every
        backend is checked on these (:mod:`slapp.models.engine_check`)."""
        return self.root / "check.npz"

    @property
    def info_file(self) -> Path:
        return self.root / "bundle.json"

    @property
    def evaluation_file(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def history_file(self) -> Path:
        return self.root / "history.csv"

    @property
    def curves_file(self) -> Path:
        return self.root / "curves.png"

    @property
    def report_file(self) -> Path:
        return self.root / "report.txt"

    def confusion_file(self, part: str, ext: str) -> Path:
        """``confusion_<part>.<ext>``: a split's track-level confusion matrix (csv, png)."""
        return self.root / f"confusion_{part}.{ext}"


@dataclass(frozen=True)
class AuditLayout:
    """The collection audit's files in the output folder ``root``."""

    root: Path

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "audit" / "embeddings"

    @property
    def split_file(self) -> Path:
        """A split that keeps every duplicate group on one side."""
        return self.root / "audit_split.json"

    @property
    def map_file(self) -> Path:
        return self.root / "audit_map.png"

    @property
    def json_file(self) -> Path:
        return self.root / "audit.json"

    @property
    def csv_file(self) -> Path:
        return self.root / "audit.csv"


def output_layout(params) -> BuildLayout:
    """The layout of ``params.paths.output_dir``."""
    return BuildLayout(Path(params.paths.output_dir))
