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
    edge.add_argument("--allow-unversioned", action="store_true",
                      help="run a classifier whose provenance is missing or cut short (refused otherwise)")
    edge.add_argument("--frames", type=int, default=20, help="frames per resolution (default: %(default)s)")
    edge.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH (default: %(default)s)")
    edge.add_argument("--no-flip", action="store_true",
                      help="run the pipeline without flip averaging (its cost is reported either way)")
    edge.add_argument("--detector", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                      help="detector type and its own options (default: the measured default); repeat to compare, "
                           "e.g. --detector centerface --detector centerface-int8:upscale=1.5: each later one's "
                           "time against the first, interleaved frame by frame")
    edge.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a detector option given to every --detector, e.g. upscale=1.5 (repeatable)")
    edge.add_argument("--json", action="store_true")
    edge.set_defaults(handler=run_edge)

    people = sub.add_parser(
        "people", help="head counts, IDF1 and ms per stage on virtual-camera clips of crowd photos; synthetic votes",
        description="Renders virtual-camera clips (1280x720, a view panning and zooming across an annotated crowd "
                    "photo: every valid face is a person with a known identity), runs the real agent over each mp4 "
                    "as a recording (every frame, video time, windows written as by --out) for each detector and "
                    "detect_every value, and prints people counted against the truth (faces fully in view at "
                    ">= 32 px for >= 1 s), face-frames, IDF1 and ms per frame by stage. Then per-person votes against "
                    "per-frame predictions on SYNTHETIC people made of labelled FER2013 val faces.")
    people.add_argument("--crowd", type=Path, required=True,
                        help="the annotated crowd sample: images/ and ground_truth.json (in a checkout: "
                             "../shared/data/crowd-sample)")
    people.add_argument("--clips", default="band-pan,band-zoom,meeting,frontal",
                        help="comma-separated clips (default: %(default)s; --list-clips says what each is)")
    people.add_argument("--list-clips", action="store_true", help="list the clips and exit")
    people.add_argument("--seconds", type=float, default=20.0, help="length of each clip (default: %(default)s)")
    people.add_argument("--fps", type=float, default=10.0, help="frame rate of each clip (default: %(default)s)")
    people.add_argument("--detectors", default="centerface,centerface-int8",
                        help="comma-separated detector types (default: %(default)s)")
    people.add_argument("--detect-every", default="1,3",
                        help="comma-separated detect_every values, each run with every detector (default: "
                             "%(default)s)")
    people.add_argument("--window", type=float,
                        help="window seconds (default: one window longer than the clip, so its people is the "
                             "clip's count)")
    people.add_argument("--model", type=Path, help="the .tflite classifier (default: the shipped int8 model)")
    people.add_argument("--keep", type=Path,
                        help="keep the rendered mp4s, their truth (JSON) and the windows files in this folder")
    people.add_argument("--fer", type=Path,
                        help="FER2013 (.tar.gz, folders or csv) for the synthetic vote figures (in a checkout: "
                             "../shared/data/fer2013/fer2013.tar.gz); without it they are skipped")
    people.add_argument("--vote-k", default="1,3,5,10", help="frames per synthetic person (default: %(default)s)")
    people.add_argument("--vote-people", type=int, default=600,
                        help="synthetic people per row, at most (0 = every val face; default: %(default)s)")
    people.add_argument("--votes-only", action="store_true", help="only the synthetic vote figures (needs --fer)")
    people.add_argument("--json", action="store_true")
    people.set_defaults(handler=run_people)

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
    ingest.add_argument("--aggregators", type=int, default=1,
                        help="aggregator processes sharing one subscription (default: %(default)s)")
    ingest.add_argument("--db", default="", help="a postgresql:// URL of an empty database (default: a new SQLite "
                                                 "file)")
    ingest.add_argument("--profile", type=Path, metavar="DIR",
                        help="write each aggregator's sampled profile (every thread) to DIR/<client id>.txt")
    ingest.add_argument("--in-process", action="store_true",
                        help="no network: parse, judge and store --cameras windows x --rounds in this process, and "
                             "print the CPU time per window of each stage")
    ingest.add_argument("--rounds", type=int, default=4, help="--in-process: windows per camera (default: %(default)s)")
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(handler=run_ingest)


