#!/usr/bin/env python3
"""Stage 4: label tracks (files or folders) with a trained model bundle."""

from __future__ import annotations

import sys
from pathlib import Path

from slapp.cli import make_parser, run_script, setup_logging
from slapp.dsp.aggregate import RULES
from slapp.models.runtime import ENGINES
from slapp.stages.label.predict import PredictOptions

from slapp.stages.deliver.deliver import LibraryOptions

DEFAULTS = PredictOptions()
LIBRARY = LibraryOptions()

EXIT_SOME_FAILED = 3


def get_parser():
    parser = make_parser(
        "Stage 4 of slapp. Labels each track: cuts it into snippets every --hop seconds "
        "over its whole length, computes the features with the bundle's own settings and "
        "normalisation (never the current parameters file's), and aggregates the snippet "
        "scores into one label. Prints a table (track, label, confidence, top 3). "
        "Exit status: 0 all tracks labelled, 3 some tracks failed (each is listed with "
        "its reason), 1 nothing could run (e.g. no usable bundle), 130 interrupted (Ctrl-C), 143 stopped by "
        "SIGTERM (finished tracks are kept with --output).")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="audio files and/or folders (searched recursively)")
    parser.add_argument("--model", metavar="BUNDLE", type=Path,
                        help="model bundle folder (default: paths.model_dir of the "
                             "parameters, i.e. output_dir/model)")
    parser.add_argument("--hop", type=float, metavar="SECONDS",
                        help="seconds between snippet starts (default: the bundle's slicing "
                             "hop, snippet_seconds - overlap_seconds: 2 s by default; 1.0, "
                             "the article's 2 s overlap, labels the same at twice the cost)")
    parser.add_argument("--max-snippets", type=int, metavar="N",
                        help="score at most N snippets per track, spread evenly over it, "
                             "for speed (default: every snippet, as the method says; 0: "
                             "every snippet). A 30-second clip has 15 at --hop 2")
    parser.add_argument("--engine", choices=(*ENGINES, "keras"), default=None,
                        help="what runs the network (default: the parameters file's "
                             "engine.runtime, auto): auto runs the bundle's model.onnx on "
                             "OpenVINO, in bf16 where the CPU has native bf16 units (near-ties "
                             "re-scored in f32), else f32, or on onnxruntime (fp32) where "
                             "OpenVINO is missing; each backend is checked against "
                             "onnxruntime on the bundle's test snippets once per machine and "
                             "falls back with one line. keras runs model.keras through "
                             "TensorFlow (the reference: the same labels, a slower start)")
    parser.add_argument("--aggregate", choices=RULES, default=DEFAULTS.rule,
                        help="how snippet scores make a track label: sum of probabilities "
                             "(default), mean of log-probabilities, or majority vote")
    parser.add_argument("--none-below", type=float, metavar="KNOWN",
                        help="label a track 'none' (none of the model's classes) when its "
                             "known score (0-1) is below this; 0: never; default: the "
                             "bundle's training.none_below")
    parser.add_argument("--min-seconds", type=float, metavar="SECONDS",
                        help="refuse tracks shorter than this (default: the bundle's "
                             "slicing.min_track_seconds)")
    parser.add_argument("--output", type=Path, metavar="FILE.csv|FILE.json",
                        help="also write per-class scores to a CSV or JSON file; an "
                             "interrupted run re-run with the same file continues")
    parser.add_argument("--timeline", action="store_true",
                        help="with --output: add per-snippet predictions (start time, "
                             "class, scores)")
    parser.add_argument("--plot", type=Path, metavar="DIR",
                        help="draw each track's class probabilities over time as "
                             "DIR/<track>.png")
    parser.add_argument("--evaluate", action="store_true",
                        help="the tracks sit in folders named after the model's classes: "
                             "compare each label with its folder's name, print the "
                             "accuracy and mistakes (and, with --plot, draw DIR/"
                             "confusion.png)")
    lib = parser.add_argument_group(
        "your music library", "genre tags, playlists and a page to read; the audio data "
        "of a file is never touched")
    lib.add_argument("--write-tags", action="store_true",
                     help="show the genre tag each labelled track would get (ID3 TCON, "
                          "Vorbis comment, MP4 ©gen); nothing is written without --apply")
    lib.add_argument("--apply", action="store_true",
                     help="with --write-tags: write them; the old values go first to a "
                          "journal that --undo-tags reads")
    lib.add_argument("--min-confidence", type=float, default=LIBRARY.min_confidence,
                     metavar="P", help="tag only tracks labelled with at least this "
                                       "confidence; below it they go to the 'check-these' "
                                       "playlist (default: %(default)s)")
    lib.add_argument("--confidence-tag", action="store_true",
                     help="also write the confidence (tag SLAPP_CONFIDENCE)")
    lib.add_argument("--tags-journal", type=Path, metavar="FILE.json",
                     help="where --apply keeps the old values (default: "
                          "slapp-tags-<date>-<time>.json in your state folder, "
                          "~/.local/state/slapp/tag-journals on Linux; the run prints it)")
    lib.add_argument("--undo-tags", type=Path, metavar="JOURNAL", nargs="?", const=True,
                     help="put back the tags a --write-tags --apply run changed, in every "
                          "file that still holds what slapp wrote (a file whose tag you "
                          "changed since is left as it is and named); without JOURNAL: "
                          "list the recent journals (no PATH needed)")
    lib.add_argument("--force", action="store_true",
                     help="with --undo-tags: put the old values back even in files changed "
                          "since slapp wrote them")
    lib.add_argument("--playlists", type=Path, metavar="DIR",
                     help="write DIR/<label>.m3u8 per label (best first, paths relative "
                          "to DIR) and DIR/check-these.m3u8")
    lib.add_argument("--report", type=Path, metavar="FILE.html",
                     help="write one self-contained page: a sortable, filterable table, "
                          "each track's timeline and a player (with --evaluate: the "
                          "confusion matrix)")
    learn = parser.add_argument_group(
        "labelling your library with little effort",
        "which tracks to label next, so the next training learns the most from them")
    learn.add_argument("--suggest", type=int, metavar="N",
                       help="after labelling, pick the N tracks whose labels would teach "
                            "the model most (uncertain, like many other tracks, unlike "
                            "each other, one artist at a time) and write them to a CSV to "
                            "fill in and a playlist to listen to")
    learn.add_argument("--suggest-file", type=Path, metavar="FILE.csv",
                       help="where --suggest writes (default: paths.labels_file of the "
                            "parameters when set, else to-label.csv here); rows already "
                            "in it and their answers are kept; the playlist goes beside "
                            "it (FILE.m3u8)")
    learn.add_argument("--answer", type=Path, metavar="FILE.csv", nargs="?", const=True,
                       help="open a local page (127.0.0.1, a private address) to answer the "
                            "suggested tracks: listen, see where the model hesitates, click "
                            "a class or 'none of these'; each answer goes into FILE.csv "
                            "(default: the --suggest file, else paths.labels_file, else "
                            "<output_dir>/to-label.csv); Ctrl-C stops it")
    learn.add_argument("--port", type=int, default=0,
                       help="the page's port with --answer (default: any free one)")
    return parser


