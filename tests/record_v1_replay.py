"""Replay a recorded v1 camera stream through an aggregator and dump what it stored and published.

The golden files in tests/data/v1_replay/ were recorded with this script against the aggregator as it was
before issue 13's refactor; tests/test_v1_replay.py replays the same stream through the current one and
compares. Everything runs for real: a Mosquitto on a free loopback port, the aggregator (ingest, SQLite
store, mood publisher) in this process, a subscriber that records what the aggregator publishes.

The wall clock is pinned: ``time.time`` returns the stream's ``clock`` while the aggregator runs, so the
plausibility checks, the sliding mood window, ``received`` / ``last_seen`` and the mood's ``ts`` are all
fixed by the recording instead of by when it is replayed. The mood publisher's thread is not started;
its ``tick`` runs after each phase of the stream has been stored, so which moods are published does not
depend on thread timing either.

    # the stream (once; it is then a recorded file):
    python tests/record_v1_replay.py make-stream tests/data/v1_replay/stream.jsonl
    # replay it through the code in TREE (a checkout or git worktree) and write the dumps:
    python tests/record_v1_replay.py replay tests/data/v1_replay/stream.jsonl --tree /tmp/old-agg \\
        --out tests/data/v1_replay
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import random
import sqlite3
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLOCK = "2026-01-15T20:12:00.000Z"
"""The pinned wall clock of the replay: just after the stream's last window."""

log = logging.getLogger("record_v1_replay")


# -- the stream ------------------------------------------------------------------------------------------

def make_stream() -> list[dict]:
    """A fixed v1 stream: two venues, four cameras (zones front/back and none), ten one-minute windows each,
    with a gap, a duplicate, an out-of-order window, a withheld window, malformed, overlapping, future-dated
    and retained counts (each rejected), statuses (one camera going offline at the end) and health records.
    Phase 0 is on the broker before the aggregator connects; after each later phase the moods are computed."""
    from emo7ion.core import emotions, messages

    rng = random.Random(13)
    base = dt.datetime(2026, 1, 15, 20, 1, tzinfo=dt.UTC)
    model = {"sha256": "ab" * 32, "version": "1.1"}
    cameras = [("hall-a", "cam-1", "front"), ("hall-a", "cam-2", "back"), ("hall-a", "cam-3", None),
               ("hall-b", "cam-1", None)]
    records: list[dict] = []

    def add(phase: int, topic: str, payload: bytes | str, retain: bool = False) -> None:
        text = payload.decode() if isinstance(payload, bytes) else payload
        records.append({"phase": phase, "topic": topic, "payload": text, "retain": retain})

    def window(venue: str, camera: str, zone: str | None, seq: int, withheld: bool = False,
               start: dt.datetime | None = None) -> messages.Window:
        start = start or base + dt.timedelta(minutes=seq)
        counts = {label: rng.randrange(0, 9) for label in emotions.LABELS}
        faces = sum(counts.values())
        return messages.Window(venue=venue, camera=camera, zone=zone, seq=seq, start=start,
                               end=start + dt.timedelta(minutes=1), frames=60, faces=2 if withheld else faces,
                               counts=None if withheld else counts,
                               mean_confidence=None if withheld else round(rng.uniform(0.5, 0.9), 4), model=model)

    def counts(phase: int, w: messages.Window, retain: bool = False) -> None:
        add(phase, messages.camera_topic(w.venue, w.camera, "counts"), messages.window_payload(w), retain)

    def status(phase: int, venue: str, camera: str, zone: str | None, state: str, minute: int) -> None:
        add(phase, messages.camera_topic(venue, camera, "status"), messages.status_payload(messages.Status(
            venue=venue, camera=camera, zone=zone, state=state, ts=base + dt.timedelta(minutes=minute),
            agent="emo7ion-edge 0.1.0", model=model)), retain=True)

    def health(phase: int, venue: str, camera: str, minute: int) -> None:
        add(phase, messages.camera_topic(venue, camera, "health"), messages.health_payload(messages.Health(
            venue=venue, camera=camera, ts=base + dt.timedelta(minutes=minute), fps=1.0, inference_ms=412.5,
            skipped_frames=3, outbox_depth=0, outbox_dropped=0, uptime_s=60.0 * minute, source_ok=True)))

    # phase 0, on the broker before the aggregator connects: a retained window (a replay, ignored)
    counts(0, window("hall-a", "cam-3", None, 11, start=base + dt.timedelta(minutes=10)), retain=True)

    # phase 1: the cameras come online and send their first five windows
    for venue, camera, zone in cameras:
        status(1, venue, camera, zone, "online", 0)
    for seq in range(5):
        for venue, camera, zone in cameras:
            counts(1, window(venue, camera, zone, seq))
    health(1, "hall-a", "cam-1", 5)

    # phase 2: the next five, with the faults a real link shows
    windows = {(venue, camera): [window(venue, camera, zone, seq) for seq in range(5, 10)]
               for venue, camera, zone in cameras}
    late = windows["hall-a", "cam-2"][1]                          # seq 6: held back, arrives in phase 3
    for venue, camera, zone in cameras:
        own = windows[venue, camera]
        if (venue, camera) == ("hall-a", "cam-3"):
            own = [own[0], own[1], own[3], own[2], own[4]]        # seq 8 before seq 7: out of order
        if (venue, camera) == ("hall-a", "cam-2"):
            own = [w for w in own if w.seq not in (6, 7)]         # seq 6 late, seq 7 never: a gap
        if (venue, camera) == ("hall-b", "cam-1"):
            own = own[:4] + [window(venue, camera, zone, 9, withheld=True)]  # too few faces: counts withheld
        for w in own:
            counts(2, w)
            if (w.venue, w.camera, w.seq) == ("hall-a", "cam-1", 5):
                counts(2, w)                                      # delivered twice: a duplicate
    add(2, messages.camera_topic("hall-a", "cam-1", "counts"), '{"v":1,"type":"counts","venue":"hall-a"}')
    overlapping = window("hall-b", "cam-1", None, 10, start=base + dt.timedelta(minutes=9, seconds=30))
    counts(2, overlapping)                                        # overlaps seq 9: refused
    future = window("hall-a", "cam-3", None, 10, start=base + dt.timedelta(hours=2))
    counts(2, future)                                             # dated beyond the clock skew: refused
    health(2, "hall-b", "cam-1", 10)

    # phase 3: the late window arrives, and one camera goes offline (its last will)
    counts(3, late)
    status(3, "hall-b", "cam-1", None, "offline", 11)
    return records


