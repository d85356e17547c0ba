"""``emo7ion train``, ``emo7ion tune`` and ``emo7ion evaluate``."""

from __future__ import annotations

import argparse
import json
import sys

CHECKOUT_DATA = "../shared/data/fer2013/fer2013.tar.gz"
"""Where the data lies beside a checkout: named in --help, never a default (an install has no such path)."""


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="train the emotion classifier on FER2013-style data",
        description="Train the 'edge' (compact, int8-friendly) or 'seed' (original project) CNN with "
                    "augmentation, label smoothing, a warm-up+cosine learning rate and early stopping on val. "
                    "Every epoch is checkpointed in --out; --resume continues a stopped run. Writes the best "
                    "model (.keras), curves.png, history.json and summary.json.")
    train.add_argument("--data", required=True,
                       help="folder with train/ and val/ (<emotion>/*.jpg), a .tar.gz of it, or fer2013.csv "
                            f"(beside a checkout: {CHECKOUT_DATA})")
    train.add_argument("--model", choices=["edge", "edge-l", "seed"], default="edge",
                       help="architecture: edge (57 M MACs, the default), edge-l (its widths x2, 228 M MACs, for a "
                            "Raspberry Pi 5) or seed (the original project's)")
    train.add_argument("--out", default="runs/edge",
                       help="run folder for checkpoints and curves (default: %(default)s)")
    train.add_argument("--output", help="where to write the final .keras model (default: OUT/model.keras)")
    train.add_argument("--epochs", type=int, default=50, help="epochs (default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=64, help="batch size (default: %(default)s)")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)")
    train.add_argument("--label-smoothing", type=float, default=0.1, help="(default: %(default)s)")
    train.add_argument("--class-weights", action="store_true", help="square-root balanced class weights")
    train.add_argument("--patience", type=int, default=12, help="early-stopping patience in epochs on val accuracy")
    train.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    train.add_argument("--subset", type=int, help="train on a stratified subset of N faces (quick checks)")
    train.add_argument("--hparams", help="JSON of hyperparameters, e.g. the best_hparams.json of 'emo7ion tune'")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--init-weights", metavar="MODEL",
                       help="start from this .keras model's weights (fine-tune; a second learning-rate cycle)")
    train.add_argument("--warmup-epochs", type=int, default=2, help="linear warm-up epochs (default: %(default)s)")
    train.add_argument("--time-budget", type=float, metavar="MINUTES",
                       help="finish within MINUTES (data loading included): after each epoch the cosine's end moves "
                            "to the last epoch that fits, so a run on a lent machine still anneals fully")
    train.add_argument("--framing", action="store_true",
                       help="frame each training face as a device does: the square around a detector box drawn "
                            "from CenterFace's measured boxes on FER2013, grown by the crop contract's margin, "
                            "before the usual moves (off by default: not yet measured in a full training run)")
    train.set_defaults(handler=run_train)

    tune = commands.add_parser(
        "tune", help="search hyperparameters with keras-tuner (resumable)",
        description="keras-tuner search over the model's knobs (dropout, conv filters, dense units, learning "
                    "rate). Finished trials are kept in --out: run the same command again to resume. Writes "
                    "the best set to OUT/best_hparams.json for 'emo7ion train --hparams'.")
    tune.add_argument("--data", required=True, help=f"dataset, as for train (beside a checkout: {CHECKOUT_DATA})")
    tune.add_argument("--model", choices=["edge", "seed"], default="edge", help="architecture to search")
    tune.add_argument("--out", default="runs/tune", help="search folder (default: %(default)s)")
    tune.add_argument("--algorithm", choices=["bayesian", "hyperband", "random"], default="bayesian")
    tune.add_argument("--max-trials", type=int, default=20, help="trials for bayesian/random (default: %(default)s)")
    tune.add_argument("--epochs", type=int, default=12, help="epochs per trial (max epochs for hyperband)")
    tune.add_argument("--subset", type=int, help="search on a stratified subset of N training faces")
    tune.add_argument("--batch-size", type=int, default=64)
    tune.add_argument("--seed", type=int, default=7)
    tune.add_argument("--hparams-out", help="where to write the best hyperparameters (default: OUT/best_hparams.json)")
    tune.set_defaults(handler=run_tune)

    average = commands.add_parser(
        "average", help="average the weights of models of one run (SWA), then re-measure batch norm",
        description="Stochastic weight averaging: average the weights of two or more .keras models of the same "
                    "architecture from one run (checkpoints, or a second learning-rate cycle started from the "
                    "first), measure batch-norm statistics afresh on DATA's train split, report val accuracy and "
                    "save the averaged model.")
    average.add_argument("models", nargs="+", help=".keras models to average")
    average.add_argument("--data", required=True,
                         help=f"dataset with train and val (beside a checkout: {CHECKOUT_DATA})")
    average.add_argument("--out", required=True, help="the averaged .keras model")
    average.set_defaults(handler=run_average)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, per-class figures, confusion matrix and speed of a model",
        description="Evaluate a .keras or .tflite model on an image-folder dataset (<emotion>/*.jpg). Prints "
                    "top-1 accuracy, per-class accuracy (recall), precision and F1, macro F1, the confusion "
                    "matrix and faces per second. With --json the last line is one JSON object.")
    evaluate.add_argument("model", help="a .keras or .tflite file")
    evaluate.add_argument("data_dir", help="<emotion>/*.jpg folder, or a dataset root/archive with --split")
    evaluate.add_argument("--split", help="split inside DATA_DIR (e.g. val) when it holds several")
    evaluate.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    evaluate.add_argument("--plot", metavar="FILE", help="write the confusion matrix as a PNG heatmap")
    evaluate.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    evaluate.add_argument("--threads", type=int, default=1, help="interpreter threads for .tflite (default: 1)")
    evaluate.add_argument("--allow-unversioned", action="store_true",
                          help="evaluate a .tflite whose provenance is missing or cut short (refused otherwise, as "
                               "on a device)")
    evaluate.add_argument("--interpreter", choices=["ai_edge_litert", "tflite_runtime", "tensorflow"],
                          help="TFLite interpreter to use (default: the first installed)")
    evaluate.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                          help="average each face with its mirror image (the agent's default; costs a 2x batch). "
                               "Default: off, on with --through-detector (as the agent runs)")
    device = evaluate.add_argument_group(
        "through the detector",
        "--through-detector scores the device's path: each face upscaled onto a canvas, found by the face "
        "detector, cropped by the core/faces contract (box + margin, square, 48x48) and classified; the report "
        "gives the share of faces detected, accuracy on them through the detector and in the dataset's own "
        "framing (the same faces), per class, and the detector's box statistics.")
    device.add_argument("--through-detector", action="store_true", help="score the device's path (see above)")
    device.add_argument("--margins", default=None, metavar="M[,M...]",
                        help="crop margins to compare, comma-separated; the first is the headline "
                             "(default: the classifier's contract margin)")
    device.add_argument("--canvas-fill", choices=["gray", "mean", "replicate"], default="gray",
                        help="the canvas around each face: mid-gray, the mean of the face's outer pixels, or its "
                             "edge pixels replicated (default: %(default)s, chosen by measurement: MODEL_CARD.md)")
    device.add_argument("--canvas-scale", type=int, default=4, help="face upscale on the canvas (default: %(default)s)")
    device.add_argument("--canvas-pad", type=float, default=0.25,
                        help="canvas border each side, as a fraction of the upscaled face (default: %(default)s)")
    device.add_argument("--subset", type=int, metavar="N", help="a class-stratified subset of N faces")
    device.add_argument("--detector", metavar="NAME", help="detector type (default: the agent's default detector)")
    device.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a detector option, e.g. threshold=0.4 (repeatable)")
    evaluate.set_defaults(handler=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from emo7ion.training.train import TrainConfig, train
    from emo7ion.training.tune import read_hparams

    hparams: dict = {}
    learning_rate = args.lr
    if args.hparams:
        model_name, hparams = read_hparams(args.hparams)
        if model_name and model_name != args.model:
            raise ValueError(f"{args.hparams} holds hyperparameters for '{model_name}', not '{args.model}'")
        learning_rate = float(hparams.pop("learning_rate", learning_rate))
    config = TrainConfig(data=args.data, out=args.out, model=args.model, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=learning_rate,
                         label_smoothing=args.label_smoothing, class_weights=args.class_weights,
                         patience=args.patience, seed=args.seed, subset=args.subset, hparams=hparams,
                         init_weights=args.init_weights, warmup_epochs=args.warmup_epochs,
                         time_budget_minutes=args.time_budget, framing=args.framing)
    summary = train(config, resume=args.resume, output=args.output)
    print(json.dumps(summary))
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from emo7ion.training.tune import tune

    result = tune(args.data, args.out, model=args.model, algorithm=args.algorithm, max_trials=args.max_trials,
                  epochs=args.epochs, subset=args.subset, batch_size=args.batch_size, seed=args.seed,
                  hparams_file=args.hparams_out)
    print(json.dumps(result))
    return 0


def run_average(args: argparse.Namespace) -> int:
    from emo7ion.training.average import average

    print(json.dumps(average(args.models, args.data, args.out, progress=sys.stderr.isatty())))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from emo7ion.training import metrics
    from emo7ion.training.evaluate import evaluate

    if args.through_detector:
        return run_evaluate_through_detector(args)
    flip = bool(args.flip)
    summary = evaluate(args.model, args.data_dir, split=args.split, batch_size=args.batch_size,
                       threads=args.threads, interpreter=args.interpreter, progress=sys.stderr.isatty(),
                       flip=flip, allow_unversioned=args.allow_unversioned)
    print(f"model {summary['model']} ({summary['format']}"
          + (", face and mirror averaged" if flip else "")
          + (f", {summary['input_dtype']} input, {summary['interpreter']}" if summary["format"] == "tflite" else "")
          + f") on {summary['data']}")
    print(metrics.format_report(summary))
    print(f"\nfaces per second: {summary['faces_per_second']:.1f} (batch {args.batch_size}, {args.threads} thread(s))")
    if args.plot:
        metrics.plot_confusion(summary, args.plot)
        print(f"confusion heatmap written to {args.plot}")
    if args.json:
        print(json.dumps(summary))
    return 0


def run_evaluate_through_detector(args: argparse.Namespace) -> int:
    """The device's path on a labelled set; the detector is built here (the training floor imports only core)."""
    from emo7ion.commands.edge_detect import detector_options
    from emo7ion.edge.detect import registry
    from emo7ion.training.evaluate_through_detector import Canvas, evaluate_through_detector, format_report

    margins = _margins(args.margins) if args.margins else None
    detector = registry.create(detector_options(args.detector, args.option))
    canvas = Canvas(scale=args.canvas_scale, pad=args.canvas_pad, fill=args.canvas_fill)
    report = evaluate_through_detector(args.model, args.data_dir, detector.detect, split=args.split,
                                       margins=margins, canvas=canvas,
                                       flip=True if args.flip is None else args.flip, subset=args.subset,
                                       batch_size=args.batch_size, threads=args.threads,
                                       interpreter=args.interpreter, progress=True,
                                       allow_unversioned=args.allow_unversioned)
    report["detector"] = detector_options(args.detector, args.option)
    print(f"model {report['model']} ({report['format']}"
          + (", face and mirror averaged" if report["flip_average"] else "")
          + f") through {report['detector']['type']} on {report['data']}")
    print(format_report(report))
    if args.json:
        print(json.dumps(report))
    return 0


def _margins(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--margins {text!r}: expected numbers separated by commas, e.g. 0.1,0.05") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"--margins {text!r}: expected margins within 0..1")
    return values
