"""``emo7ion bench ingest``: simulated cameras -> a real Mosquitto -> the aggregator -> SQLite.

Publishers (separate processes, so the aggregator's share of the CPU is its own) send one QoS 1 window
per camera every ``period_s`` seconds. Each window's end time is its publish time, so the store's
receive time minus it is the publish-to-stored latency. Reports the sustained rate stored, latency
p50/p99, the CPU and memory of each process, and how many windows were lost (must be 0).
"""

from __future__ import annotations

import datetime as dt
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


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds used, resident bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def _publisher(port: int, cameras: list[tuple[str, str]], period_s: float, duration_s: float, start_at: float,
               sent, index: int) -> None:
    client = broker_connection.make_client(f"bench-pub-{index}", broker_connection.BrokerAddress("127.0.0.1", port,
                                                                                               tls=False))
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    counts = dict.fromkeys(emotions.LABELS, 1)
    step = period_s / max(len(cameras), 1)
    topics = [messages.camera_topic(v, c, "counts") for v, c in cameras]
    while time.time() < start_at:
        time.sleep(0.01)
    seq, total, next_due = 0, 0, time.monotonic()
    last_end: dict[str, float] = {}  # a camera's windows follow each other, as an agent's do (overlaps are refused)
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        for (venue, camera), topic in zip(cameras, topics):
            now = time.time()
            start = max(now - period_s, last_end.get(topic, 0.0))
            last_end[topic] = now
            window = messages.Window(venue=venue, camera=camera, seq=seq, start=dt.datetime.fromtimestamp(
                start, dt.UTC), end=dt.datetime.fromtimestamp(now, dt.UTC), frames=10, faces=7,
                counts=counts, mean_confidence=0.7, model=MODEL)
            client.publish(topic, messages.window_payload(window), qos=1)
            total += 1
            next_due += step
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        seq += 1
    deadline = time.monotonic() + 30
    while client._out_messages and time.monotonic() < deadline:  # wait for the broker's PUBACKs
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    sent[index] = total


def run(cameras: int = 2000, period_s: float = 5.0, duration_s: float = 20.0, publishers: int = 2,
        workdir: Path | None = None, drain_timeout_s: float = 60.0) -> dict:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="emo7ion-bench-ingest-"))
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 1000\n")
    broker = Mosquitto(conf, port).start()
    db = workdir / "bench.sqlite"
    http_port = free_port()
    aggregator = subprocess.Popen([sys.executable, "-m", "emo7ion", "--log-level", "WARNING", "aggregator", "run",
                                   "--broker", f"mqtt://127.0.0.1:{port}", "--db", str(db), "--port", str(http_port),
                                   "--client-id", "bench-aggregator"], stdout=subprocess.DEVNULL)
    try:
        wait_for_port(http_port, timeout=60, process=aggregator)
        time.sleep(1.0)  # subscribed
        names = [(f"venue-{i // 50:03d}", f"cam-{i % 50:02d}") for i in range(cameras)]
        shares = [names[i::publishers] for i in range(publishers)]
        sent = multiprocessing.Array("q", publishers)
        start_at = time.time() + 1.0
        before = {"mosquitto": proc_usage(broker.process.pid), "aggregator": proc_usage(aggregator.pid)}
        workers = [multiprocessing.Process(target=_publisher, args=(port, share, period_s, duration_s, start_at,
                                                                    sent, i)) for i, share in enumerate(shares)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=duration_s + 120)
        total_sent = int(sum(sent))
        stored = _wait_stored(db, total_sent, drain_timeout_s)
        elapsed = time.time() - start_at
        after = {"mosquitto": proc_usage(broker.process.pid), "aggregator": proc_usage(aggregator.pid)}
        figures = _figures(db)
    finally:
        aggregator.terminate()
        try:
            aggregator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            aggregator.kill()
        broker.stop()
    usage = {name: {"cpu_percent": round(100 * (after[name][0] - before[name][0]) / elapsed, 1),
                    "rss_mb": round(after[name][1] / 2**20, 1)} for name in after}
    return {"cameras": cameras, "period_s": period_s, "offered_per_s": round(cameras / period_s, 1),
            "duration_s": duration_s, "sent": total_sent, "stored": stored, "lost": total_sent - stored,
            **figures, "processes": usage}


def _wait_stored(db: Path, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    stored = -1
    while time.monotonic() < deadline:
        stored = _count(db)
        if stored >= expected:
            break
        time.sleep(0.5)
    return stored


def _count(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute("SELECT COUNT(*) FROM windows").fetchone()[0]


def _figures(db: Path) -> dict:
    with sqlite3.connect(db, timeout=30) as connection:
        latencies = sorted(r[0] for r in connection.execute("SELECT received_ts - end_ts FROM windows"))
        first, last = connection.execute("SELECT MIN(received_ts), MAX(received_ts) FROM windows").fetchone()
    if not latencies:
        return {"stored_per_s": 0.0, "latency_p50_s": None, "latency_p99_s": None}

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)

    return {"stored_per_s": round(len(latencies) / max(last - first, 1e-6), 1), "latency_p50_s": pct(0.50),
            "latency_p99_s": pct(0.99), "latency_max_s": round(latencies[-1], 3)}


def table(rows: list[dict]) -> str:
    head = (f"{'cameras':>8} {'offered/s':>10} {'stored/s':>9} {'p50 s':>7} {'p99 s':>7} {'lost':>6} "
            f"{'mosq CPU%':>10} {'agg CPU%':>9} {'agg MB':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['cameras']:>8} {r['offered_per_s']:>10.0f} {r['stored_per_s']:>9.0f} "
                     f"{r['latency_p50_s'] or 0:>7.3f} {r['latency_p99_s'] or 0:>7.3f} {r['lost']:>6} "
                     f"{r['processes']['mosquitto']['cpu_percent']:>10.1f} "
                     f"{r['processes']['aggregator']['cpu_percent']:>9.1f} "
                     f"{r['processes']['aggregator']['rss_mb']:>7.1f}")
    return "\n".join(lines)
