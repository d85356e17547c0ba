"""``emo7ion convert``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def register(commands) -> None:
    convert = commands.add_parser(
        "convert", help="quantize a .keras model to TFLite variants and prove they agree",
        description="Write float32, float16, dynamic-range int8 and full-integer int8 .tflite files (int8 "
                    "calibrated on a class-stratified sample of DATA's train split), each carrying its "
                    "provenance; then report each one's val accuracy, top-1 agreement with the Keras model, "
                    "largest probability difference, size and single-thread faces/s (report.json, report.md). "
                    "Fails, writing nothing to OUTDIR, if int8 loses more than --max-drop points.")
    convert.add_argument("model", help="the .keras model")
    convert.add_argument("--data", required=True, help="dataset with train/ and val/ (folder or .tar.gz)")
    convert.add_argument("--out", required=True, help="output folder (OUTDIR)")
    convert.add_argument("--val", help="validation folder <emotion>/*.jpg (default: DATA's val split)")
    convert.add_argument("--calibration", type=int, default=500, help="calibration faces (default: %(default)s)")
    convert.add_argument("--max-drop", type=float, default=1.0,
                         help="largest allowed int8 accuracy loss in points (default: %(default)s)")
    convert.add_argument("--model-version", help="version recorded in each file (default: NAME-SHA12)")
    convert.add_argument("--json", action="store_true", help="end with the report as one JSON line")
    convert.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from emo7ion.converter.convert import convert
    from emo7ion.converter.report import table

    if args.calibration < 7:
        raise ValueError(f"--calibration {args.calibration}: need at least one face per class (7)")
    command = "emo7ion convert " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("convert") + 1:]) \
        if "convert" in sys.argv else ""
    # A ParityError (int8 lost more than --max-drop) is a user error: one line from cli.py, exit 2
    result = convert(args.model, args.data, args.out, val=args.val, calibration=args.calibration,
                     max_drop=args.max_drop, model_version=args.model_version, progress=sys.stderr.isatty(),
                     command=command)
    print(table(result))
    checks = result["checks"]
    print(f"\nint8 drop {checks['int8_drop_points']:.2f} points (max {checks['max_drop_points']}), "
          f"int8/float32 size {checks['int8_size_ratio']:.3f}, int8 b1 speed-up {checks['int8_speedup_b1']:.2f}x")
    print(f"written to {result['out']}")
    if args.json:
        print(json.dumps(result))
    return 0