def write_stream(path: Path) -> None:
    lines = [json.dumps({"clock": CLOCK})] + [json.dumps(record) for record in make_stream()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def read_stream(path: Path) -> tuple[float, list[dict]]:
    """The pinned clock (seconds since the epoch) and the records, as written by :func:`write_stream`."""
    header, *records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    clock = dt.datetime.strptime(header["clock"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
    return clock, records


# -- running an aggregator from another tree --------------------------------------------------------------

def use_tree(tree: Path) -> None:
    """Import ``emo7ion`` from ``tree`` (a checkout or worktree): its folders sit at the top and install under
    ``emo7ion.*`` (pyproject's package-dir), so a folder of links in that shape goes first on sys.path."""
    tree = tree.resolve()
    package_dir = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    farm = Path(tempfile.mkdtemp(prefix="emo7ion-tree-")) / "emo7ion"
    farm.mkdir()
    for entry in (tree / package_dir["emo7ion"]).iterdir():
        (farm / entry.name).symlink_to(entry)
    for name, folder in package_dir.items():
        if name != "emo7ion" and name.count(".") == 1:
            (farm / name.split(".")[1]).symlink_to(tree / folder)
    sys.path.insert(0, str(farm.parent))
    import emo7ion.aggregator

    if not Path(emo7ion.aggregator.__file__).resolve().is_relative_to(tree):
        raise SystemExit(f"emo7ion.aggregator came from {emo7ion.aggregator.__file__}, not {tree}")


# -- the replay ---------------------------------------------------------------------------------------------

class _Recorder:
    """Every message under ``topics`` in arrival order; ``quiet`` waits until none has come for a while."""

    def __init__(self, port: int, topics: tuple[str, ...], client_id: str):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the recorder could not subscribe")

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))
            self._last = time.monotonic()

    def quiet(self, for_s: float = 0.5, timeout: float = 15.0) -> None:
        """Until nothing has arrived for ``for_s`` (counted from now at the earliest)."""
        with self._lock:
            self._last = max(self._last, time.monotonic())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - self._last < for_s:
            time.sleep(0.05)

    def take(self) -> list[tuple[str, str, bool]]:
        with self._lock:
            taken, self.messages = self.messages, []
        return taken

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(camera: _Recorder, records: list[dict]) -> int:
    for record in records:
        camera.client.publish(record["topic"], record["payload"], qos=1, retain=record["retain"]).wait_for_publish(5)
    return len(records)


def _processed(stats) -> int:
    """Messages the ingest has accounted for, each in exactly one counter."""
    return stats.stored + stats.duplicates + stats.statuses + stats.health + sum(stats.rejected.values())


def _settle(service, sent: int, timeout: float = 30.0) -> None:
    """Until every message sent so far is accounted for and the writer has been idle for a moment."""
    stats = service.ingest.stats
    deadline = time.monotonic() + timeout
    while _processed(stats) < sent:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the aggregator accounted for {_processed(stats)} of {sent} messages")
        time.sleep(0.05)
    batches, since = stats.batches, time.monotonic()
    while time.monotonic() - since < 0.6:
        if stats.batches != batches or len(service.ingest._handoff):
            batches, since = stats.batches, time.monotonic()
        time.sleep(0.05)


def _sent_by(client, timeout: float = 15.0) -> None:
    """Until the broker has acknowledged everything ``client`` published (paho keeps the unacknowledged)."""
    deadline = time.monotonic() + timeout
    while client._out_messages and time.monotonic() < deadline:
        time.sleep(0.02)


def dump_tables(db: Path) -> dict:
    """Every table's columns and rows, rows in a fixed order (sorted), from the SQLite file as an auditor reads it."""
    with sqlite3.connect(db) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        tables = {}
        for name in names:
            cursor = connection.execute(f'SELECT * FROM "{name}"')
            columns = [d[0] for d in cursor.description]
            rows = sorted(([*row] for row in cursor.fetchall()), key=lambda row: json.dumps(row))
            tables[name] = {"columns": columns, "rows": rows}
    return tables


def replay(stream: Path, workdir: Path) -> tuple[dict, dict]:
    """Replay ``stream`` through the importable aggregator: (stored rows, published messages)."""
    from emo7ion.aggregator.config import load
    from emo7ion.aggregator.service import Aggregator
    from emo7ion.broker_config.runner import Mosquitto, free_port

    clock, records = read_stream(stream)
    port = free_port()
    (workdir / "broker").mkdir(parents=True, exist_ok=True)
    config_file = workdir / "broker" / "mosquitto.conf"
    config_file.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                           "persistence false\n")
    broker = Mosquitto(config_file, port, workdir / "broker" / "mosquitto.log").start()
    stream_topics = {record["topic"] for record in records}
    recorder = _Recorder(port, ("emo7ion/#", "homeassistant/#"), "replay-recorder")
    camera = _Recorder(port, ("replay/none",), "replay-cameras")
    wall_clock = time.time
    time.time = lambda: clock  # pinned for the aggregator's plausibility checks, windows, rows and moods
    service = None
    try:
        sent = _publish(camera, [r for r in records if r["phase"] == 0])  # waiting for the aggregator
        db = workdir / "aggregator.sqlite"
        service = Aggregator(load(None, {"broker": f"mqtt://127.0.0.1:{port}", "db": str(db), "port": 0},
                                  environ={}))
        service.moods.thread = threading.Thread(target=lambda: None)  # ticks are run below, after each phase
        service.start()
        deadline = time.monotonic() + 15
        while not service.ingest.stats.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        published: dict[str, list] = {}
        for phase in sorted({record["phase"] for record in records} - {0}):
            sent += _publish(camera, [r for r in records if r["phase"] == phase])
            _settle(service, sent)
            service.moods.tick()
            _sent_by(getattr(service, "link", service.ingest).client)  # the old tree: the ingest's client
            recorder.quiet()
            # Acks to cameras (issue 18) are new output, each after its batch committed: the v1 aggregator sent
            # none, so they are left out here (tests/test_acks_aggregator.py checks them).
            published[f"phase {phase}"] = [[topic, payload] for topic, payload, _ in recorder.take()
                                           if topic not in stream_topics and not topic.endswith("/ack")]
        retained = _Recorder(port, ("emo7ion/#", "homeassistant/#"), "replay-retained")
        retained.quiet()
        published["retained at the end"] = sorted([topic, payload] for topic, payload, flag in retained.take()
                                                   if flag and topic not in stream_topics)
        retained.close()
        stats = service.ingest.stats
        counters = {"stored": stats.stored, "duplicates": stats.duplicates, "statuses": stats.statuses,
                    "health": stats.health, "rejected": dict(sorted(stats.rejected.items()))}
        service.stop()
        service = None
        return {"ingest": counters, "tables": dump_tables(db)}, published
    finally:
        if service is not None:
            service.stop()
        time.time = wall_clock
        recorder.close()
        camera.close()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-stream", help="write the fixed v1 stream (JSONL)")
    make.add_argument("path", type=Path)
    run = sub.add_parser("replay", help="replay a stream and write expected_rows.json and expected_moods.json")
    run.add_argument("stream", type=Path)
    run.add_argument("--tree", type=Path, help="import emo7ion from this checkout or worktree (default: installed)")
    run.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "make-stream":
        write_stream(args.path)
        return 0
    if args.tree:
        use_tree(args.tree)
    with tempfile.TemporaryDirectory(prefix="v1-replay-") as workdir:
        rows, moods = replay(args.stream, Path(workdir))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "expected_rows.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "expected_moods.json").write_text(json.dumps(moods, indent=1) + "\n")
    print(f"{rows['ingest']}; {sum(len(v) for v in moods.values())} messages published", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