def _answers_file(args, current) -> Path:
    """Which CSV ``--answer`` serves."""
    if args.answer is not True:
        return args.answer
    if args.suggest:
        return args.suggest_file or (current and current.paths.labels_file) or Path("to-label.csv")
    if current is not None and current.paths.labels_file is not None:
        return current.paths.labels_file
    stage3 = Path(current.paths.output_dir) / "to-label.csv" if current else None
    return stage3 if stage3 is not None and stage3.exists() else Path("to-label.csv")


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    if not args.paths and args.undo_tags is None and args.answer is None:
        parser.error("give at least one PATH (or --undo-tags JOURNAL, or --answer)")

    def job():
        from slapp.errors import StageError
        from slapp.params import load_params
        from slapp.stages.train.bundle import load_bundle
        from slapp.stages.label.predict import predict_tracks

        if args.undo_tags is not None:
            return _undo(args.undo_tags, args.force)
        if args.suggest is not None and args.suggest < 1:
            raise StageError(f"The --suggest value must be a whole number >= 1. Got "
                             f"{args.suggest} instead.")
        options = PredictOptions(hop_seconds=args.hop, rule=args.aggregate,
                                 min_seconds=args.min_seconds, timeline=args.timeline,
                                 max_snippets=args.max_snippets,
                                 embed=args.suggest is not None, none_below=args.none_below)
        library = LibraryOptions(write_tags=args.write_tags, apply=args.apply,
                                 min_confidence=args.min_confidence,
                                 confidence_tag=args.confidence_tag, journal=args.tags_journal,
                                 playlists=args.playlists, html=args.report)
        current = None
        if args.model is None or Path(args.params).exists():
            current = load_params(args.params)
        engine = args.engine or (current.engine.runtime if current else "auto")
        bundle = load_bundle(args.model or current.model_dir, current=current, engine=engine)
        if args.answer is not None and not args.paths:
            return _answer(_answers_file(args, current), bundle, args.port)
        report = predict_tracks(args.paths, bundle, options, output=args.output,
                                plot_dir=args.plot, evaluate=args.evaluate, params=current,
                                library=library, progress=not args.quiet)
        print(report.table())
        print("\n".join(report.summary()))
        if args.suggest:
            from slapp.stages.train.suggestions import write_suggestions

            target = args.suggest_file or (current.paths.labels_file if current else None)
            target = target or Path("to-label.csv")
            labels = current.paths.labels_file if current else None
            done = write_suggestions(report.results, args.suggest, target, in_labels_file=(
                labels is not None and Path(labels).resolve() == Path(target).resolve()))
            print("\n".join(done.lines(bundle.classes)))
        if args.answer is not None:
            _answer(_answers_file(args, current), bundle, args.port)
        return EXIT_SOME_FAILED if report.failed else 0

    return run_script(job)


