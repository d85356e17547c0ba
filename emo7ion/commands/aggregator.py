"""``emo7ion aggregator``: the central service."""

from __future__ import annotations

import argparse
import logging
import threading

FLAGS = (
    ("--broker", "broker.url", "mqtt://host:1883 or mqtts://host:8883"),
    ("--username", "broker.username", "MQTT user (emo7ion broker add-aggregator)"),
    ("--password", "broker.password", "MQTT password (prefer EMO7ION_AGG__BROKER__PASSWORD)"),
    ("--ca-file", "broker.ca_file", "CA certificate for mqtts://"),
    ("--client-id", "client_id", "MQTT client id: names the persistent session"),
    ("--shared-group", "shared_group", "join the shared subscription $share/GROUP/... with other aggregators"),
    ("--db", "db", "SQLite file (default ~/.local/share/emo7ion/aggregator.sqlite) or postgresql://user:pass@host/db"),
    ("--host", "host", "HTTP bind address (default 127.0.0.1)"),
    ("--port", "port", "HTTP port (default 8080)"),
    ("--token", "token", "require this bearer token on the API (prefer EMO7ION_AGG__TOKEN)"),
    ("--allowed-hosts", "allowed_hosts", "names the dashboard is reached by besides localhost, comma-separated (the "
                                         "Host header; anything else is refused: DNS rebinding)"),
    ("--mood-window", "mood_window_s", "seconds of the venue mood's sliding window (default 300)"),
    ("--mood-camera-weight", "mood_camera_weight", "equal (default: each camera weighs the same in a mood) or "
                                                   "capped (by its people, at most --mood-camera-cap x the median)"),
    ("--mood-camera-cap", "mood_camera_cap", "a camera weighs at most this many times the median camera (default 2)"),
    ("--retention-days", "retention_days", "days of windows to keep (default 30)"),
    ("--venues-file", "venues_file", "each camera's zone: the broker directory's venues.toml (add-camera --zone)"),
    ("--discovery-prefix", "discovery_prefix", "Home Assistant MQTT discovery prefix (default homeassistant)"),
)


def register(commands) -> None:
    group = commands.add_parser("aggregator", help="the central service: ingest, store, mood, dashboard, API",
                                description="The central aggregator.")
    sub = group.add_subparsers(dest="aggregator_command", metavar="AGGREGATOR_COMMAND", required=True)
    run = sub.add_parser(
        "run", help="subscribe to every camera, store windows, serve the dashboard and API",
        description="Subscribe (MQTT 5, persistent session, optional shared subscription) to every camera's "
                    "counts, status and health; store windows in SQLite or PostgreSQL; publish venue mood "
                    "(retained) and serve the live dashboard at / and the HTTP API (OpenAPI docs at /docs).",
        epilog="Settings: defaults < --config TOML < EMO7ION_AGG__KEY environment variables < flags.")
    run.add_argument("--config", help="aggregator.toml")
    for flag, key, text in FLAGS:
        run.add_argument(flag, dest="set_" + key.replace(".", "__"), metavar=key.split(".")[-1].upper(), help=text)
    run.add_argument("--no-discovery", dest="set_discovery", action="store_const", const="false",
                     help="publish no Home Assistant discovery configs (config key discovery = false)")
    run.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    run.set_defaults(handler=run_aggregator)


def run_aggregator(args: argparse.Namespace) -> int:
    from emo7ion.aggregator.config import load
    from emo7ion.aggregator.service import Aggregator
    from emo7ion.core.service import heap, stopping

    overrides: dict = {}  # the flags given, as nested settings: --username sets broker.username
    for name, value in vars(args).items():
        if name.startswith("set_") and value:
            *tables, key = name[4:].split("__")
            node = overrides
            for table in tables:
                node = node.setdefault(table, {})
            node[key] = value
    stop = threading.Event()  # the process's one stop event: signals set it, and the broker link on a refusal
    service = Aggregator(load(args.config, overrides), stop)
    stopping.stop_on_signals(stop)
    service.start()
    heap.settle_for_throughput()
    print(f"dashboard: {service.url}/   API docs: {service.url}/docs", flush=True)
    try:
        stopping.wait(stop, args.duration)
    finally:
        logging.getLogger(__name__).info("stopping")
        service.stop()
    service.link.raise_if_refused()
    return 0
