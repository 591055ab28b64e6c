#!/usr/bin/env python3
"""Stage 3: train the model (model.backbone: by default a head on the pretrained musicnn,
or the CRNN) on the processed arrays, evaluate it, write the model bundle."""

from __future__ import annotations

import sys

from slapp.cli import make_parser, run_script, setup_logging


def get_parser():
    parser = make_parser(
        "Stage 3 of slapp. Trains the model that model.backbone names: by default "
        "(musicnn-msd) a softmax head on the frozen pretrained musicnn network's "
        "embeddings, which process_dataset.py computed once per track; with "
        "model.backbone = crnn, the CRNN (model.crnn) on the arrays themselves - with "
        "Adam (training section) and one judge of the best epoch (the validation loss "
        "lower by more than 0.001) that early stopping, the learning-rate schedule and "
        "the kept weights all follow; then writes the model bundle to paths.model_dir "
        "(default output_dir/model: model.keras and its portable copy model.onnx, which "
        "prediction runs without TensorFlow) and evaluates on the validation and test "
        "tracks (snippet accuracy; track accuracy with the tracks labelled as "
        "predict_track.py labels them; macro-F1, confusion matrices, curves). Stopped at "
        "any moment, the same command continues from the last finished epoch. With "
        "paths.unlabelled_dir it ends with the library tracks worth labelling next, "
        "written to paths.labels_file (else output_dir/to-label.csv), and with "
        "training.library.method self-train or propagate it trains a second round on the "
        "library tracks it labels confidently.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--summary", action="store_true",
                      help="print the model's layers and parameter count, and exit")
    mode.add_argument("--evaluate-only", action="store_true",
                      help="evaluate the existing bundle on the current validation/test "
                           "arrays and tracks and rewrite its evaluation files; no training")
    mode.add_argument("--retrain", action="store_true",
                      help="train again from scratch even if the bundle is up to date")
    mode.add_argument("--restart", action="store_true",
                      help="discard an interrupted training (e.g. after changing "
                           "parameters) and start over")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.quiet)

    def job():
        from slapp.params import load_params

        params = load_params(args.params)
        from slapp.stages.train import training as train

        if args.summary:
            print(train.model_summary(params))
            return 0
        if args.evaluate_only:
            report = train.evaluate_bundle(params)
        else:
            report = train.train_crnn(params, retrain=args.retrain, restart=args.restart,
                                      progress=not args.quiet)
        print("\n".join(report.summary()))
        return 0

    return run_script(job)


if __name__ == "__main__":
    sys.exit(main())