def _answer(csv_file: Path, bundle, port: int) -> int:
    """``--answer``: serve the answering page until Ctrl-C."""
    from slapp.stages.answer.server import serve_answers

    print("\n".join(serve_answers(csv_file, bundle, port)))
    return 0


def _undo(journal: Path | bool, force: bool) -> int:
    """``--undo-tags [JOURNAL] [--force]``: undo one journal, or list the recent ones."""
    from slapp.store.discovery import shown
    from slapp.stages.deliver.tags import journal_folder, recent_journals, undo_tags

    if journal is True:  # --undo-tags alone
        found = recent_journals()
        if not found:
            print(f"no tag journals in {journal_folder()}")
            return 0
        print(f"recent tag journals in {journal_folder()} (newest first):")
        for path, written, files in found:
            print(f"  {written}  {files} file(s)  predict_track.py --undo-tags {path}")
        return 0
    done = undo_tags(journal, force=force)
    print(f"restored the tags of {done.restored} file(s) from {journal}"
          + (f"; {done.unchanged} file(s) the run had not changed" if done.unchanged else ""))
    if done.left:
        print(f"left {len(done.left)} file(s) as they are: they changed since slapp wrote "
              "them (--force puts the old values back anyway)")
    for path, why in done.left:
        print(f"  left: {shown(path)}: {shown(why)}")
    for path, why in done.failed:
        print(f"  failed: {shown(path)}: {shown(why)}")
    return EXIT_SOME_FAILED if done.left or done.failed else 0


if __name__ == "__main__":
    sys.exit(main())
