"""``emo7ion edge``: the camera agent's commands (run, check, detect)."""

from __future__ import annotations

import argparse
import json
import logging
import threading

from emo7ion.commands import edge_detect

log = logging.getLogger(__name__)

AGENT_FLAGS = (  # flag, dotted config key, help
    ("--source", "source", "picamera2, a camera index, a stream URL, a video file, or an image folder/glob"),
    ("--broker", "broker.url", "mqtt://host:1883 or mqtts://host:8883"),
    ("--venue", "venue", "venue id"),
    ("--camera", "camera", "camera id (also the MQTT client id)"),
    ("--zone", "zone", "zone of the venue"),
    ("--window", "window_s", "seconds per window (default 10)"),
    ("--min-people", "min_people", "withhold every emotion figure of windows where no frame held this many "
                                   "people (default 3)"),
    ("--min-faces", "min_faces", "deprecated (use --min-people): also withhold windows with fewer faces"),
    ("--detect-every", "detect_every", "run the face detector on every Nth frame, track in between (default 1)"),
    ("--username", "broker.username", "MQTT user name"),
    ("--password", "broker.password", "MQTT password (prefer EMO7ION_EDGE__BROKER__PASSWORD)"),
    ("--ca-file", "broker.ca_file", "CA certificate for mqtts://"),
    ("--detector", "detector", "face detector type (see 'emo7ion edge detect --help')"),
    ("--model", "model", "the .tflite classifier (default: the shipped int8 model)"),
    ("--flip-average", "flip_average", "true/false: average each face with its mirror image (default true)"),
    ("--outbox", "outbox.path", "SQLite outbox file (default ~/.local/share/emo7ion/edge-outbox.sqlite)"),
    ("--fps", "source.fps", "image-folder replay rate"),
    ("--out", "out", "also write each window's payload to this JSON-lines file; with no broker set, only there "
                     "(nothing connects)"),
    ("--recorded-at", "source.recorded_at", "video file: UTC time of its first frame, e.g. 2026-12-02T18:00:00Z "
                                     "(default: the clip ends when the analysis starts)"),
    ("--loop", "source.loop", "true/false: start again at the end (a looped video file is replayed as a live "
                              "camera)"),
    ("--max-fps", "source.max_fps", "video file: analyse at most this many frames per video second (default 30, "
                                    "the aggregator's limit; 0 = every frame)"),
)


def register(commands) -> None:
    edge = commands.add_parser("edge", help="the camera agent: run, check, detect",
                               description="Commands of the edge camera agent that runs on each device.")
    sub = edge.add_subparsers(dest="edge_command", metavar="EDGE_COMMAND", required=True)
    epilog = ("Settings come from defaults, then --config, then EMO7ION_EDGE__KEY / EMO7ION_EDGE__TABLE__KEY "
              "environment variables, then these flags. A bad value stops the agent with its key named.")
    run = sub.add_parser("run", help="run the agent: publish anonymous emotion counts per window",
                         description="Read frames, find and classify faces on this device, and publish one "
                                     "anonymous record of emotion counts per window over MQTT. No image, crop or "
                                     "box ever leaves the device. SIGTERM/SIGINT finish the window and flush. "
                                     "A video file is a recording: every frame is analysed at its own time in the "
                                     "video, windows count from its first frame, and the agent stops at its end "
                                     "(docs/architecture.md, 'Recorded and live sources').",
                         epilog=epilog)
    check = sub.add_parser("check", help="check the model, the source and the broker, then exit",
                           description="Load the model, open the source and read a frame, connect to the broker; "
                                       "print what was found and exit non-zero at the first failure.",
                           epilog=epilog)
    for parser in (run, check):
        parser.add_argument("--config", help="edge.toml")
        parser.add_argument("--allow-unversioned", dest="set_allow_unversioned", action="store_const", const=True,
                            help="run a classifier whose provenance is missing or cut short (its windows report "
                                 "version 'unversioned'); refused otherwise (config: allow_unversioned)")
        for flag, key, text in AGENT_FLAGS:
            parser.add_argument(flag, dest="set_" + key.replace(".", "__"), metavar=key.split(".")[-1].upper(),
                                help=text)
    run.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    run.add_argument("--json", action="store_true", help="end with the run's totals as one JSON line")
    run.set_defaults(handler=run_agent)
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    check.set_defaults(handler=run_check)
    edge_detect.register(sub)


def overrides(args: argparse.Namespace) -> dict:
    """The flags given, as nested settings ({'broker': {'url': ...}})."""
    nested: dict = {}
    for name, value in vars(args).items():
        if not name.startswith("set_") or value is None:
            continue
        path = name[4:].split("__")
        if path == ["source"]:
            from emo7ion.edge.sources.capture import infer_source

            nested.setdefault("source", {}).update(infer_source(value))
            continue
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return nested


def load_config(args: argparse.Namespace):
    from emo7ion.edge import config

    return config.load(args.config, overrides(args))


def run_agent(args: argparse.Namespace) -> int:
    from emo7ion.edge.agent import Agent

    config = load_config(args)
    from emo7ion.core.service import stopping

    stop = threading.Event()
    stopping.stop_on_signals(stop, message="signal %d: finishing the current window")
    stats = Agent(config, stop).run(args.duration)
    if args.json:
        print(json.dumps({"frames": stats.frames, "faces": stats.faces, "windows": stats.windows}))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from emo7ion.edge.check import check

    results = check(load_config(args), timeout=args.timeout)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1
