"""``emo7ion bench``: measured figures, printed as a table (``--json`` for machines)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands) -> None:
    bench = commands.add_parser("bench", help="benchmarks: classifier, edge agent, ingest",
                                description="Benchmarks that print measured figures (keep results in "
                                            "docs/benchmarks.md).")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    classifier = sub.add_parser("classifier", help="faces/s of the Keras model and each TFLite variant",
                                description="Faces per second at batch 1 and 32, with 1 and 2 threads, for the "
                                            "Keras model and each .tflite variant, with MACs per face and the "
                                            "CPU's float32 limit.")
    classifier.add_argument("models", nargs="*", type=Path,
                            help="a .keras file and .tflite files (default: the shipped .tflite models, and the "
                                 ".keras one when Keras is installed)")
    classifier.add_argument("--json", action="store_true")
    classifier.set_defaults(handler=run_classifier)

    edge = sub.add_parser("edge", help="the whole agent on crowd photos, stage by stage, one thread",
                          description="Frames/s, faces/s and milliseconds per stage (capture, detect, crop, "
                                      "classify, publish) of the agent's pipeline on real crowd photos resized to "
                                      "1280x720 and 1920x1080, single thread.")
    edge.add_argument("--images", type=Path, required=True,
                      help="folder of crowd photos (in a checkout: ../shared/data/crowd-sample/images)")
    edge.add_argument("--model", type=Path, help="the .tflite classifier (default: the shipped int8 model)")
    edge.add_argument("--frames", type=int, default=20, help="frames per resolution (default: %(default)s)")
    edge.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH (default: %(default)s)")
    edge.add_argument("--no-flip", action="store_true",
                      help="run the pipeline without flip averaging (its cost is reported either way)")
    edge.add_argument("--json", action="store_true")
    edge.set_defaults(handler=run_edge)

    ingest = sub.add_parser("ingest", help="simulated cameras through a real Mosquitto into the aggregator",
                            description="N simulated cameras (default 2,000), each publishing one QoS 1 window every "
                                        "PERIOD seconds through a real Mosquitto to the aggregator on SQLite: "
                                        "windows/s stored, publish-to-stored latency p50/p99, CPU and memory per "
                                        "process, and windows lost. --cameras takes a list to find saturation.")
    ingest.add_argument("--cameras", default="2000", help="comma-separated camera counts (default: %(default)s)")
    ingest.add_argument("--period", type=float, default=5.0, help="seconds between a camera's windows")
    ingest.add_argument("--rate", type=float, default=1.0, help="speed-up: windows come RATE times as often")
    ingest.add_argument("--duration", type=float, default=20.0, help="seconds of publishing per step")
    ingest.add_argument("--publishers", type=int, default=2, help="publisher processes (default: %(default)s)")
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(handler=run_ingest)


def shipped_models() -> list[Path]:
    """The released .tflite models, and the .keras one when Keras can load it (a wheel ships no .keras)."""
    import importlib.util

    from emo7ion.core.resources import models_dir

    folder = models_dir()
    keras = sorted(folder.glob("*.keras")) if importlib.util.find_spec("keras") else []
    return keras + sorted(folder.glob("*.tflite"))


def run_classifier(args: argparse.Namespace) -> int:
    from emo7ion.bench import classifier

    models = args.models or shipped_models()
    if not models:
        raise FileNotFoundError("no models given and none shipped with the package; give .tflite files")
    result = classifier.run(models)
    print(classifier.table(result))
    if args.json:
        print(json.dumps(result))
    return 0


def run_edge(args: argparse.Namespace) -> int:
    from emo7ion.bench import edge
    from emo7ion.core.resources import shipped_model
    from emo7ion.edge.sources.images import list_images

    images = list_images(str(args.images))
    if not images:
        raise FileNotFoundError(f"no images in {args.images}")
    try:
        sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    except ValueError:
        raise ValueError(f"--sizes {args.sizes!r}: expected e.g. 1280x720,1920x1080") from None
    model = args.model or shipped_model()
    results = edge.run(str(model), images, sizes, frames=args.frames, flip_average=not args.no_flip)
    print(edge.table(results))
    if args.json:
        print(json.dumps(results))
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    from emo7ion.bench import ingest

    try:
        steps = [int(n) for n in args.cameras.split(",")]
    except ValueError:
        raise ValueError(f"--cameras {args.cameras!r}: expected numbers like 2000,10000") from None
    if args.rate <= 0 or args.period <= 0 or args.duration <= 0 or min(steps) < 1:
        raise ValueError("--rate, --period, --duration and --cameras must be positive")
    rows = []
    for cameras in steps:
        rows.append(ingest.run(cameras, args.period / args.rate, args.duration, args.publishers))
        print(ingest.table(rows[-1:]) if len(rows) == 1 else ingest.table(rows[-1:]).splitlines()[-1], flush=True)
    if args.json:
        print(json.dumps(rows))
    return 1 if any(row["lost"] for row in rows) else 0
