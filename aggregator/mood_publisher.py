"""The mood publisher: each venue's (and zone's) mood, read through the views and published retained on its mood
topic when it changed (the last link of MQTT message -> ingest -> store -> views -> mood topic)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.discovery import Discovery
from emo7ion.aggregator.views import Pushed, Views
from emo7ion.core import messages

log = logging.getLogger(__name__)

MOOD_TICK_S = 2.0
MOOD_REFRESH_S = 30.0   # republish even without new data: the sliding window moves on


class Link(Protocol):
    """What the publisher needs of the service's broker link (core/service/broker_link.py)."""

    connected: threading.Event

    def publish_retained(self, topic: str, payload: bytes | str) -> None: ...

    def when_connected(self, callback: Callable[[bool], None]) -> None: ...


class MoodPublisher:
    """Publishes each venue's (and zone's) mood, retained, when it changed. It reads through the views and
    writes through ``link.publish_retained``; it holds back while the link is down, and the link tells it of each
    new connection, which needs the retained topics again (a broker without persistence lost them)."""

    def __init__(self, views: Views, changes: Changes, link: Link, discovery: Discovery | None,
                 stop: threading.Event):
        self.views, self.changes, self.link, self.stop = views, changes, link, stop
        self.discovery = discovery
        self._seen: dict[str, int] = {}
        self._pushed = Pushed()
        self._last_refresh = 0.0
        self._reconnected = threading.Event()
        link.when_connected(lambda session_present: self._reconnected.set())
        self.thread = threading.Thread(target=self._run, name="mood-publisher", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(MOOD_TICK_S):
            try:
                self.tick()
            except Exception:  # a failed tick must not end the thread; the next one retries
                log.exception("mood update failed")

    def tick(self) -> None:
        versions = self.changes.snapshot()
        refresh = time.monotonic() - self._last_refresh > MOOD_REFRESH_S
        if self._reconnected.is_set():  # (re)connected: publish retained topics again
            self._reconnected.clear()
            self._pushed.forget()
            if self.discovery is not None:
                self.discovery.forget()
            refresh = True
        if refresh:
            self._last_refresh = time.monotonic()
        changed = [(venue, zones) for venue, zones in self.views.venue_zones()
                   if refresh or versions.get(venue, 0) != self._seen.get(venue)]
        if not changed:
            return
        moods = self.views.moods(changed)
        for venue, zones in changed:
            self._seen[venue] = versions.get(venue, 0)
            for zone in [None, *zones]:
                current = moods[venue, zone]
                topic = messages.mood_topic(venue, zone)
                if self._pushed.changed(topic, current) and self.link.connected.is_set():
                    if self.discovery is not None:
                        self.discovery.announce(venue, zone, people=current.has_people)
                    self.link.publish_retained(topic, messages.mood_payload(current))
                    self._pushed.mark(topic, current)
