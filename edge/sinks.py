"""Where a closed window goes besides the broker: a JSON-lines file (``--out``: a post-event report, a benchmark's
reproducible record) or a list in memory (the agent driven from Python). Each receives exactly the bytes the
broker would receive for that window, sequence number included.
"""

from __future__ import annotations

import json
from pathlib import Path

from emo7ion.core import messages
from emo7ion.core.service.errors import UserError


class WindowSink:
    """Takes each window's payload as it closes; ``close`` once the agent has stopped."""

    def write(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:  # optional for sinks that hold nothing
        pass


class WindowFile(WindowSink):
    """One payload a line, flushed as it is written, so a stopped run leaves whole lines. The file is written afresh
    on every run (a report is one run's windows)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._file = self.path.open("wb")
        except OSError as error:
            raise UserError(f"--out {self.path}: cannot write it ({error.strerror or error})") from error

    def write(self, topic: str, payload: bytes) -> None:
        self._file.write(payload + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class WindowList(WindowSink):
    """The windows in memory, in order: what ``analyse_recording`` returns."""

    def __init__(self):
        self.payloads: list[tuple[str, bytes]] = []

    def write(self, topic: str, payload: bytes) -> None:
        self.payloads.append((topic, payload))

    @property
    def windows(self) -> list[messages.Window]:
        """Each payload read back through the aggregator's own parser."""
        return [_window(topic, payload) for topic, payload in self.payloads]


def read_windows(path: str | Path) -> list[messages.Window]:
    """The windows of an ``--out`` file, each line checked by the aggregator's parser (a bad line raises
    ``messages.MessageError``)."""
    windows = []
    for line in Path(path).read_bytes().splitlines():
        body = json.loads(line)
        windows.append(_window(messages.camera_topic(body["venue"], body["camera"], "counts"), line))
    return windows


def _window(topic: str, payload: bytes) -> messages.Window:
    window = messages.parse(topic, payload)
    if not isinstance(window, messages.Window):
        raise messages.MessageError(f"{topic}: not a counts window")
    return window
