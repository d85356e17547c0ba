"""What every frame source does: open, read one BGR frame (or None when it has nothing), close."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from emo7ion.core.service.errors import UserError


class SourceError(RuntimeError):
    """The source cannot be opened or has failed; the capture thread reopens it with backoff."""


class SourceUnavailable(SourceError, UserError):
    """The source cannot exist on this machine (its library is missing): retrying cannot help, the agent stops."""


class FrameSource(ABC):
    name = "source"

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next BGR uint8 frame; None if none is ready yet. Raises SourceError when broken."""

    def close(self) -> None:  # noqa: B027  optional for sources that hold nothing
        pass

    @property
    def paced(self) -> bool:
        """True when ``read`` itself waits for the next frame (a camera); False for files."""
        return True

    @property
    def recorded(self) -> bool:
        """True for a recording: every frame is analysed at its own time in the video (``timestamp``), and the
        agent stops at its end. False for a live source: the newest frame is analysed when the agent is free."""
        return False
