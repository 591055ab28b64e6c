#!/usr/bin/env python3
"""Stage 1: split the labelled tracks and cache their snippets' log-mel spectrograms."""

from __future__ import annotations

import sys

from slapp.cli import interrupted_status, make_parser, run_script, setup_logging


def get_parser():
    parser = make_parser(
        "Stage 1 of slapp. Finds the tracks in paths.input_dir (one sub-folder per class), "
        "reads their artists (tags, or split.groups_file), writes the split "
        "train_val_test_dict.json (by default by artist when most tracks have one: no "
        "artist on both sides) and warns about classes of one or two artists, then decodes "
        "every track by its content, "
        "computes its log-mel spectrogram, cuts the snippets from it and caches them under "
        "paths.output_dir/cache, on this machine's cores or a Dask cluster (engine). "
        "Re-running skips tracks already cached, rebuilds those whose file changed, and "
        "retries failed ones; Ctrl-C, SIGTERM or a kill loses only the tracks in progress "
        "(exit 130 / 143). Operating-system clutter (__MACOSX, @eaDir, Thumbs.db, ._* ...) "
        "and slapp's own output folders are ignored and listed. With paths.unlabelled_dir "
        "(your unlabelled library) its tracks are built the same way under "
        "output_dir/library, never in the split; with paths.labels_file the tracks you "
        "labelled there join the training split.")
    parser.add_argument("--rebuild", action="store_true",
                        help="delete the cached features and build them again (needed "
                             "after changing audio, slicing or features parameters)")
    parser.add_argument("--resplit", action="store_true",
                        help="make a new split from the current split parameters and "
                             "tracks (the feature cache is kept)")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.quiet)

    def job():
        from slapp.stages.build.dataset import build_dataset
        from slapp.params import load_params

        params = load_params(args.params)
        report = build_dataset(params, rebuild=args.rebuild, resplit=args.resplit,
                               progress=not args.quiet)
        print("\n".join(report.summary()))
        return interrupted_status() if report.interrupted else 0

    return run_script(job)


if __name__ == "__main__":
    sys.exit(main())
