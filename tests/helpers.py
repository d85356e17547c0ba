"""What several test modules share: where the shared data lives, the tiny synthetic FER data set, a live
aggregator behind a real Mosquitto, readers of what an aggregator stored or an agent produced, and the one
polling helper (``wait_until``). Fixtures stay in conftest.py; plain functions and classes live here so that a
test module imports them by a name that says what they are."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from emo7ion.core import emotions

T = TypeVar("T")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def synthetic_face(label_index: int, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 gray image whose class is its brightness (20 + 32 * class, give or take 8), which
    flips, shifts and zooms keep, so a CNN learns it in an epoch or two."""
    level = 20 + 32 * label_index
    return np.clip(level + rng.integers(-8, 9, size=(48, 48)), 0, 255).astype(np.uint8)


def write_split(root: Path, per_class: int, seed: int) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    for index, label in enumerate(emotions.LABELS):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(folder / f"{label}_{i}.png"), synthetic_face(index, rng))



def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               what: str | None = None) -> T:
    """Poll ``condition`` until it answers something truthy and return that answer. After ``timeout`` seconds
    it is asked once more: without ``what`` its (falsy) answer is returned, for ``assert wait_until(...), why``;
    with ``what`` an AssertionError says what was awaited and for how long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    result = condition()
    if not result and what is not None:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return result


def tiny_run_config(data: Path, out: Path, epochs: int = 2):
    """The settings of the session's tiny run (``tiny_model``); a test resumes a copy of it with more epochs."""
    from emo7ion.training.train import TrainConfig

    return TrainConfig(data=str(data), out=str(out), epochs=epochs, batch_size=16, warmup_epochs=0,
                       learning_rate=3e-3, patience=5, hparams={"bn_momentum": 0.5})


def stored_keys(db: str | Path) -> list[tuple[str, str, int]]:
    """Every (venue, camera, seq) an aggregator stored, read from its SQLite file as an auditor would."""
    import sqlite3

    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute("SELECT venue, camera, seq FROM windows ORDER BY venue, camera, seq").fetchall()


def windows_produced(outbox: str | Path) -> int:
    """How many windows an agent produced: the next sequence number its outbox file would hand out."""
    import sqlite3

    with sqlite3.connect(outbox, timeout=30) as connection:
        return connection.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]


