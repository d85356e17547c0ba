"""Runs the whole system on one machine: an authenticated Mosquitto, the aggregator, and edge agents
(two venues, a few cameras each) running the real detector and int8 classifier on simulated crowds."""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from emo7ion.broker_config import add_aggregator, add_camera, init_broker
from emo7ion.broker_config.runner import free_port
from emo7ion.core.service import stopping

log = logging.getLogger(__name__)

VENUES = {"concert-hall": ("concert", ("stage-left", "stage-right", "balcony")),
          "conference-room": ("meeting", ("front", "back"))}


@dataclass
class Demo:
    workdir: Path
    port: int = 8080
    source: str | None = None
    fps: float = 0.5
    window_s: float = 10.0
    mood_window_s: float = 60.0
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.broker = None
        self.aggregator = None
        self.agents: list = []
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return self.aggregator.url if self.aggregator else ""

    def start(self) -> Demo:
        from emo7ion.aggregator import config as aggregator_config
        from emo7ion.aggregator.service import Aggregator

        layout = init_broker(self.workdir / "broker", port=free_port(), tls_port=free_port(), dev=True, force=True)
        central = add_aggregator(layout.directory, "central")
        self.broker = layout.mosquitto().start()
        broker_url = f"mqtt://127.0.0.1:{layout.port}"
        self.aggregator = Aggregator(aggregator_config.load(None, {
            "broker": {"url": broker_url, "username": central.username, "password": central.password},
            "db": str(self.workdir / "aggregator.sqlite"), "port": self.port, "mood_window_s": self.mood_window_s,
            "offline_after_s": max(60.0, 6 * self.window_s)}, environ={}), self.stop).start()
        for index, (venue, camera, source) in enumerate(self._cameras()):
            credentials = add_camera(layout.directory, venue, camera)
            self.broker.reload()
            agent = self._agent(venue, camera, source, broker_url, credentials, index)
            self.agents.append(agent)
            thread = threading.Thread(target=agent.run, name=f"agent-{venue}-{camera}", daemon=True)
            self.threads.append(thread)
        for thread in self.threads:
            thread.start()
        return self

    def _cameras(self):
        from emo7ion.demo.crowd import CrowdSource

        index = 0
        for venue, (script, cameras) in VENUES.items():
            for camera in cameras:
                if index == 0 and self.source:
                    source = None  # the user's own camera, stream or folder, through the configured source
                else:
                    source = CrowdSource(script, seed=index, phase=0.15 * index)
                yield venue, camera, source
                index += 1

    def _agent(self, venue, camera, source, broker_url, credentials, index):
        from emo7ion.edge import config as edge_config
        from emo7ion.edge.agent import Agent
        from emo7ion.edge.sources.capture import infer_source

        source_settings = infer_source(self.source) if source is None else {"kind": "images", "path": "(simulated)"}
        config = edge_config.load(None, {
            "venue": venue, "camera": camera, "window_s": self.window_s, "health_interval_s": 15.0,
            # Five agents share one machine at a frame or two a second each, so a short window may hold a person
            # once: one frame makes a person here (the simulated crowd has no false faces). Cameras keep 3.
            "track": {"min_frames": 1},
            "zone": camera.split("-")[0] if venue == "concert-hall" else "",
            "source": {**source_settings, "fps": self.fps, "loop": True},  # a video file plays as a live camera
            "broker": {"url": broker_url, "username": credentials.username, "password": credentials.password},
            "outbox": {"path": str(self.workdir / f"outbox-{venue}-{camera}.sqlite")}}, environ={})
        return Agent(config, stop=self.stop, source=source)

    def wait(self, duration: float | None = None) -> None:
        stopping.wait(self.stop, duration)

    def shutdown(self) -> None:
        self.stop.set()  # one stop event for the demo's agents and aggregator
        for thread in self.threads:
            thread.join(timeout=15)
        if self.aggregator:
            self.aggregator.stop()
        if self.broker:
            self.broker.stop()


def make_workdir(path: str | None) -> Path:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(path)
    return Path(tempfile.mkdtemp(prefix="emo7ion-demo-"))
