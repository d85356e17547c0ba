"""``emo7ion edge detect`` and ``emo7ion edge score-detector``: try the face detectors on photos and score them
against ground-truth boxes, with the same options the agent's config takes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CROWD_SAMPLE = "../shared/data/crowd-sample"
"""Beside a checkout: named in --help, never a default (an install has no such path)."""


def register(edge_commands) -> None:
    detect = edge_commands.add_parser(
        "detect", help="find faces in images with a face detector",
        description="Run a face detector on each IMAGE and print the boxes found (x, y, w, h in pixels, score), "
                    "with the count and milliseconds per image. The detector is the measured default unless "
                    "--detector names another; --list-detectors shows every type and its options. With --json "
                    "the last line is one JSON object {image: [[x, y, w, h, score], ...]}.")
    detect.add_argument("images", nargs="*", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    _detector_arguments(detect)
    detect.add_argument("--list-detectors", action="store_true", help="list detector types and their options")
    detect.add_argument("--json", action="store_true", help="end with the boxes as one JSON line")
    detect.set_defaults(handler=run_detect)

    score = edge_commands.add_parser(
        "score-detector", help="recall and false positives of a face detector on photos with known faces",
        description="Match a detector's boxes to ground-truth faces at IoU >= 0.5 (one detection per face, best "
                    "score first) and print recall for faces >= 32 px high, 16-32 px and 8-16 px, detections, false "
                    "positives and milliseconds per frame (native size and resized to 1280x720). With --json the "
                    "last line is one JSON object.")
    score.add_argument("--images", required=True,
                       help=f"folder of images (beside a checkout: {CROWD_SAMPLE}/images)")
    score.add_argument("--ground-truth", required=True,
                       help="JSON {file_name: [{'box': [x, y, w, h], 'invalid': bool}, ...]} "
                            f"(beside a checkout: {CROWD_SAMPLE}/ground_truth.json)")
    _detector_arguments(score)
    score.add_argument("--json", action="store_true", help="end with the scores as one JSON line")
    score.set_defaults(handler=run_score)

    parity = edge_commands.add_parser(
        "detector-parity", help="recall of a detector against a reference, size bin by size bin (int8 vs float)",
        description="Score a REFERENCE and a CANDIDATE detector on the same photos (as score-detector does) and "
                    "print recall per face-size bin (>= 32, 16-32, 8-16 px), the change, whether the candidate "
                    "stays within TOLERANCE of the reference in every bin, false positives and ms per frame. "
                    "Exit status 1 when parity fails. Each detector runs with its own defaults plus the --option "
                    "values (given to both, e.g. upscale=1.5).")
    parity.add_argument("--images", required=True, help=f"folder of images (beside a checkout: {CROWD_SAMPLE}/images)")
    parity.add_argument("--ground-truth", required=True,
                        help=f"JSON ground truth (beside a checkout: {CROWD_SAMPLE}/ground_truth.json)")
    parity.add_argument("--reference", default="centerface", help="reference detector type (default: %(default)s)")
    parity.add_argument("--candidate", default="centerface-int8",
                        help="candidate detector type (default: %(default)s)")
    parity.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option given to both detectors, e.g. upscale=1.5 (repeatable)")
    parity.add_argument("--tolerance", type=float, default=None,
                        help="most recall the candidate may lose in a bin (default: 0.02)")
    parity.add_argument("--json", action="store_true", help="end with both results and the rows as one JSON line")
    parity.set_defaults(handler=run_parity)


def _detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", metavar="NAME",
                        help="detector type (default: the measured default; see 'edge detect --list-detectors')")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a detector option, e.g. threshold=0.4 (repeatable)")


def detector_options(name: str | None, option_texts: list[str]) -> dict:
    """Registry options from --detector and --option KEY=VALUE: the default's settings when NAME is omitted or is
    the default type, the plugin's own defaults otherwise."""
    from emo7ion.edge.detect import registry

    options = dict(registry.DEFAULT) if name in (None, registry.DEFAULT["type"]) else {"type": name}
    for text in option_texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--option {text!r}: expected KEY=VALUE, e.g. threshold=0.4")
        if key == "type":
            raise ValueError("--option type=...: use --detector NAME to choose the detector")
        options[key] = value
    return options


def list_detectors() -> str:
    from emo7ion.edge.detect import registry

    lines = [f"default: {json.dumps(registry.DEFAULT)}"]
    for key in registry.available():
        lines.append(f"\n{key}:")
        for name, default, text in registry.options_help(key):
            lines.append(f"  {name} (default {default!r}): {text}")
    return "\n".join(lines)


