"""``emo7ion bench ingest``: simulated cameras -> a real Mosquitto -> the aggregator -> SQLite.

Publishers (separate processes, so the aggregator's share of the CPU is its own) send one QoS 1 window
per camera every ``period_s`` seconds. Each window's end time is its publish time, so the store's
receive time minus it is the publish-to-stored latency. Reports the sustained rate stored, latency
p50/p99, the CPU and memory of each process, the aggregators' CPU time per stored window (the figure a busy
machine moves least), and how many windows were lost (must be 0). One or more
aggregator processes (a shared subscription), on SQLite or PostgreSQL.

:func:`in_process` measures the aggregator's own work per window (parse, judge, store) without the network.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emo7ion.broker_config.runner import Mosquitto, free_port, wait_for_port
from emo7ion.core import emotions, messages
from emo7ion.core.service import broker_connection

MODEL = {"sha256": "b" * 64, "version": "bench"}
PACE_S = 0.005
"""A publisher sleeps once it is this far ahead of its schedule, not before every window: 2,500 sleeps a second
each took CPU that the machine's other core owes the aggregator, for windows at most 5 ms early."""


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds used, resident bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def _bench_window(venue: str, camera: str, seq: int, start: float, end: float) -> messages.Window:
    return messages.Window(venue=venue, camera=camera, seq=seq, start=dt.datetime.fromtimestamp(start, dt.UTC),
                           end=dt.datetime.fromtimestamp(end, dt.UTC), frames=10, faces=7,
                           counts=dict.fromkeys(emotions.LABELS, 1), mean_confidence=0.7, model=MODEL)


def _iso_ms(ts: float) -> bytes:
    """``messages.utc_iso`` of ``ts`` as a datetime: to the nearest microsecond, then cut to the millisecond."""
    fraction, seconds = math.modf(ts)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        seconds, micro = seconds + 1, micro - 1_000_000
    return b"%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode(), micro // 1000)


class WindowPayloads:
    """One simulated camera's window payloads, byte for byte what ``messages.window_payload`` writes (checked when
    made), filled into a template: the simulated cameras' own CPU is CPU the aggregator under test does not get on
    the same machine (two publishers making each window as an agent does took 0.6 of this 2-core machine)."""

    _SEQ, _START, _END = 987654321, 1000000000.125, 1000000001.25

    def __init__(self, venue: str, camera: str):
        sample = messages.window_payload(_bench_window(venue, camera, self._SEQ, self._START, self._END))
        head, rest = sample.split(b"%d" % self._SEQ, 1)
        middle, rest = rest.split(_iso_ms(self._START), 1)
        between, tail = rest.split(_iso_ms(self._END), 1)
        self._parts = (head, middle, between, tail)
        expected = messages.window_payload(_bench_window(venue, camera, 7, 1000000000.5, 1000000003.0))
        if self(7, 1000000000.5, 1000000003.0) != expected:
            raise AssertionError(f"bench payloads differ from window_payload's {expected!r}")

    def __call__(self, seq: int, start: float, end: float) -> bytes:
        head, middle, between, tail = self._parts
        return b"".join((head, b"%d" % seq, middle, _iso_ms(start), between, _iso_ms(end), tail))


def _publisher(port: int, cameras: list[tuple[str, str]], period_s: float, duration_s: float, start_at: float,
               sent, index: int) -> None:
    client = broker_connection.make_client(f"bench-pub-{index}", broker_connection.BrokerAddress("127.0.0.1", port,
                                                                                               tls=False))
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    step = period_s / max(len(cameras), 1)
    topics = [messages.camera_topic(v, c, "counts") for v, c in cameras]
    makers = [WindowPayloads(venue, camera) for venue, camera in cameras]
    while time.time() < start_at:
        time.sleep(0.01)
    seq, total, next_due = 0, 0, time.monotonic()
    last_end: dict[str, float] = {}  # a camera's windows follow each other, as an agent's do (overlaps are refused)
    deadline = next_due + duration_s
    while next_due < deadline:  # by the schedule: exactly the windows offered in ``duration_s``, however late
        for topic, make in zip(topics, makers):
            if next_due >= deadline:
                break
            now = time.time()
            start = max(now - period_s, last_end.get(topic, 0.0))
            last_end[topic] = now
            client.publish(topic, make(seq, start, now), qos=1)
            total += 1
            next_due += step
            delay = next_due - time.monotonic()
            if delay > PACE_S:
                time.sleep(delay)
        seq += 1
    deadline = time.monotonic() + 30
    while client._out_messages and time.monotonic() < deadline:  # wait for the broker's PUBACKs
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    sent[index] = total


