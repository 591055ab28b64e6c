"""What a run of stage 3 did, and the lines it prints (:func:`slapp.stages.train.training.train_crnn`,
:func:`~slapp.stages.train.training.evaluate_bundle`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slapp.stages.label.evaluate import artist_line


@dataclass
class TrainReport:
    bundle_dir: Path
    up_to_date: bool = False
    resumed_from: int = 0
    epochs_run: int = 0
    best_epoch: int | None = None
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    evaluate_only: bool = False
    train_snippets: int = 0
    stopped: str = ""   # why training ended before training.epochs, for the summary
    best: str = ""      # the kept epoch's validation figures
    artists: list[str] = field(default_factory=list)  # artists per class, warnings
    library: str = ""   # what the unlabelled library added to training
    suggested: list[str] = field(default_factory=list)  # the library tracks to label
    portable: str = ""  # why the bundle has no portable copy (empty: it has one)

    def summary(self) -> list[str]:
        if self.up_to_date:
            lines = [f"nothing to do: the model bundle '{self.bundle_dir}' is up to date "
                     "(use --retrain to train again, --evaluate-only to re-evaluate)"]
        elif self.evaluate_only:
            lines = [f"evaluated '{self.bundle_dir}' in {self.seconds:.1f} s"]
        else:
            resumed = (f", resumed after epoch {self.resumed_from}" if self.resumed_from
                       else "")
            lines = [f"training finished in {self.seconds:.1f} s: {self.epochs_run} epochs"
                     f"{resumed}; best epoch {self.best_epoch}{self.best}"]
            if self.stopped:
                lines.append(f"  {self.stopped}")
            if self.library:
                lines.append(self.library)
        for part, m in self.metrics.items():
            s, t = m["snippet"], m["track"]
            lines.append(f"  {part}: snippet accuracy {s['accuracy']:.3f} ({s['count']} "
                         f"snippets), track accuracy {t['accuracy']:.3f} ({t['count']} "
                         f"tracks, labelled as predict_track.py does), track macro-F1 "
                         f"{t['macro_f1']:.3f}")
            lines.append("    " + artist_line(t.get("artists")))
        lines += self.artists
        if not self.metrics and not self.up_to_date:
            lines.append("  no validation or test tracks: nothing to evaluate")
        lines.append(f"model bundle: {self.bundle_dir}")
        if self.portable:
            lines.append(f"  {self.portable}")
        lines += self.suggested
        return lines
