#!/usr/bin/env python3
"""Stage 2: normalise (training statistics only), shuffle and write the training arrays."""

from __future__ import annotations

import sys

from slapp.cli import make_parser, run_script, setup_logging


def get_parser():
    parser = make_parser(
        "Stage 2 of slapp. Reads the split and the feature cache of build_dataset.py, "
        "computes normalisation statistics from the training snippets only "
        "(model.crnn.process.normalization), and writes per split X / y / track / start "
        ".npy arrays (training snippets shuffled with process.seed) to "
        "paths.output_dir/arrays, chunk by chunk so datasets larger than RAM work. With a "
        "pretrained backbone (the default musicnn-msd) it first embeds each cached track "
        "once, on all cores, through onnxruntime (output_dir/embeddings/; Ctrl-C and run "
        "again: only the rest is embedded) and adds the E arrays the head trains on (and "
        "the library's, with paths.unlabelled_dir). A "
        "re-run with nothing changed does nothing; an interrupted run leaves no file a "
        "later stage trusts.")
    parser.add_argument("--skip-failed", action="store_true",
                        help="go on without the tracks that failed in the build (they are "
                             "counted in the summary) instead of refusing")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.quiet)

    def job():
        from slapp.params import load_params
        from slapp.stages.process.arrays import process_dataset

        report = process_dataset(load_params(args.params), skip_failed=args.skip_failed,
                                 progress=not args.quiet)
        print("\n".join(report.summary()))
        return 0

    return run_script(job)


if __name__ == "__main__":
    sys.exit(main())