def shipped_models() -> list[Path]:
    """The released .tflite models, and the .keras one when Keras can load it (a wheel ships no .keras)."""
    import importlib.util

    from emo7ion.core.service.resources import models_dir

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
    from emo7ion.core.service.resources import shipped_model
    from emo7ion.edge.sources.images import list_images

    images = list_images(str(args.images))
    if not images:
        raise FileNotFoundError(f"no images in {args.images}")
    try:
        sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    except ValueError:
        raise ValueError(f"--sizes {args.sizes!r}: expected e.g. 1280x720,1920x1080") from None
    model = args.model or shipped_model()
    detectors = [edge.detector_spec(text, args.option) for text in args.detector or [None]]
    results = edge.compare(str(model), images, sizes, detectors, frames=args.frames, flip_average=not args.no_flip,
                           allow_unversioned=args.allow_unversioned)
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
    if args.aggregators < 1 or args.rounds < 1:
        raise ValueError("--aggregators and --rounds must be positive")
    if args.in_process:
        results = [ingest.in_process(cameras, args.rounds, db=args.db) for cameras in steps]
        for result in results:
            print(ingest.in_process_table(result), flush=True)
        if args.json:
            print(json.dumps(results))
        return 0
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    rows = []
    for cameras in steps:
        rows.append(ingest.run(cameras, args.period / args.rate, args.duration, args.publishers,
                               aggregators=args.aggregators, db=args.db, profile=args.profile))
        print(ingest.table(rows[-1:]) if len(rows) == 1 else ingest.table(rows[-1:]).splitlines()[-1], flush=True)
    if args.json:
        print(json.dumps(rows))
    return 1 if any(row["lost"] for row in rows) else 0


def run_people(args: argparse.Namespace) -> int:
    from emo7ion.bench import clips, people
    from emo7ion.core.service.resources import shipped_model

    if args.list_clips:
        for name, scenario in clips.SCENARIOS.items():
            print(f"{name:>10}  {scenario.photo}: {scenario.about}")
        return 0
    names = [n.strip() for n in args.clips.split(",") if n.strip()]
    unknown = [n for n in names if n not in clips.SCENARIOS]
    if unknown:
        raise ValueError(f"--clips: unknown clip(s) {', '.join(unknown)}; valid: {', '.join(clips.SCENARIOS)}")
    try:
        every = [int(n) for n in args.detect_every.split(",")]
        ks = [int(n) for n in args.vote_k.split(",")]
    except ValueError:
        raise ValueError("--detect-every and --vote-k take comma-separated whole numbers, e.g. 1,3") from None
    if min(every) < 1 or min(ks) < 1 or args.seconds <= 0 or args.fps <= 0 or args.vote_people < 0:
        raise ValueError("--detect-every, --vote-k, --seconds and --fps must be positive")
    if args.votes_only and not args.fer:
        raise ValueError("--votes-only needs --fer")
    model = args.model or shipped_model()
    result: dict = {}
    if not args.votes_only:
        from emo7ion.edge.detect import registry

        detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
        missing = [d for d in detectors if d not in registry.available()]
        if missing:
            raise ValueError(f"--detectors: unknown type(s) {', '.join(missing)}; valid: "
                             f"{', '.join(registry.available())}")
        if not (args.crowd / "ground_truth.json").is_file():
            raise FileNotFoundError(f"{args.crowd} has no ground_truth.json (give the crowd sample folder)")
        settings = [people.Setting(d, n) for n in every for d in detectors]
        total = len(names) * len(settings) * int(round(args.seconds * args.fps))
        with _bar(total, "frame") as bar:
            result = people.run(args.crowd, names, settings, args.seconds, args.fps, args.window, str(model),
                                args.keep, bar)
        print(people.table(result), flush=True)
    if args.fer:
        from emo7ion.bench import votes
        from emo7ion.core.runtime import EmotionClassifier
        from emo7ion.training import data

        val = data.load(args.fer, "val")
        classifier = EmotionClassifier(model, num_threads=1, flip_average=True)
        rows = (len(ks) - (1 in ks)) * len(votes.KINDS) + (1 in ks)
        with _bar(rows, "row") as bar:
            bar.set_description("synthetic votes")
            result["votes"] = votes.run(classifier.predict, val.x, val.y, ks, max_people=args.vote_people or None,
                                        tick=bar.update)
        print(("\n" if not args.votes_only else "") + votes.table(result["votes"]))
    if args.json:
        print(json.dumps(result))
    return 0


class _Bar:
    """A progress line on stderr when tqdm (the train extra) is not installed: ``set_description`` and ``update``."""

    def __init__(self, total: int, unit: str):
        self.total, self.unit, self.done, self.text, self.shown = total, unit, 0, "", -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        import sys

        print(file=sys.stderr, flush=True)

    def set_description(self, text: str) -> None:
        self.text = text

    def update(self, n: int = 1) -> None:
        import sys

        self.done += n
        percent = int(100 * self.done / max(self.total, 1))
        if percent != self.shown:
            self.shown = percent
            print(f"\r{self.text}: {percent:3d}% ({self.done}/{self.total} {self.unit}s)", end="", file=sys.stderr,
                  flush=True)


def _bar(total: int, unit: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return _Bar(total, unit)
    return tqdm(total=total, unit=unit, leave=False)
