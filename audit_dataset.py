#!/usr/bin/env python3
"""Look at the built collection before training: duplicates, wrong labels, shortcuts,
class health."""

from __future__ import annotations

import sys

from slapp.cli import make_parser, run_script, setup_logging


def get_parser():
    return make_parser(
        "Run after build_dataset.py. Finds the same recording twice (re-encoded, "
        "resampled, trimmed, offset, louder or quieter) by its content, tracks whose folder "
        "contradicts how they sound (out-of-fold predictions on the pretrained musicnn "
        "embedding, ranked by confident learning) or their artist, facts about the files "
        "that alone separate a class from the rest (encoding, length, bandwidth, loudness: "
        "a model could learn those instead of the music), and classes of one artist or far "
        "smaller than the others. Your files are never changed. Writes audit.json, "
        "audit.csv, audit_map.png (the tracks in 2-D) and, when there are duplicates, "
        "audit_split.json (the split with each duplicate group on one side, for "
        "split.file) to paths.output_dir.")


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.quiet)

    def job():
        from slapp.params import load_params
        from slapp.stages.audit.audit import audit_collection

        report = audit_collection(load_params(args.params), progress=not args.quiet)
        print("\n".join(report.summary()))
        return 0

    return run_script(job)


if __name__ == "__main__":
    sys.exit(main())
