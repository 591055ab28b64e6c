#!/usr/bin/env python3
"""Look at the built collection before training: duplicates, shortcuts, class health."""

from __future__ import annotations

import sys

from slapp.cli import make_parser, run_script, setup_logging


def get_parser():
    return make_parser(
        "Run after build_dataset.py. Finds the same recording twice (re-encoded, "
        "resampled, trimmed, offset, louder or quieter) by its content, facts about the "
        "files that alone separate a class from the rest (encoding, length, bandwidth, "
        "loudness: a model could learn those instead of the music), and classes of one "
        "artist or far smaller than the others. Reads the build's cache and manifest "
        "(nothing is decoded again; your files are never changed) and writes audit.json, "
        "audit.csv and audit_map.png (the tracks in 2-D) to paths.output_dir.")


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.quiet)

    def job():
        from slapp.params import load_params
        from slapp.stages.audit import audit_collection

        report = audit_collection(load_params(args.params), progress=not args.quiet)
        print("\n".join(report.summary()))
        return 0

    return run_script(job)


if __name__ == "__main__":
    sys.exit(main())
