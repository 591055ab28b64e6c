"""What prediction gives the music library: genre tags (:mod:`slapp.stages.deliver.tags`),
playlists (:mod:`slapp.stages.deliver.playlists`) and a page to read (:mod:`slapp.stages.deliver.page`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slapp.store.discovery import shown
from slapp.errors import StageError
from slapp.stages.deliver.playlists import write_playlists
from slapp.stages.deliver.tags import apply_tags, new_journal_path, plan_tags


@dataclass(frozen=True)
class LibraryOptions:
    """``--write-tags`` (a dry run unless ``apply``), ``--playlists DIR``, ``--report``."""

    write_tags: bool = False
    apply: bool = False
    min_confidence: float = 0.5
    confidence_tag: bool = False
    journal: Path | None = None
    playlists: Path | None = None
    html: Path | None = None

    def __post_init__(self):
        if not 0.0 <= self.min_confidence <= 1.0:
            raise StageError("The --min-confidence value must be in the range [0, 1]. Got "
                             f"{self.min_confidence} instead.")
        if self.apply and not self.write_tags:
            raise StageError("--apply writes the tags that --write-tags shows: give both.")
        if self.html is not None and self.html.suffix.lower() not in (".html", ".htm"):
            raise StageError(f"Report file '{self.html}' must end in .html.")

    @property
    def journal_file(self) -> Path:
        """``--tags-journal``, else a new file in the user's state folder."""
        return self.journal or new_journal_path()


def use_labels(report, options: LibraryOptions) -> list[str]:
    """Tags, playlists and the page for ``report``'s results; the summary's lines."""
    lines: list[str] = []
    if options.write_tags:
        lines += _tags(report.results, options)
    if options.playlists is not None:
        written = write_playlists(report.results, options.playlists,
                                  min_confidence=options.min_confidence)
        lines.append(f"playlists: {len(written)} in {options.playlists} ("
                     + ", ".join(f"{name} {_count(path)}" for name, path in written.items())
                     + ")")
    if options.html is not None:
        from slapp.stages.deliver.page import write_page

        write_page(options.html, report, min_confidence=options.min_confidence)
        lines.append(f"report: {options.html} (open it in a browser)")
    return lines


def _count(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines()
               if line and not line.startswith("#"))


def _tags(results, options: LibraryOptions) -> list[str]:
    plan = plan_tags(results, min_confidence=options.min_confidence,
                     with_confidence=options.confidence_tag)
    changing = [c for c in plan if c.changes]
    refused = [c for c in plan if c.refused]
    below = sum(1 for r in results if r.labelled and r.confidence is not None
                and r.confidence < options.min_confidence)
    none = sum(1 for r in results if not r.error and not r.labelled)
    lines = []
    for c in changing:
        old = "; ".join(c.old.get("genre", [])) or "(none)"
        lines.append(f"  tag {shown(c.path)}: genre {shown(old)} -> {c.label} "
                     f"({c.confidence:.2f})")
    lines += [f"  not tagged: {shown(c.path)}: {shown(c.refused)}" for c in refused]
    head = (f"genre tags: {len(changing)} to change, {len(plan) - len(changing) - len(refused)}"
            f" already right, {len(refused)} refused, {below} below --min-confidence "
            f"{options.min_confidence:g}" + (f", {none} labelled none (left as they are)"
                                             if none else ""))
    if not options.apply:
        return [head + " (dry run: add --apply to write them)", *lines]
    journal = options.journal_file
    done, failed = apply_tags(plan, journal, with_confidence=options.confidence_tag)
    return [head, *lines, f"genre tags written to {done} file(s); the old values are in "
            f"{journal}; to undo: predict_track.py --undo-tags {journal}"] + [
        f"  failed: {shown(p)}: {shown(why)}" for p, why in failed]