class LiveAggregator:
    """A real aggregator (SQLite file, HTTP on a free port) behind a real Mosquitto, and a camera-side
    MQTT client that publishes real windows and statuses through that broker."""

    def __init__(self, folder: Path, **settings):
        import paho.mqtt.client as mqtt
        from mqtt_helpers import start_plain_broker

        from emo7ion.aggregator.config import load
        from emo7ion.aggregator.service import Aggregator

        self.broker = start_plain_broker(folder / "broker")
        # min_window_s 0: publish_window ends a window now and never overlaps the last, so windows published back
        # to back are milliseconds long; the length check has its own tests (test_window_judging.py).
        config = load(None, {"broker": f"mqtt://127.0.0.1:{self.broker.port}", "db": str(folder / "agg.sqlite"),
                             "port": 0, "offline_after_s": 3600, "min_window_s": 0.0, **settings}, environ={})
        self.service = Aggregator(config).start()
        # A window published before the broker granted the aggregator's subscription would be lost (its first
        # session is new): wait for the SUBACK, as a real camera's outbox would simply re-send instead.
        assert self.service.link.subscribed.wait(20), "the aggregator's subscription was never granted"
        self.url = self.service.url
        self.seq: dict[tuple[str, str], int] = {}
        self.spans: dict[tuple[str, str], dict[int, tuple[float, float]]] = {}  # seq -> (start, end) published
        self.camera = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="live-cameras", protocol=mqtt.MQTTv5)
        self.camera.connect("127.0.0.1", self.broker.port)
        self.camera.loop_start()
        self._http = None

    def publish_window(self, venue: str, camera: str, counts: dict, zone: str | None = None,
                       end: float | None = None, length_s: float = 10.0, people: dict | None = None) -> int:
        """``people``: a v2 window's figures (people, entered, votes as a partial dict, in_view, dwell_s, ended)."""
        import dataclasses
        import datetime as dt

        from emo7ion.core import emotions, messages

        full = {label: int(counts.get(label, 0)) for label in emotions.LABELS}
        seq = self.seq.get((venue, camera), 0)
        self.seq[(venue, camera)] = seq + 1
        start, end = self._span(venue, camera, seq, end, length_s)
        window = messages.Window(
            venue=venue, camera=camera, zone=zone, seq=seq, start=dt.datetime.fromtimestamp(start, dt.UTC),
            end=dt.datetime.fromtimestamp(end, dt.UTC), frames=max(1, min(20, int((end - start) * 2))),
            faces=sum(full.values()), counts=full, mean_confidence=0.8, model={"sha256": "0" * 64, "version": "test"})
        if people is not None:
            votes = people.get("votes")
            window = dataclasses.replace(window, **{**people, "votes": None if votes is None else {
                label: int(votes.get(label, 0)) for label in emotions.LABELS}})
        info = self.camera.publish(messages.camera_topic(venue, camera, "counts"), messages.window_payload(window),
                                   qos=1)
        info.wait_for_publish(5)
        return seq

    def _span(self, venue: str, camera: str, seq: int, end: float | None, length_s: float) -> tuple[float, float]:
        """Where a camera's next window lies, like a real agent's: the same span for a republished seq, and
        otherwise cut short so that it never overlaps one published before (the aggregator refuses overlaps)."""
        spans = self.spans.setdefault((venue, camera), {})
        latest = max((e for _, e in spans.values()), default=None)
        if end is None:
            end = time.time() if latest is None else max(time.time(), latest + 0.01)
        if seq in spans and spans[seq][1] == end:
            return spans[seq]
        start = end - length_s
        for other_start, other_end in spans.values():
            if other_start < end and other_end > start and other_end <= end:
                start = max(start, other_end)
        spans[seq] = (start, end)
        return start, end

    def publish_status(self, venue: str, camera: str, state: str, zone: str | None = None) -> None:
        import datetime as dt

        from emo7ion.core import messages

        status = messages.Status(venue=venue, camera=camera, zone=zone, state=state, ts=dt.datetime.now(dt.UTC),
                                 agent="emo7ion-edge test", model={"sha256": "0" * 64, "version": "test"})
        self.camera.publish(messages.camera_topic(venue, camera, "status"), messages.status_payload(status), qos=1,
                            retain=True).wait_for_publish(5)

    def publish_health(self, venue: str, camera: str, fps: float = 3.2, inference_ms: float = 180.0) -> None:
        import datetime as dt

        from emo7ion.core import messages

        health = messages.Health(venue=venue, camera=camera, ts=dt.datetime.now(dt.UTC), fps=fps,
                                 inference_ms=inference_ms, skipped_frames=0, outbox_depth=0, outbox_dropped=0,
                                 uptime_s=100.0, source_ok=True)
        self.camera.publish(messages.camera_topic(venue, camera, "health"), messages.health_payload(health),
                            qos=1).wait_for_publish(5)

    def get(self, path: str, cookies: dict | None = None, **kwargs):
        """GET on one kept-open HTTP client (a new client per request costs ~0.1 s of TLS set-up here), its
        cookie jar emptied first: a request carries exactly the cookies it names, none a response set."""
        import httpx

        if self._http is None:
            self._http = httpx.Client(timeout=10)
        self._http.cookies.clear()
        return self._http.get(self.url + path, cookies=cookies, **kwargs)

    def wait_stored(self, n: int, timeout: float = 15.0) -> bool:
        return wait_until(lambda: self.service.ingest.stats.stored >= n, timeout)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self.camera.disconnect()
        self.camera.loop_stop()
        self.service.stop()
        self.broker.stop()