def run(cameras: int = 2000, period_s: float = 5.0, duration_s: float = 20.0, publishers: int = 2,
        workdir: Path | None = None, drain_timeout_s: float = 60.0, aggregators: int = 1, db: str = "",
        profile: Path | None = None) -> dict:
    """One step: ``aggregators`` processes (more than one share one subscription, ``--shared-group bench``) on
    ``db`` (default: a new SQLite file; a postgresql:// URL must name a database with no windows yet). ``profile``:
    a folder where each aggregator's sampled profile is written (emo7ion/bench/sampler.py)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="emo7ion-bench-ingest-"))
    db = db or str(workdir / "bench.sqlite")
    if _is_postgres(db) and _count(db) > 0:
        raise ValueError(f"--db {db}: give an empty database (its windows table holds windows already)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 1000\n")
    broker = Mosquitto(conf, port).start()
    processes: list[subprocess.Popen] = []
    try:
        for i in range(aggregators):
            http_port = free_port()
            client_id = "bench-aggregator" if aggregators == 1 else f"bench-aggregator-{i + 1}"
            report = str(Path(profile or ".") / f"{client_id}.txt")
            sampler = [] if profile is None else ["-m", "emo7ion.bench.sampler", report]
            argv = [sys.executable, *sampler, "-m", "emo7ion", "--log-level", "WARNING", "aggregator", "run",
                    "--broker", f"mqtt://127.0.0.1:{port}", "--db", db, "--port", str(http_port),
                    "--client-id", client_id]
            processes.append(subprocess.Popen(argv + (["--shared-group", "bench"] if aggregators > 1 else []),
                                              stdout=subprocess.DEVNULL))
            wait_for_port(http_port, timeout=60, process=processes[-1])  # one by one: each makes or checks the schema
        time.sleep(1.0)  # subscribed
        names = [(f"venue-{i // 50:03d}", f"cam-{i % 50:02d}") for i in range(cameras)]
        shares = [names[i::publishers] for i in range(publishers)]
        sent = multiprocessing.Array("q", publishers)
        start_at = time.time() + 3.0  # each publisher makes its cameras' payload templates first
        before = _usage(broker, processes)
        workers = [multiprocessing.Process(target=_publisher, args=(port, share, period_s, duration_s, start_at,
                                                                    sent, i)) for i, share in enumerate(shares)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=duration_s + 120)
        total_sent = int(sum(sent))
        stored = _wait_stored(db, total_sent, drain_timeout_s)
        elapsed = time.time() - start_at
        after = _usage(broker, processes)
        figures = _figures(db)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
    usage = {name: {"cpu_percent": round(100 * (after[name][0] - before[name][0]) / elapsed, 1),
                    "rss_mb": round(after[name][1] / 2**20, 1)} for name in after}
    aggregator_cpu_s = sum(after[n][0] - before[n][0] for n in after if n != "mosquitto")
    usage["aggregator"] = {"cpu_percent": round(100 * aggregator_cpu_s / elapsed, 1),
                           "rss_mb": max(usage[n]["rss_mb"] for n in usage if n != "mosquitto"),
                           "cpu_us_per_window": round(1e6 * aggregator_cpu_s / max(stored, 1), 1)}
    return {"cameras": cameras, "period_s": period_s, "offered_per_s": round(cameras / period_s, 1),
            "duration_s": duration_s, "aggregators": aggregators, "db": "postgresql" if _is_postgres(db) else "sqlite",
            "sent": total_sent, "stored": stored, "lost": total_sent - stored, **figures, "processes": usage}


def _usage(broker: Mosquitto, aggregators: list[subprocess.Popen]) -> dict[str, tuple[float, int]]:
    usage = {"mosquitto": proc_usage(broker.process.pid)}
    for i, process in enumerate(aggregators):
        usage[f"aggregator-{i + 1}"] = proc_usage(process.pid)
    return usage


def _is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def _rows(db: str, sql: str) -> list[tuple]:
    if _is_postgres(db):
        import psycopg

        with psycopg.connect(db, connect_timeout=10) as connection:
            return connection.execute(sql).fetchall()
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(sql).fetchall()


def _wait_stored(db: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    stored = -1
    while time.monotonic() < deadline:
        stored = _count(db)
        if stored >= expected:
            break
        time.sleep(0.5)
    return stored


def _count(db: str) -> int:
    try:
        return int(_rows(db, "SELECT COUNT(*) FROM windows")[0][0])
    except Exception as error:  # noqa: BLE001  no windows table yet (a new database)
        if "windows" in str(error):
            return 0
        raise


def _figures(db: str) -> dict:
    latencies = sorted(float(r[0]) for r in _rows(db, "SELECT received_ts - end_ts FROM windows"))
    first, last = _rows(db, "SELECT MIN(received_ts), MAX(received_ts) FROM windows")[0]
    if not latencies:
        return {"stored_per_s": 0.0, "latency_p50_s": None, "latency_p99_s": None}

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)

    return {"stored_per_s": round(len(latencies) / max(last - first, 1e-6), 1), "latency_p50_s": pct(0.50),
            "latency_p99_s": pct(0.99), "latency_max_s": round(latencies[-1], 3)}


def table(rows: list[dict]) -> str:
    head = (f"{'cameras':>8} {'aggs':>4} {'db':>10} {'offered/s':>10} {'stored/s':>9} {'p50 s':>7} {'p99 s':>7} "
            f"{'lost':>6} {'mosq CPU%':>10} {'agg CPU%':>9} {'agg us/w':>9} {'agg MB':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['cameras']:>8} {r['aggregators']:>4} {r['db']:>10} {r['offered_per_s']:>10.0f} "
                     f"{r['stored_per_s']:>9.0f} {r['latency_p50_s'] or 0:>7.3f} {r['latency_p99_s'] or 0:>7.3f} "
                     f"{r['lost']:>6} {r['processes']['mosquitto']['cpu_percent']:>10.1f} "
                     f"{r['processes']['aggregator']['cpu_percent']:>9.1f} "
                     f"{r['processes']['aggregator']['cpu_us_per_window']:>9.0f} "
                     f"{r['processes']['aggregator']['rss_mb']:>7.1f}")
    return "\n".join(lines)


def in_process(cameras: int = 25000, rounds: int = 4, batch_size: int = 500, db: str = "") -> dict:
    """The aggregator's work per window without the network, on one thread: parse (core/messages.py), judge
    (plausibility), store (store.add_windows with the zones and the quota, in batches of ``batch_size``, as the
    ingest's writer does), for ``rounds`` windows of each of ``cameras`` cameras (interleaved, as they arrive).
    Thread CPU time per stage: what other processes on the machine move least."""
    from emo7ion.aggregator import plausibility
    from emo7ion.aggregator.changes import Changes
    from emo7ion.aggregator.config import AggregatorConfig
    from emo7ion.aggregator.quota import WindowQuota
    from emo7ion.aggregator.store import Store
    from emo7ion.aggregator.zones import Zones

    workdir = Path(tempfile.mkdtemp(prefix="emo7ion-bench-ingest-"))
    config = AggregatorConfig(db=db or str(workdir / "bench.sqlite"))
    now = time.time()
    first = now - (rounds + 2) * 5.0
    counts = dict.fromkeys(emotions.LABELS, 1)
    names = [(f"venue-{i // 50:03d}", f"cam-{i % 50:02d}") for i in range(cameras)]
    stream = [(messages.camera_topic(venue, camera, "counts"), messages.window_payload(messages.Window(
        venue=venue, camera=camera, seq=r, start=dt.datetime.fromtimestamp(first + 5.0 * r, dt.UTC),
        end=dt.datetime.fromtimestamp(first + 5.0 * (r + 1), dt.UTC), frames=10, faces=7, counts=counts,
        mean_confidence=0.7, model=MODEL))) for r in range(rounds) for venue, camera in names]
    store = Store(config.db)
    zones, changes = Zones(config.venues), Changes()
    quota = WindowQuota(config.camera_backlog_s, config.max_camera_windows_per_day)
    spent = dict.fromkeys(("parse", "judge", "store"), 0.0)
    stored = 0
    clock = time.thread_time
    started, wall = clock(), time.perf_counter()
    try:
        for i in range(0, len(stream), batch_size):
            a = clock()
            windows = [messages.parse(topic, payload) for topic, payload in stream[i:i + batch_size]]
            b = clock()
            refused = [w for w in windows if plausibility.judge(w, now, config) is not None]
            c = clock()
            result = store.add_windows([w for w in windows if w not in refused], refused=refused, zones=zones,
                                       quota=quota)
            changes.bump({w.venue for w in windows})
            stored += result.stored
            spent["parse"] += b - a
            spent["judge"] += c - b
            spent["store"] += clock() - c
    finally:
        store.close()
    cpu = clock() - started
    return {"cameras": cameras, "windows": len(stream), "stored": stored, "batch_size": batch_size,
            "cpu_s": round(cpu, 2), "wall_s": round(time.perf_counter() - wall, 2),
            "windows_per_cpu_s": round(len(stream) / cpu), **{f"{stage}_us": round(1e6 * s / len(stream), 1)
                                                               for stage, s in spent.items()}}


def in_process_table(result: dict) -> str:
    return (f"{result['stored']} of {result['windows']} windows stored ({result['cameras']} cameras, batches of "
            f"{result['batch_size']}) in {result['cpu_s']} s of CPU ({result['wall_s']} s wall): "
            f"{result['windows_per_cpu_s']} windows per CPU second; per window: parse {result['parse_us']} us, "
            f"judge {result['judge_us']} us, store {result['store_us']} us")