def run_detect(args: argparse.Namespace) -> int:
    from emo7ion.bench.detector_scoring import read_image, timed_detect
    from emo7ion.edge.detect import registry

    if args.list_detectors:
        print(list_detectors())
        if not args.images:
            return 0
    if not args.images:
        raise ValueError("give at least one IMAGE (or --list-detectors)")
    detector = registry.create(detector_options(args.detector, args.option))
    found = {}
    for path in args.images:
        detections, ms = timed_detect(detector, read_image(path))
        print(f"{path}: {len(detections)} face{'s' if len(detections) != 1 else ''} in {ms:.1f} ms ({detector.name})")
        for d in detections:
            print(f"  x={d.x:.0f} y={d.y:.0f} w={d.w:.0f} h={d.h:.0f} score={d.score:.2f}")
        found[path] = [[round(d.x, 1), round(d.y, 1), round(d.w, 1), round(d.h, 1), round(d.score, 3)]
                       for d in detections]
    if args.json:
        print(json.dumps(found))
    return 0


def run_score(args: argparse.Namespace) -> int:
    from emo7ion.bench.detector_scoring import score_detector
    from emo7ion.edge.detect import registry

    options = detector_options(args.detector, args.option)
    for path, what in ((args.images, "images folder"), (args.ground_truth, "ground truth")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{what} {path} not found")
    detector = registry.create(options)
    result = score_detector(detector, args.images, args.ground_truth)
    result["options"] = options
    print(score_table(result))
    if args.json:
        print(json.dumps(result))
    return 0


def run_parity(args: argparse.Namespace) -> int:
    from emo7ion.bench.detector_scoring import PARITY_TOLERANCE, parity, parity_table, score_detector
    from emo7ion.edge.detect import registry

    tolerance = PARITY_TOLERANCE if args.tolerance is None else args.tolerance
    if not 0.0 <= tolerance <= 1.0:
        raise ValueError(f"--tolerance {tolerance}: must be within 0..1")
    for path, what in ((args.images, "images folder"), (args.ground_truth, "ground truth")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{what} {path} not found")
    results = []
    for name in (args.reference, args.candidate):
        options = {**detector_options(name, args.option), "type": name}
        result = score_detector(registry.create(options), args.images, args.ground_truth)
        result["options"] = options
        results.append(result)
    rows = parity(*results, tolerance=tolerance)
    print(parity_table(*results, rows, tolerance=tolerance))
    if args.json:
        print(json.dumps({"reference": results[0], "candidate": results[1], "rows": rows}))
    return 0 if all(row["holds"] for row in rows) else 1


def score_table(result: dict) -> str:
    """The per-image counts and totals of :func:`score_detector` as a readable table."""

    def frac(found: int, faces: int) -> str:
        return f"{found}/{faces}" if faces else "-"

    def recall(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    lines = [f"detector {result['detector']} {json.dumps(result.get('options', {}))}",
             f"{'image':<50} {'>=32 px':>8} {'16-32 px':>9} {'8-16 px':>8} {'detections':>10} {'false pos.':>10} "
             f"{'ms':>7}"]
    for name, image in result["images"].items():
        lines.append(f"{name[:50]:<50} {frac(image['found_32'], image['faces_32']):>8} "
                     f"{frac(image['found_16_32'], image['faces_16_32']):>9} "
                     f"{frac(image['found_8_16'], image['faces_8_16']):>8} {image['detections']:>10} "
                     f"{image['false_positives']:>10} {image['ms']:>7.1f}")
    lines.append(f"{'total':<50} {frac(result['found_32'], result['faces_32']):>8} "
                 f"{frac(result['found_16_32'], result['faces_16_32']):>9} "
                 f"{frac(result['found_8_16'], result['faces_8_16']):>8} {result['detections']:>10} "
                 f"{result['false_positives']:>10} {result['ms_per_frame']:>7.1f}")
    hd = f"{result['ms_1280x720']:.1f}" if result.get("ms_1280x720") is not None else "-"
    lines.append(f"recall (IoU >= {result['iou_threshold']}): >=32 px {recall(result['recall_32'])}, 16-32 px "
                 f"{recall(result['recall_16_32'])}, 8-16 px {recall(result['recall_8_16'])}; ms per frame: "
                 f"{result['ms_per_frame']:.1f} native, {hd} at 1280x720")
    return "\n".join(lines)
